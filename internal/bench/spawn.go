package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/spawn"
)

// Server kinds the bench measures.
const (
	KindPushpull = "pushpull"
	KindNchan    = "nchan" // nginx with the nchan module
)

// Target is the server under measurement.
type Target struct {
	// Kind is the server's kind: KindPushpull (also when empty), whose
	// subscribers get text-mode envelopes, or KindNchan, whose subscribers
	// get each message's body as one frame, whose publish route answers
	// 201 or 202, and whose CPU and memory are those of the nginx master
	// and its workers.
	Kind    string
	PID     int    // server process (an nginx master), for /proc readings
	SubURL  string // WebSocket subscribe URL, e.g. ws://127.0.0.1:8893/bitrix/subws/
	PubURL  string // publish URL, e.g. http://127.0.0.1:8895/bitrix/pub/
	StatURL string // process statistics, e.g. http://127.0.0.1:8895/server-stat/; "" if unknown
	Storage string // "memory" or "redis" when the bench started the server
	// RedisPID is the redis-server the bench started for the server, so
	// its CPU is reported beside the server's; 0 if none.
	RedisPID int
}

// nchan reports whether t is an nginx with nchan.
func (t Target) nchan() bool { return t.Kind == KindNchan }

// procs is the processes whose CPU and memory count as the server's.
func (t Target) procs() procs { return procs{root: t.PID, tree: t.nchan()} }

// kind names the server for reports.
func (t Target) kind() string {
	if t.Kind == "" {
		return KindPushpull
	}
	return t.Kind
}

// SpawnOptions says how to start a server.
type SpawnOptions struct {
	Executable  string // the pushpull binary; the running one when empty
	Redis       bool   // use a Redis store, on a redis-server the bench starts
	RedisServer string // redis-server binary; "redis-server" from PATH when empty
	Key         string // security key
	// CPUs, when set, is the CPU list the server runs on, as taskset -c
	// takes it ("0").
	CPUs string
}

// Spawned is a server (and its Redis) the bench started.
type Spawned struct {
	Target
	dir    string
	server *spawn.Process
	redis  *spawn.Process
}

// Spawn starts `pushpull serve` on free loopback ports with a memory or
// Redis store, and returns once it has reported the addresses it listens
// on.
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
		port, err := s.startRedis(ctx, opt.RedisServer)
		if err != nil {
			return s, err
		}
		storage = map[string]any{"type": "redis", "host": "127.0.0.1", "port": port}
	}
	file := filepath.Join(dir, "config.json")
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := writeConfig(file, storage, opt.Key); err != nil {
		return s, err
	}
	server, ls, err := spawn.Serve(wait, 2, "pushpull serve", pinned(opt.CPUs, exe, "serve", "--config", file))
	if err != nil {
		return s, err
	}
	s.server = server
	sub, pub := ls[0].Addr, ls[1].Addr
	s.Target = Target{
		PID:     server.Pid(),
		SubURL:  fmt.Sprintf("ws://%s/bitrix/subws/", sub),
		PubURL:  fmt.Sprintf("http://%s/bitrix/pub/", pub),
		StatURL: fmt.Sprintf("http://%s/server-stat/", pub),
		Storage: storage["type"].(string),
		Kind:    KindPushpull,
	}
	if s.redis != nil {
		s.Target.RedisPID = s.redis.Pid()
	}
	return s, nil
}

// pinned returns the command that runs exe with args, on cpus when set:
// taskset execs the program, so the pid started is the program's.
func pinned(cpus, exe string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(exe, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpus, exe}, args...)...)
}

// writeConfig writes the server's config to file, its servers on port 0:
// the server reports the free ports it bound.
func writeConfig(file string, storage map[string]any, key string) error {
	// Two listeners as the original deploys them: the public subscribe
	// port and the internal publish port. Only what the bench needs is
	// written; the server's defaults fill in the rest.
	cfg := map[string]any{
		"servers": []config.Server{
			{Name: "bench-sub", Hostname: "127.0.0.1", Port: 0,
				Routes: config.Routes{Sub: []string{"/bitrix/sub/", "/bitrix/subws/"}}},
			{Name: "bench-pub", Hostname: "127.0.0.1", Port: 0,
				Routes: config.Routes{Pub: []string{"/bitrix/pub/"}, Stat: []string{"/server-stat/"}}},
		},
		"storage": storage,
		// Info logs the listening lines the bench reads and little else:
		// per-connection logging (debug) would be measured as server cost.
		"log":             map[string]string{"level": "info"},
		"shutdownTimeout": 2,
	}
	if key != "" {
		cfg["security"] = map[string]string{"key": key}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// startRedis starts a redis-server without persistence on a free loopback
// port and returns the port once it accepts connections.
func (s *Spawned) startRedis(ctx context.Context, bin string) (port int, err error) {
	s.redis, port, err = startRedis(ctx, bin, s.dir)
	return port, err
}

// startRedis starts a redis-server (bin; from PATH when empty) without
// persistence on a free loopback port, working in dir, and returns it and
// its port once it accepts connections.
func startRedis(ctx context.Context, bin, dir string) (p *spawn.Process, port int, err error) {
	if bin == "" {
		bin = "redis-server"
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = spawn.RetryPorts(func() error {
		ports, err := spawn.FreePorts(1)
		if err != nil {
			return err
		}
		port = ports[0]
		p, err = spawn.Start("redis-server", exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir))
		if err != nil {
			return err
		}
		if err := p.WaitLine(wait, "Ready to accept connections"); err != nil {
			_ = p.Stop(5 * time.Second)
			p = nil
			return err
		}
		return nil
	})
	return p, port, err
}

// Alive returns an error if the server has exited.
func (s *Spawned) Alive() error { return s.server.Exited() }

// Stop stops the server, then Redis, and removes the config.
func (s *Spawned) Stop() {
	for _, p := range []*spawn.Process{s.server, s.redis} {
		if p != nil {
			_ = p.Stop(5 * time.Second)
		}
	}
	os.RemoveAll(s.dir)
}
