package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
)

// Stock routes, used when a test's config names none.
var defaultRoutes = map[string]any{
	"sub":    []any{"/bitrix/sub/", "/bitrix/subws/"},
	"pub":    []any{"/bitrix/pub/"},
	"stat":   []any{"/server-stat/"},
	"health": []any{"/healthz"},
	"ready":  []any{"/readyz"},
}

// Server is a running pushpull process.
type Server struct {
	Cmd        *exec.Cmd
	Config     map[string]any // as written to the config file
	ConfigFile string         // its path
	Key        string         // security.key, "" when channels are unsigned

	// ExitExpected is set by a test that stops the process itself.
	ExitExpected bool

	// Ports holds the port of each configured server, in order, as the
	// server reported it listening.
	Ports []int

	// Base URLs of the first configured server serving each route, "" when
	// no server serves it.
	SubURL    string // http://127.0.0.1:port/bitrix/sub/
	WSURL     string // ws://127.0.0.1:port/bitrix/subws/ (second sub route, else the first)
	PubURL    string
	StatURL   string
	HealthURL string
	ReadyURL  string

	addrs []string // each configured server's address, as it reported it
	proc  *spawn.Process
}

// startServer writes cfg to a file, starts `pushpull serve --config FILE`
// and waits until the process has reported listening on every configured
// server. cfg is a map holding only what the test sets (the server fills
// in its defaults), or anything else that marshals to the config JSON,
// such as a config.Default() with its ports set to 0. Without "servers"
// one server on 127.0.0.1 serves the stock routes; a server given no port
// is on port 0, a free port the process reports. The process is stopped
// with SIGTERM when the test ends, and its output is added to the test log
// if the test failed.
func startServer(t testing.TB, cfg any) *Server {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer with the command changed by prepare
// before it starts (its environment, say); nil changes nothing.
func startServerWith(t testing.TB, cfg any, prepare func(*exec.Cmd)) *Server {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	conf := map[string]any{}
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &conf); err != nil {
			t.Fatalf("config must be a JSON object: %v", err)
		}
	}
	servers, _ := conf["servers"].([]any)
	if len(servers) == 0 {
		servers = []any{map[string]any{"name": "e2e"}}
	}
	for i, v := range servers {
		sc, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("config: servers[%d] is not an object", i)
		}
		if _, ok := sc["port"]; !ok {
			sc["port"] = 0
		}
		if _, ok := sc["hostname"]; !ok {
			sc["hostname"] = "127.0.0.1"
		}
		if _, ok := sc["routes"]; !ok {
			sc["routes"] = defaultRoutes
		}
	}
	conf["servers"] = servers
	// The tests publish as a backend of the push server 1.0 did, mostly
	// without an expiry, and expect history; the transient default of the
	// original 2.0 has tests of its own that say so.
	storage, _ := conf["storage"].(map[string]any)
	if storage == nil {
		storage = map[string]any{}
		conf["storage"] = storage
	}
	if _, ok := storage["defaultExpiry"]; !ok {
		storage["defaultExpiry"] = 86400
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if raw, err = json.MarshalIndent(conf, "", "  "); err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--config", file)
	if prepare != nil {
		prepare(cmd)
	}
	s, err := startProcess(t, len(servers), cmd)
	if err != nil {
		t.Fatalf("%v\nconfig:\n%s", err, raw)
	}
	s.Config, s.ConfigFile = conf, file
	if sec, ok := conf["security"].(map[string]any); ok {
		s.Key, _ = sec["key"].(string)
	}
	for i, v := range servers {
		base := s.addrs[i]
		routes, _ := v.(map[string]any)["routes"].(map[string]any)
		first := func(dst *string, scheme, name string, nth int) {
			list := routeList(routes[name])
			if *dst != "" || len(list) == 0 {
				return
			}
			if nth >= len(list) {
				nth = len(list) - 1
			}
			*dst = scheme + "://" + base + list[nth]
		}
		first(&s.SubURL, "http", "sub", 0)
		first(&s.WSURL, "ws", "sub", 1)
		first(&s.PubURL, "http", "pub", 0)
		first(&s.StatURL, "http", "stat", 0)
		first(&s.HealthURL, "http", "health", 0)
		first(&s.ReadyURL, "http", "ready", 0)
	}
	return s
}

// startProcess starts cmd, pushpull serving n servers, and waits until it
// has reported listening on them. The process is stopped when the test
// ends.
func startProcess(t testing.TB, n int, cmd *exec.Cmd) (*Server, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	proc, listeners, err := spawn.Serve(ctx, n, "pushpull", cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{Cmd: proc.Cmd, proc: proc}
	for _, l := range listeners {
		s.Ports = append(s.Ports, l.Port())
		s.addrs = append(s.addrs, l.Addr)
	}
	t.Cleanup(func() { s.stop(t) })
	return s, nil
}

func (s *Server) stop(t testing.TB) {
	select {
	case <-s.proc.Done():
		if !s.ExitExpected {
			t.Errorf("pushpull exited during the test: %v", s.proc.Err())
		}
	default:
		sent := time.Now()
		if err := s.proc.Stop(stopTimeout); err != nil {
			t.Errorf("%v; its goroutines follow in its output", err)
		} else if d := time.Since(sent); d > time.Second {
			t.Logf("pushpull took %v to exit after SIGTERM", d.Round(time.Millisecond))
		}
		if err := s.proc.Err(); err != nil {
			t.Logf("pushpull after SIGTERM: %v", err)
		}
	}
	if t.Failed() {
		t.Logf("pushpull output:\n%s", s.Logs())
	}
}

// Logs returns what the process has written so far.
func (s *Server) Logs() string { return s.proc.Out.String() }

// closedPort returns a loopback port nothing listened on a moment ago.
func closedPort(t testing.TB) int {
	t.Helper()
	ports, err := spawn.FreePorts(1)
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return ports[0]
}

func routeList(v any) []string {
	switch r := v.(type) {
	case string:
		return []string{r}
	case []any:
		var out []string
		for _, e := range r {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return r
	}
	return nil
}
