package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/server"
	"github.com/pushpull/pushpull/internal/store"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Parse(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	uid := cfg.UniqueID()

	h := hub.New()
	var srv *server.Server
	counters := lateCounters{&srv}
	eng, err := newEngine(ctx, cfg, h, counters, uid)
	if err != nil {
		return err
	}
	defer eng.Close()
	srv, err = server.New(cfg, eng, h, log)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	for i, a := range srv.Addrs() {
		log.Info("listening", "server", cfg.Servers[i].Name, "addr", a.String(), "tls", cfg.Servers[i].SSL != nil)
	}
	log.Info("started", "storage", cfg.Storage.Type, "processUniqueId", uid, "pid", os.Getpid(), "version", version)
	return srv.Serve(ctx)
}

func newEngine(ctx context.Context, cfg *config.Config, h *hub.Hub, c engine.Counters, uid string) (engine.Engine, error) {
	ttl := store.TTLs{
		Message: config.Seconds(cfg.Storage.MessageTTL),
		Channel: config.Seconds(cfg.Storage.ChannelTTL),
	}
	switch cfg.Storage.Type {
	case "", "memory":
		mem := store.NewMemory(ttl, nil)
		go mem.Run(ctx, time.Second)
		return engine.NewLocal(mem, h, c, uid), nil
	default:
		return nil, fmt.Errorf("storage.type: %q is not supported", cfg.Storage.Type)
	}
}

// lateCounters reads connection counts from a server built after the
// engine that reports them.
type lateCounters struct{ s **server.Server }

func (c lateCounters) WebSockets() int64 {
	if *c.s == nil {
		return 0
	}
	return server.Counters(*c.s).WebSockets()
}

func (c lateCounters) Pollings() int64 {
	if *c.s == nil {
		return 0
	}
	return server.Counters(*c.s).Pollings()
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
