package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/sdk"
)

// Servers configured on port 0 listen on free ports of their own, and
// what is derived from the config names the ports they bound: the client
// URLs the backend hands out and the demo page's publish port.
func TestPortZero(t *testing.T) {
	cfg := config.Default()
	for i := range cfg.Servers {
		cfg.Servers[i].Port = 0
	}
	cfg.Security.BackendKey = "backend-key"
	cfg.ShutdownTimeout = 5
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	addrs := a.Addrs()
	sub, pub := addrs[0].(*net.TCPAddr), addrs[1].(*net.TCPAddr)
	if sub.Port == 0 || pub.Port == 0 || sub.Port == pub.Port {
		t.Fatalf("bound %v and %v; want two free ports", sub, pub)
	}
	if cfg.Servers[0].Port != sub.Port || cfg.Servers[1].Port != pub.Port {
		t.Errorf("config ports %d, %d; want the bound %d, %d", cfg.Servers[0].Port, cfg.Servers[1].Port, sub.Port, pub.Port)
	}

	got, err := sdk.New("http://"+pub.String()+"/pushpull/", cfg.Security.BackendKey).Config(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://" + sub.String() + "/bitrix/sub/"; got.Server.LongPolling != want {
		t.Errorf("long polling URL %q; want %q", got.Server.LongPolling, want)
	}
	if want := "ws://" + sub.String() + "/bitrix/subws/"; got.Server.WebSocket != want {
		t.Errorf("WebSocket URL %q; want %q", got.Server.WebSocket, want)
	}

	resp, err := http.Get("http://" + sub.String() + "/demo/defaults.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var defaults struct {
		PublishPort int `json:"publish_port"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&defaults); err != nil {
		t.Fatal(err)
	}
	if defaults.PublishPort != pub.Port {
		t.Errorf("demo publish port %d; want %d", defaults.PublishPort, pub.Port)
	}
}
