package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/protocol"
)

// maxSeconds bounds every duration setting: about 68 years, which fits a
// time.Duration and a Redis EXPIRE argument alike.
const maxSeconds = 1 << 31

// Validate reports every problem of c, one per line (errors.Join), each
// starting with the JSON path of the field at fault. It also loads each
// server's TLS certificate and key, so a server never starts without them.
func (c *Config) Validate() error {
	return c.validate(true)
}

// validate is Validate; files false skips reading the TLS files, for the
// fuzz target, which must not open whatever paths it invents.
func (c *Config) validate(files bool) error {
	v := &validator{}
	if len(c.Servers) == 0 {
		v.fail("servers", "no servers")
	}
	type listener struct {
		host string
		i    int
	}
	byPort := map[int][]listener{}
	for i, s := range c.Servers {
		p := fmt.Sprintf("servers[%d]", i)
		switch {
		case s.Port < 0 || s.Port > 65535:
			v.fail(p+".port", "%d is not a port (0-65535)", s.Port)
		case s.Port > 0: // port 0 is a free port of its own: it shares no address
			host := normalHost(s.Hostname)
			for _, o := range byPort[s.Port] {
				if o.host == host || wildcard(o.host) || wildcard(host) {
					v.fail(p, "listen address %s is also servers[%d]'s (%s)", s.Addr(), o.i, c.Servers[o.i].Addr())
					break
				}
			}
			byPort[s.Port] = append(byPort[s.Port], listener{host, i})
		}
		if s.Backlog < 0 {
			v.fail(p+".backlog", "must be >= 0")
		}
		v.routes(s.Routes, p+".routes")
		if s.SSL != nil {
			v.ssl(s.SSL, p+".ssl", files)
		}
	}

	if _, err := protocol.NewSigner(c.Security.Key, c.Security.Algo); err != nil {
		v.fail("security.algo", "%q is not sha1, sha256, sha512 or md5", c.Security.Algo)
	}
	if c.Security.KeyGracePeriod < 0 || c.Security.KeyGracePeriod > maxSeconds {
		v.fail("security.keyGracePeriod", "must be between 0 and %d", maxSeconds)
	}
	if c.Security.SignedPublish && c.Security.Key == "" {
		v.fail("security.signedPublish", "needs security.key")
	}
	for i, o := range c.Security.TrustedOrigins {
		if o != "*" && !IsOrigin(o) {
			v.fail(fmt.Sprintf("security.trustedOrigins[%d]", i), "%q is not an origin (scheme://host[:port], no path) or *", o)
		}
	}
	for i, p := range c.Security.TrustedProxies {
		if _, err := ParseProxy(p); err != nil {
			v.fail(fmt.Sprintf("security.trustedProxies[%d]", i), "%s", err)
		}
	}
	for id, key := range c.Security.Clients {
		if id == "" || strings.ContainsAny(id, "|/?&#% ") {
			v.fail("security.clients", "%q is not a client id", id)
		}
		if key == "" {
			v.fail("security.clients."+id, "empty key")
		}
	}

	v.storage(c)
	v.backend(c.Backend)
	v.webPush(c.WebPush)

	v.positive("polling.timeout", c.Polling.Timeout)
	v.positive("limits.requestTimeout", c.Limits.RequestTimeout)
	v.positive("websocket.pingInterval", c.WebSocket.PingInterval)
	for _, b := range []struct {
		path string
		n    int
	}{
		{"storage.maxChannelMessages", c.Storage.MaxChannelMessages},
		{"storage.maxChannelBytes", c.Storage.MaxChannelBytes},
		{"storage.maxBytes", c.Storage.MaxBytes},
		{"limits.clientMessagesPerSecond", c.Limits.ClientMessages},
		{"limits.clientBurst", c.Limits.ClientBurst},
		{"limits.maxConnPerChannel", c.Limits.MaxConnPerChannel},
		{"limits.maxConnPerIP", c.Limits.MaxConnPerIP},
		{"limits.maxMessagesPerRequest", c.Limits.MaxMessagesPerRequest},
		{"limits.maxChannelsPerRequest", c.Limits.MaxChannelsPerRequest},
	} {
		if b.n < 0 {
			v.fail(b.path, "must be >= 0 (0: unbounded)")
		}
	}
	v.positiveInt("websocket.maxQueueBytes", c.WebSocket.MaxQueueBytes)
	v.positiveInt("websocket.maxFrameBytes", c.WebSocket.MaxFrameBytes)
	v.positiveInt("limits.maxPayload", c.Limits.MaxPayload)
	if c.ShutdownTimeout < 0 || c.ShutdownTimeout > maxSeconds {
		v.fail("shutdownTimeout", "must be between 0 and %d", maxSeconds)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.fail("log.format", "%q is not text or json", c.Log.Format)
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (v *validator) positive(path string, f float64) {
	switch {
	case !(f > 0): // also NaN
		v.fail(path, "must be > 0")
	case f > maxSeconds:
		v.fail(path, "must be at most %d seconds", maxSeconds)
	}
}

func (v *validator) positiveInt(path string, n int) {
	if n <= 0 {
		v.fail(path, "must be > 0")
	}
}

func (v *validator) routes(r Routes, path string) {
	kinds := []struct {
		name   string
		routes []string
	}{
		{"sub", r.Sub}, {"pub", r.Pub}, {"stat", r.Stat}, {"rest", r.Rest}, {"api", r.API},
		{"health", r.Health}, {"ready", r.Ready}, {"metrics", r.Metrics}, {"backend", r.Backend}, {"demo", r.Demo},
	}
	seen := map[string]string{}
	n := 0
	for _, k := range kinds {
		for i, route := range k.routes {
			n++
			p := fmt.Sprintf("%s.%s[%d]", path, k.name, i)
			if !strings.HasPrefix(route, "/") {
				v.fail(p, "%q does not start with /", route)
				continue
			}
			if other, dup := seen[route]; dup {
				v.fail(p, "%q is also %s", route, other)
				continue
			}
			seen[route] = fmt.Sprintf("%s.%s[%d]", path, k.name, i)
		}
	}
	if n == 0 {
		v.fail(path, "no routes")
	}
}

func (v *validator) ssl(s *SSL, path string, files bool) {
	if s.Cert == "" {
		v.fail(path+".cert", "missing")
	}
	if s.Key == "" {
		v.fail(path+".key", "missing")
	}
	if !files || s.Cert == "" || s.Key == "" {
		return
	}
	cert, cerr := os.ReadFile(s.Cert)
	if cerr != nil {
		v.fail(path+".cert", "%s", cerr)
	}
	key, kerr := os.ReadFile(s.Key)
	if kerr != nil {
		v.fail(path+".key", "%s", kerr)
	}
	if cerr != nil || kerr != nil {
		return
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		v.fail(path, "%s and %s: %s", s.Cert, s.Key, err)
	}
}

func (v *validator) storage(c *Config) {
	s := c.Storage
	switch s.Type {
	case "memory":
		if c.PublishMode {
			// A publish-only process hands messages to the subscribe
			// processes through Redis; with a memory store they go nowhere.
			v.fail("publishMode", "needs storage.type redis")
		}
	case "redis":
		if s.Socket == "" && len(s.Addrs) == 0 && s.Host == "" {
			v.fail("storage.host", "missing")
		}
		if s.Snapshot != "" {
			v.fail("storage.snapshot", "only for storage.type memory: Redis keeps the history itself")
		}
	default:
		v.fail("storage.type", "%q is not memory or redis", s.Type)
	}
	switch s.Layout {
	case "", "1.0":
	case "2.0":
		if len(c.Security.Clients) > 0 {
			v.fail("storage.layout", "the 2.0 layout has no clientId namespace: the shared mode (security.clients) needs layout 1.0")
		}
	default:
		v.fail("storage.layout", "%q is not 1.0 or 2.0", s.Layout)
	}
	switch s.Tags {
	case "", "single":
	case "installation":
		if s.Layout == "2.0" {
			v.fail("storage.tags", "installation tags need layout 1.0: the 2.0 layout's keys are the original's")
		}
		if strings.ContainsAny(s.Prefix, "{}") {
			v.fail("storage.prefix", "%q holds a brace: with installation tags each installation's keys take the hash tag {<clientId>}", s.Prefix)
		}
		for id := range c.Security.Clients {
			if err := protocol.ValidInstallationID(id); err != nil {
				v.fail("security.clients", "%v", err)
			}
		}
	default:
		v.fail("storage.tags", "%q is not single or installation", s.Tags)
	}
	if s.WaitReplicas < 0 || s.WaitReplicas > 16 {
		v.fail("storage.waitReplicas", "must be between 0 and 16")
	}
	v.positive("storage.messageTTL", s.MessageTTL)
	v.positive("storage.channelTTL", s.ChannelTTL)
	v.positive("storage.onlineTTL", s.OnlineTTL)
	if !(s.DefaultExpiry >= 0 && s.DefaultExpiry <= maxSeconds) {
		v.fail("storage.defaultExpiry", "must be between 0 and %d", maxSeconds)
	}
	if s.OnlineDelta < 0 || s.OnlineDelta > maxSeconds {
		v.fail("storage.onlineDelta", "must be between 0 and %d", maxSeconds)
	}
	if s.Port < 1 || s.Port > 65535 {
		v.fail("storage.port", "%d is not a port (1-65535)", s.Port)
	}
	for i, a := range s.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil {
			v.fail(fmt.Sprintf("storage.addrs[%d]", i), "%q is not host:port", a)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.fail(fmt.Sprintf("storage.addrs[%d]", i), "%q is not a port (1-65535)", port)
		}
	}
	if s.Cluster && s.Master != "" {
		v.fail("storage.master", "a Sentinel master set and storage.cluster exclude each other")
	}
	if s.DB < 0 {
		v.fail("storage.db", "must be >= 0")
	}
	if s.DB != 0 && s.Cluster {
		v.fail("storage.db", "Redis Cluster has only database 0")
	}
}

func (v *validator) backend(b Backend) {
	if b.Version < 3 || b.Version > 5 {
		v.fail("backend.version", "%d is not 3, 4 or 5", b.Version)
	}
	v.positive("backend.channelWriteTTL", b.ChannelWriteTTL)
	v.positive("backend.channelStorageTTL", b.ChannelStorageTTL)
	v.positive("backend.watchTTL", b.WatchTTL)
	if b.ChannelStorageTTL < b.ChannelWriteTTL {
		v.fail("backend.channelStorageTTL", "must be at least backend.channelWriteTTL")
	}
	if b.PublicURL != "" {
		u, err := url.Parse(b.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail("backend.publicURL", "%q is not an http(s) URL", b.PublicURL)
		}
	}
}

func (v *validator) webPush(w WebPush) {
	if w.VAPIDPrivateKey == "" {
		if w.VAPIDPublicKey != "" {
			v.fail("webPush.vapidPublicKey", "given without webPush.vapidPrivateKey")
		}
	} else if _, err := webpush.NewVAPID(w.VAPIDPrivateKey, w.VAPIDPublicKey, w.Subject); err != nil {
		path := "webPush.vapidPrivateKey"
		switch {
		case strings.HasPrefix(err.Error(), "VAPID public"):
			path = "webPush.vapidPublicKey"
		case strings.HasPrefix(err.Error(), "VAPID subject"):
			path = "webPush.subject"
		}
		v.fail(path, "%v", err)
	}
	v.positive("webPush.deferDelay", w.DeferDelay)
	v.positive("webPush.messagesPerSecond", w.MessagesPerSecond)
	v.positive("webPush.userMessagesPerMinute", w.UserMessagesPerMinute)
	v.positiveInt("webPush.maxQueue", w.MaxQueue)
	v.positiveInt("webPush.maxAttempts", w.MaxAttempts)
}

// ParseProxy reads an entry of security.trustedProxies: an address
// ("10.0.0.5", "::1") or a network ("10.0.0.0/24").
func ParseProxy(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a network (10.0.0.0/24)", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(t)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a network (10.0.0.0/24)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// IsOrigin reports whether o is a browser origin as the Origin header
// carries it: http or https, a host, an optional port, nothing else.
func IsOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery &&
		o == u.Scheme+"://"+u.Host
}

func normalHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

// wildcard reports whether host means all interfaces, which conflicts
// with any other address on the same port.
func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}
