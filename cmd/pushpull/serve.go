package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pushpull/pushpull/internal/app"
	"github.com/pushpull/pushpull/internal/config"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	// SIGHUP reloads; caught from the start, it never ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	setup, err := config.ParseServe(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if setup.PerFile {
		return servePerFile(ctx, setup, hup, stderr)
	}
	cfg := setup.Processes[0].Config
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level, stderr)
	for _, note := range setup.Notes {
		log.Warn("config", "note", note)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	a.LogLevel = level
	for i, addr := range a.Addrs() {
		log.Info("listening", "server", cfg.Servers[i].Name, "addr", addr.String(), "tls", cfg.Servers[i].SSL != nil)
	}
	if addr := os.Getenv("PUSHPULL_PPROF"); addr != "" {
		go servePprof(addr, log)
	}
	log.Info("started", "storage", cfg.Storage.Type, "processUniqueId", cfg.UniqueID(), "pid", os.Getpid(), "version", version)
	// The supervision ends with ctx, or when Run fails on its own.
	sctx, cancel := context.WithCancel(ctx)
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		supervise(sctx, a, args, hup, log)
	}()
	err = a.Run(ctx)
	cancel()
	<-supervised
	return err
}

// newLogger returns the process's logger, at c's level, which level
// holds and a reload changes.
func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level))
	level.Set(l)
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
