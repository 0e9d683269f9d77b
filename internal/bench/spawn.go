package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pushpull/pushpull/internal/config"
)

// Target is the server under measurement.
type Target struct {
	PID     int    // server process, for /proc readings
	SubURL  string // WebSocket subscribe URL, e.g. ws://127.0.0.1:8893/bitrix/subws/
	PubURL  string // publish URL, e.g. http://127.0.0.1:8895/bitrix/pub/
	StatURL string // process statistics, e.g. http://127.0.0.1:8895/server-stat/; "" if unknown
	Storage string // "memory" or "redis" when the bench started the server
	// RedisPID is the redis-server the bench started for the server, so
	// its CPU is reported beside the server's; 0 if none.
	RedisPID int
}

// SpawnOptions says how to start a server.
type SpawnOptions struct {
	Executable  string // the pushpull binary; the running one when empty
	Redis       bool   // use a Redis store, on a redis-server the bench starts
	RedisServer string // redis-server binary; "redis-server" from PATH when empty
	Key         string // security key
}

// Spawned is a server (and its Redis) the bench started.
type Spawned struct {
	Target
	dir    string
	server *process
	redis  *process
}

// process is a child the bench started and must stop.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exits
	err  error         // its exit status, once done
	out  *tail
}

func start(name string, path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	out := &tail{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop asks the process to end and kills it if it does not within grace.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exitError describes a process that ended early, with the end of its output.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited (%v): %s", p.name, p.err, strings.TrimSpace(p.out.String()))
}

// waitListening waits until every addr accepts connections, failing early
// if p exits.
func waitListening(ctx context.Context, p *process, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return p.exitError()
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s not accepting after %v: %s", p.name, addr, timeout, strings.TrimSpace(p.out.String()))
			}
		}
	}
	return nil
}

// Spawn starts `pushpull serve` on free loopback ports with a memory or
// Redis store, and returns once its ports accept connections.
func Spawn(ctx context.Context, opt SpawnOptions) (s *Spawned, err error) {
	exe := opt.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "pushpull-bench-")
	if err != nil {
		return nil, err
	}
	s = &Spawned{dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	storage := map[string]any{"type": "memory"}
	if opt.Redis {
		port, err := freePort()
		if err != nil {
			return s, err
		}
		bin := opt.RedisServer
		if bin == "" {
			bin = "redis-server"
		}
		s.redis, err = start("redis-server", bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
		if err != nil {
			return s, err
		}
		if err := waitListening(ctx, s.redis, 10*time.Second, addr(port)); err != nil {
			return s, err
		}
		storage = map[string]any{"type": "redis", "host": "127.0.0.1", "port": port}
	}
	subPort, err := freePort()
	if err != nil {
		return s, err
	}
	pubPort, err := freePort()
	if err != nil {
		return s, err
	}
	// Two listeners as the original deploys them: the public subscribe
	// port and the internal publish port. Only what the bench needs is
	// written; the server's defaults fill in the rest.
	cfg := map[string]any{
		"servers": []config.Server{
			{Name: "bench-sub", Hostname: "127.0.0.1", Port: subPort,
				Routes: config.Routes{Sub: []string{"/bitrix/sub/", "/bitrix/subws/"}}},
			{Name: "bench-pub", Hostname: "127.0.0.1", Port: pubPort,
				Routes: config.Routes{Pub: []string{"/bitrix/pub/"}, Stat: []string{"/server-stat/"}}},
		},
		"storage": storage,
		// Per-connection logging would be measured as server cost.
		"log":             map[string]string{"level": "warn"},
		"shutdownTimeout": 2,
	}
	if opt.Key != "" {
		cfg["security"] = map[string]string{"key": opt.Key}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return s, err
	}
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return s, err
	}
	s.server, err = start("pushpull serve", exe, "serve", "--config", file)
	if err != nil {
		return s, err
	}
	if err := waitListening(ctx, s.server, 30*time.Second, addr(subPort), addr(pubPort)); err != nil {
		return s, err
	}
	s.Target = Target{
		PID:     s.server.cmd.Process.Pid,
		SubURL:  fmt.Sprintf("ws://%s/bitrix/subws/", addr(subPort)),
		PubURL:  fmt.Sprintf("http://%s/bitrix/pub/", addr(pubPort)),
		StatURL: fmt.Sprintf("http://%s/server-stat/", addr(pubPort)),
		Storage: storage["type"].(string),
	}
	if s.redis != nil {
		s.Target.RedisPID = s.redis.cmd.Process.Pid
	}
	return s, nil
}

// Alive returns an error if the server has exited.
func (s *Spawned) Alive() error {
	select {
	case <-s.server.done:
		return s.server.exitError()
	default:
		return nil
	}
}

// Stop stops the server, then Redis, and removes the config.
func (s *Spawned) Stop() {
	s.server.stop(5 * time.Second)
	s.redis.stop(5 * time.Second)
	os.RemoveAll(s.dir)
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; on a bench machine that is unlikely.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
