package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/backend"
	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/redisengine"
	"github.com/pushpull/pushpull/internal/server"
	"github.com/pushpull/pushpull/internal/store"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Parse(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	for _, key := range cfg.Ignored {
		log.Warn("unknown config key ignored", "key", key)
	}
	uid := cfg.UniqueID()

	h := hub.New()
	late := &lateServer{}
	eng, err := newEngine(ctx, cfg, log, h, late, uid)
	if err != nil {
		return err
	}
	defer eng.Close()
	srv, err := server.New(cfg, eng, h, log)
	if err != nil {
		return err
	}
	late.s.Store(srv)
	api, err := backend.FromConfig(cfg, srv.Engine(), log)
	if err != nil {
		return err
	}
	defer api.Close()
	srv.SetBackend(api)
	go api.Run(ctx, time.Second)
	if err := srv.Listen(); err != nil {
		return err
	}
	for i, a := range srv.Addrs() {
		log.Info("listening", "server", cfg.Servers[i].Name, "addr", a.String(), "tls", cfg.Servers[i].SSL != nil)
	}
	if addr := os.Getenv("PUSHPULL_PPROF"); addr != "" {
		go servePprof(addr, log)
	}
	log.Info("started", "storage", cfg.Storage.Type, "processUniqueId", uid, "pid", os.Getpid(), "version", version)
	err = srv.Serve(ctx)
	// Every publish has finished by now: what the snapshot holds is all
	// that was accepted.
	if late.snapshot != nil {
		late.snapshot()
	}
	return err
}

func newEngine(ctx context.Context, cfg *config.Config, log *slog.Logger, h *hub.Hub, late *lateServer, uid string) (engine.Engine, error) {
	ttl := store.TTLs{
		Message: config.Seconds(cfg.Storage.MessageTTL),
		Channel: config.Seconds(cfg.Storage.ChannelTTL),
	}
	switch cfg.Storage.Type {
	case "", "memory":
		mem := store.NewMemory(ttl, nil)
		if path := cfg.Storage.Snapshot; path != "" {
			loaded, err := mem.LoadSnapshot(path)
			if err != nil {
				return nil, fmt.Errorf("storage.snapshot: %w", err)
			}
			if loaded {
				n, _ := mem.Len()
				log.Info("history restored", "snapshot", path, "messages", n)
			}
			late.snapshot = func() {
				if err := mem.SaveSnapshot(path); err != nil {
					log.Error("history not saved", "snapshot", path, "err", err)
					return
				}
				n, _ := mem.Len()
				log.Info("history saved", "snapshot", path, "messages", n)
			}
		}
		go mem.Run(ctx, time.Second)
		return engine.NewLocal(mem, h, late, uid), nil
	case "redis":
		o := redisengine.OptionsFromConfig(cfg)
		o.TTLs = ttl
		o.ProcessUniqueID = uid
		o.Log = log
		o.OnResync = late.Resync
		return redisengine.New(ctx, o, h, late)
	default:
		return nil, fmt.Errorf("storage.type: %q is not supported", cfg.Storage.Type)
	}
}

// lateServer reaches the server, which is built after the engine that
// reports its connection counts and asks it to resync.
// The engine's goroutines may call it before the server exists.
type lateServer struct {
	s        atomic.Pointer[server.Server]
	snapshot func() // saves the memory store; nil without a snapshot file
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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// servePprof serves the runtime profiles on addr, for measuring a running
// server (PUSHPULL_PPROF=127.0.0.1:6060). Never expose it publicly.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("profiling", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("profiling listener failed", "err", err)
	}
}
