package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/pushpull/pushpull/internal/app"
	"github.com/pushpull/pushpull/internal/config"
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
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	for i, addr := range a.Addrs() {
		log.Info("listening", "server", cfg.Servers[i].Name, "addr", addr.String(), "tls", cfg.Servers[i].SSL != nil)
	}
	if addr := os.Getenv("PUSHPULL_PPROF"); addr != "" {
		go servePprof(addr, log)
	}
	log.Info("started", "storage", cfg.Storage.Type, "processUniqueId", cfg.UniqueID(), "pid", os.Getpid(), "version", version)
	return a.Run(ctx)
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
