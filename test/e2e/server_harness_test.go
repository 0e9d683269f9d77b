package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
	Cmd    *exec.Cmd
	Config map[string]any // as written to the config file
	Key    string         // security.key, "" when channels are unsigned

	// ExitExpected is set by a test that stops the process itself.
	ExitExpected bool

	Ports []int // one per configured server, in order

	// Base URLs of the first configured server serving each route, "" when
	// no server serves it.
	SubURL    string // http://127.0.0.1:port/bitrix/sub/
	WSURL     string // ws://127.0.0.1:port/bitrix/subws/ (second sub route, else the first)
	PubURL    string
	StatURL   string
	HealthURL string
	ReadyURL  string

	logs   *syncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // the process's exit error, valid once exited is closed
}

// startServer writes cfg to a file, starts `pushpull serve --config FILE`
// and waits until every configured port accepts connections. cfg is a map
// holding only what the test sets (the server fills in its defaults), or
// anything else that marshals to the config JSON, such as a
// config.Default() with its ports set to 0. Without "servers" one server
// on 127.0.0.1 serves the stock routes; a server with port 0 gets a free
// port. The process is stopped with SIGTERM when the test ends, and its
// output is added to the test log if the test failed.
func startServer(t testing.TB, cfg any) *Server {
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
	s := &Server{Config: conf, logs: &syncBuffer{}, exited: make(chan struct{})}
	for i, v := range servers {
		sc, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("config: servers[%d] is not an object", i)
		}
		if p, _ := sc["port"].(float64); p == 0 {
			sc["port"] = freePort(t)
		}
		if _, ok := sc["hostname"]; !ok {
			sc["hostname"] = "127.0.0.1"
		}
		if _, ok := sc["routes"]; !ok {
			sc["routes"] = defaultRoutes
		}
		port := int(toFloat(sc["port"]))
		s.Ports = append(s.Ports, port)
		base := "127.0.0.1:" + strconv.Itoa(port)
		routes, _ := sc["routes"].(map[string]any)
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
		servers[i] = sc
	}
	conf["servers"] = servers
	if sec, ok := conf["security"].(map[string]any); ok {
		s.Key, _ = sec["key"].(string)
	}

	raw, err = json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatalf("config: %v", err)
	}

	s.Cmd = exec.Command(binary, "serve", "--config", file)
	s.Cmd.Stdout = s.logs
	s.Cmd.Stderr = s.logs
	if err := s.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", binary, err)
	}
	go func() {
		s.err = s.Cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	for _, port := range s.Ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		deadline := time.Now().Add(startTimeout)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				t.Fatalf("pushpull exited before listening on %s: %v\nconfig:\n%s", addr, s.err, raw)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("pushpull does not accept connections on %s after %v: %v\nconfig:\n%s", addr, startTimeout, err, raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

func (s *Server) stop(t testing.TB) {
	select {
	case <-s.exited:
		if !s.ExitExpected {
			t.Errorf("pushpull exited during the test: %v", s.err)
		}
	default:
		_ = s.Cmd.Process.Signal(syscall.SIGTERM)
		sent := time.Now()
		select {
		case <-s.exited:
			if s.err != nil {
				t.Logf("pushpull after SIGTERM: %v", s.err)
			}
			if d := time.Since(sent); d > time.Second {
				t.Logf("pushpull took %v to exit after SIGTERM", d.Round(time.Millisecond))
			}
		case <-time.After(stopTimeout):
			t.Errorf("pushpull did not exit within %v of SIGTERM; its goroutines follow", stopTimeout)
			_ = s.Cmd.Process.Signal(syscall.SIGQUIT) // the Go runtime prints every goroutine's stack
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				_ = s.Cmd.Process.Kill()
				<-s.exited
			}
		}
	}
	if t.Failed() {
		t.Logf("pushpull output:\n%s", s.logs.String())
	}
}

// Logs returns what the process has written so far.
func (s *Server) Logs() string { return s.logs.String() }

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

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
