package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

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
func startServer(key, backendKey string) (*testServer, error) {
	cfg := config.Default()
	sub, err := freePort()
	if err != nil {
		return nil, err
	}
	pub, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg.Servers[0].Port, cfg.Servers[1].Port = sub, pub
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
	ts := &testServer{
		Key:        key,
		BackendKey: backendKey,
		SubURL:     "http://127.0.0.1:" + strconv.Itoa(sub) + "/bitrix/sub/",
		WSURL:      "ws://127.0.0.1:" + strconv.Itoa(sub) + "/bitrix/subws/",
		BackendURL: "http://127.0.0.1:" + strconv.Itoa(pub) + "/pushpull/",
		PubURL:     "http://127.0.0.1:" + strconv.Itoa(pub) + "/bitrix/pub/",
		StatsURL:   "http://127.0.0.1:" + strconv.Itoa(pub) + "/server-stat/",
		stop:       cancel,
		done:       make(chan error, 1),
	}
	go func() { ts.done <- a.Run(ctx) }()
	// Serve starts its listeners' loops in goroutines: wait until one answers.
	for range 200 {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(pub) + "/healthz")
		if err == nil {
			resp.Body.Close()
			return ts, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Close()
	return nil, errors.New("the test server does not answer")
}

// Close stops the server and waits until it has stopped.
func (s *testServer) Close() error {
	s.stop()
	return <-s.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
