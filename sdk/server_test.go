package sdk_test

import (
	"context"
	"io"
	"log/slog"

	"github.com/pushpull/pushpull/internal/app"
	"github.com/pushpull/pushpull/internal/config"
)

// testServer is a real pushpull server running in the test process, in
// the stock two-server layout, with memory storage.
type testServer struct {
	Key        string // security.key
	BackendKey string
	SubURL     string // http://127.0.0.1:port/bitrix/sub/
	WSURL      string // ws://127.0.0.1:port/bitrix/subws/
	BackendURL string // http://127.0.0.1:port/pushpull/
	PubURL     string
	StatsURL   string

	stop context.CancelFunc
	done chan error
}

// startServer starts a server with the given keys; an empty backendKey
// leaves the backend API off.
func startServer(key, backendKey string, edit ...func(*config.Config)) (*testServer, error) {
	cfg := config.Default()
	for _, e := range edit {
		e(cfg)
	}
	cfg.Servers[0].Port, cfg.Servers[1].Port = 0, 0 // free ports, which New binds
	cfg.Security.Key, cfg.Security.BackendKey = key, backendKey
	cfg.ShutdownTimeout = 5
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		return nil, err
	}
	// New has bound the listeners: a connection made before Run serves
	// waits in the listen queue.
	sub, pub := a.Addrs()[0].String(), a.Addrs()[1].String()
	ts := &testServer{
		Key:        key,
		BackendKey: backendKey,
		SubURL:     "http://" + sub + "/bitrix/sub/",
		WSURL:      "ws://" + sub + "/bitrix/subws/",
		BackendURL: "http://" + pub + "/pushpull/",
		PubURL:     "http://" + pub + "/bitrix/pub/",
		StatsURL:   "http://" + pub + "/server-stat/",
		stop:       cancel,
		done:       make(chan error, 1),
	}
	go func() { ts.done <- a.Run(ctx) }()
	return ts, nil
}

// Close stops the server and waits until it has stopped.
func (s *testServer) Close() error {
	s.stop()
	return <-s.done
}
