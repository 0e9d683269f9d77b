package app

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/protocol"
)

// Reloaded says what a reload did.
type Reloaded struct {
	// Applied lists the changed keys that took effect.
	Applied []string
	// NotApplied lists the changed keys that need a restart: the
	// running process keeps their old values.
	NotApplied []string
	// Certificates lists the servers whose certificate was read again
	// ("servers[0]"), changed or not.
	Certificates []string
}

// reloadable matches the keys a reload applies. Everything else (ports,
// routes, storage, the engine, publishMode, processUniqueId, polling,
// websocket, backend, security.algo, log.format) needs a restart.
var reloadable = regexp.MustCompile(`^(log\.level|limits\..*|security\.(key|previousKey|keyGracePeriod|clients|signedPublish|trustedOrigins|trustedProxies)|servers\[\d+\]\.ssl\.(cert|key))$`)

// Reload applies next, the configuration read again, to the running
// process as far as it can without dropping clients: the log level
// (when the process was given a LevelVar), the limits, the security keys
// (the replaced one verifies for security.keyGracePeriod), signedPublish,
// the trusted origins and proxies and the TLS certificates (read from their files
// again). Connections stay open. An error (a certificate that does not
// load) leaves the running configuration as it was. Reload is not safe
// for concurrent use.
func (a *App) Reload(next *config.Config) (Reloaded, error) {
	cur := a.live
	cmp := *next
	// What the process made up or bound itself is not a change.
	cmp.Servers = slices.Clone(next.Servers)
	for i := range cmp.Servers {
		if i < len(a.zeroPort) && a.zeroPort[i] && cmp.Servers[i].Port == 0 {
			cmp.Servers[i].Port = a.cfg.Servers[i].Port
		}
	}
	if cur.UniqueIDGenerated() && next.UniqueIDGenerated() {
		cmp.ProcessUniqueID = cur.ProcessUniqueID
	}
	var r Reloaded
	modeSwitch := (len(cur.Security.Clients) > 0) != (len(next.Security.Clients) > 0)
	for _, key := range config.Diff(cur, &cmp) {
		if reloadable.MatchString(key) && !(key == "security.clients" && modeSwitch) {
			r.Applied = append(r.Applied, key)
		} else {
			r.NotApplied = append(r.NotApplied, key)
		}
	}

	if err := a.server.Reload(next); err != nil {
		return Reloaded{}, err
	}
	signer, err := protocol.NewSigner(next.Security.Key, a.cfg.Security.Algo)
	if err != nil {
		return Reloaded{}, err // cannot happen: the server accepted it
	}
	var jwtKey []byte
	if next.Security.Key != "" {
		jwtKey = []byte(next.Security.Key)
	}
	a.backend.SetKey(signer, jwtKey)
	a.backend.SetBodyLimits(next.Limits.MaxPayload, config.Seconds(next.Limits.RequestTimeout))
	if a.LogLevel != nil {
		var level slog.Level
		if err := level.UnmarshalText([]byte(next.Log.Level)); err == nil {
			a.LogLevel.Set(level)
		}
	}
	for i, sc := range a.cfg.Servers {
		if sc.SSL != nil && i < len(next.Servers) && next.Servers[i].SSL != nil {
			r.Certificates = append(r.Certificates, fmt.Sprintf("servers[%d]", i))
		}
	}

	// The next reload compares with what runs: the applied keys of next,
	// the rest as they were.
	kept := *cur
	kept.Limits = next.Limits
	kept.Log.Level = next.Log.Level
	kept.Security.Key = next.Security.Key
	kept.Security.PreviousKey = next.Security.PreviousKey
	kept.Security.KeyGracePeriod = next.Security.KeyGracePeriod
	kept.Security.SignedPublish = next.Security.SignedPublish
	kept.Security.TrustedOrigins = next.Security.TrustedOrigins
	if !modeSwitch {
		kept.Security.Clients = next.Security.Clients
	}
	kept.Servers = slices.Clone(cur.Servers)
	for i := range kept.Servers {
		if s := kept.Servers[i].SSL; s != nil && i < len(next.Servers) && next.Servers[i].SSL != nil {
			ssl := *s
			ssl.Cert, ssl.Key = next.Servers[i].SSL.Cert, next.Servers[i].SSL.Key
			kept.Servers[i].SSL = &ssl
		}
	}
	a.live = &kept
	return r, nil
}

// String is the reload as a log line says it.
func (r Reloaded) String() string {
	var parts []string
	if len(r.Applied) > 0 {
		parts = append(parts, "applied "+strings.Join(r.Applied, ", "))
	}
	if len(r.Certificates) > 0 {
		parts = append(parts, "certificates re-read for "+strings.Join(r.Certificates, ", "))
	}
	if len(r.NotApplied) > 0 {
		parts = append(parts, "not applied (restart to change) "+strings.Join(r.NotApplied, ", "))
	}
	if len(parts) == 0 {
		return "nothing changed"
	}
	return strings.Join(parts, "; ")
}

// PreviousKeyUntil returns until when the security key a change replaced
// still verifies, or the zero time when no previous key does.
func (a *App) PreviousKeyUntil() time.Time { return a.server.PreviousKeyUntil() }
