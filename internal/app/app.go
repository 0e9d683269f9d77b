// Package app assembles one pushpull process from its configuration: the
// engine its storage names, the HTTP server, the backend API, and their
// order of start and stop.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/admin"
	"github.com/pushpull/pushpull/internal/backend"
	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/redisengine"
	"github.com/pushpull/pushpull/internal/server"
	"github.com/pushpull/pushpull/internal/store"
)

// App is a process ready to serve: its listeners are bound.
type App struct {
	// LogLevel, when set, is the level of the process's logger, which
	// Reload sets.
	LogLevel *slog.LevelVar

	cfg      *config.Config
	live     *config.Config // what runs after the reloads, for the next to compare with
	zeroPort []bool         // servers configured on port 0
	selfOnce sync.Once
	self     *http.Client // Alive's
	log      *slog.Logger
	engine   engine.Engine
	server   *server.Server
	backend  *backend.Service
	admin    *admin.Admin // nil without a backend key
	late     *lateServer
}

// recentErrors is how many warnings and errors the admin page lists.
const recentErrors = 100

// New builds the process for cfg and binds its listeners. ctx bounds the
// engine's background work. A server configured on port 0 gets the port
// it bound written into cfg.Servers, so that what derives addresses from
// the config (the URLs the backend hands out, the demo page) names it.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	// The admin page lists the last warnings and errors.
	ring := admin.NewRing(recentErrors)
	log = slog.New(ring.Handler(log.Handler()))
	a := &App{cfg: cfg, live: cfg, log: log, late: &lateServer{}}
	h := hub.New()
	eng, err := a.newEngine(ctx, h)
	if err != nil {
		return nil, err
	}
	a.engine = eng
	if a.server, err = server.New(cfg, eng, h, log); err != nil {
		eng.Close()
		return nil, err
	}
	a.late.s.Store(a.server)
	// The backend publishes through the server's engine, so that a
	// graceful stop loses none of its messages either.
	if a.backend, err = backend.FromConfig(cfg, a.server.Engine(), log); err != nil {
		eng.Close()
		return nil, err
	}
	if err := a.keepBackendState(); err != nil {
		a.backend.Close()
		eng.Close()
		return nil, err
	}
	a.server.SetBackend(a.backend)
	a.server.Registry().MustRegister(a.backend.PushCollectors()...)
	if cfg.Security.BackendKey != "" {
		a.admin = a.newAdmin(h, ring)
		a.server.SetAdmin(a.admin)
	}
	if err := a.server.Listen(); err != nil {
		a.backend.Close()
		eng.Close()
		return nil, err
	}
	for i, addr := range a.server.Addrs() {
		a.zeroPort = append(a.zeroPort, cfg.Servers[i].Port == 0)
		if tcp, ok := addr.(*net.TCPAddr); ok && cfg.Servers[i].Port == 0 {
			cfg.Servers[i].Port = tcp.Port
		}
	}
	a.backend.SetClientURLs(cfg)
	return a, nil
}

// Addrs returns the bound address of each configured server, in order.
func (a *App) Addrs() []net.Addr { return a.server.Addrs() }

// Run serves until ctx ends, then stops gracefully and releases everything.
func (a *App) Run(ctx context.Context) error {
	go a.backend.Run(ctx, time.Second)
	pushCtx, stopPush := context.WithCancel(ctx)
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		a.backend.RunPush(pushCtx)
	}()
	go trimMemory(ctx)
	if a.admin != nil {
		go a.admin.Run(ctx)
	}
	err := a.server.Serve(ctx)
	// The Web Push sends under way finish before the snapshot keeps
	// the queue.
	stopPush()
	<-pushDone
	// Every publish has finished by now: what a snapshot holds is all that
	// was accepted.
	if a.late.snapshot != nil {
		a.late.snapshot()
	}
	a.backend.Close()
	a.engine.Close()
	return err
}

func (a *App) newEngine(ctx context.Context, h *hub.Hub) (engine.Engine, error) {
	cfg, log := a.cfg, a.log
	ttl := store.TTLs{
		Message: config.Seconds(cfg.Storage.MessageTTL),
		Channel: config.Seconds(cfg.Storage.ChannelTTL),
		Default: cfg.Storage.DefaultLifetime(),
	}
	uid := cfg.UniqueID()
	switch cfg.Storage.Type {
	case "", "memory":
		// Message ids start with the store's start second. Waiting for a
		// second after the one this process began in makes it later than
		// that of any process before this one, so a crash and a restart
		// within a second issue no id twice; a snapshot, when there is
		// one, brings its own start back.
		waitPastStartSecond()
		mem := store.NewMemory(ttl, nil)
		mem.SetLimits(store.Limits{
			ChannelMessages: cfg.Storage.MaxChannelMessages,
			ChannelBytes:    int64(cfg.Storage.MaxChannelBytes),
			Bytes:           int64(cfg.Storage.MaxBytes),
		})
		if path := cfg.Storage.Snapshot; path != "" {
			loaded, err := mem.LoadSnapshot(path)
			if err != nil {
				return nil, fmt.Errorf("storage.snapshot: %w", err)
			}
			if loaded {
				n, _ := mem.Len()
				log.Info("history restored", "snapshot", path, "messages", n)
			}
			a.late.snapshot = func() {
				if err := mem.SaveSnapshot(path); err != nil {
					log.Error("history not saved", "snapshot", path, "err", err)
					return
				}
				n, _ := mem.Len()
				log.Info("history saved", "snapshot", path, "messages", n)
			}
		}
		go mem.Run(ctx, time.Second)
		return engine.NewLocal(mem, h, a.late, uid), nil
	case "redis":
		o := redisengine.OptionsFromConfig(cfg)
		o.TTLs = ttl
		o.ProcessUniqueID = uid
		o.Log = log
		o.OnResync = a.late.Resync
		return redisengine.New(ctx, o, h, a.late)
	default:
		return nil, fmt.Errorf("storage.type: %q is not supported", cfg.Storage.Type)
	}
}

// newAdmin builds the admin page of the process.
func (a *App) newAdmin(h *hub.Hub, ring *admin.Ring) *admin.Admin {
	e := a.server.Engine()
	o := admin.Options{
		Key:       a.cfg.Security.BackendKey,
		ProcessID: a.cfg.UniqueID(),
		Gatherer:  a.server.Registry(),
		Ready:     e.Ready,
		Processes: e.Stats,
		Channels:  h.Each,
		CheckKey:  func(key string) any { return a.server.CheckKey(key) },
		Errors:    ring,
	}
	if re, ok := a.engine.(*redisengine.Engine); ok {
		o.Redis = func(ctx context.Context) any { return re.State(ctx) }
	}
	return admin.New(o)
}

// processStart is about when this process began: package variables are
// set before main runs.
var processStart = time.Now()

// keepBackendState makes the backend API's memory state (users' channels,
// watch tags, last-seen times) survive a graceful restart beside the memory
// store's snapshot, so that publishes by user and tag reach the clients
// that reconnect with the channels they hold.
func (a *App) keepBackendState() error {
	path := a.cfg.Storage.Snapshot
	mem, ok := a.backend.State().(*backend.Memory)
	if path == "" || !ok {
		return nil
	}
	path += ".backend"
	if loaded, err := mem.LoadSnapshot(path); err != nil {
		return fmt.Errorf("storage.snapshot: %w", err)
	} else if loaded {
		a.log.Info("backend state restored", "snapshot", path)
	}
	saveStore := a.late.snapshot
	a.late.snapshot = func() {
		if saveStore != nil {
			saveStore()
		}
		if err := mem.SaveSnapshot(path); err != nil {
			a.log.Error("backend state not saved", "snapshot", path, "err", err)
			return
		}
		a.log.Info("backend state saved", "snapshot", path)
	}
	return nil
}

// waitPastStartSecond returns once the wall clock is in a second after
// the one the process began in (at once for a process up for a while).
func waitPastStartSecond() {
	next := processStart.Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	for time.Now().Unix() <= processStart.Unix() {
		time.Sleep(time.Millisecond)
	}
}

// lateServer reaches the server, which is built after the engine that
// reports its connection counts and asks it to resync; the engine's
// goroutines may call it before the server exists.
type lateServer struct {
	s        atomic.Pointer[server.Server]
	snapshot func() // saves the memory store and the backend state; nil without a snapshot file
}

func (l *lateServer) WebSockets() int64 {
	if s := l.s.Load(); s != nil {
		return server.Counters(s).WebSockets()
	}
	return 0
}

func (l *lateServer) Pollings() int64 {
	if s := l.s.Load(); s != nil {
		return server.Counters(s).Pollings()
	}
	return 0
}

func (l *lateServer) Resync() {
	if s := l.s.Load(); s != nil {
		s.Resync()
	}
}
