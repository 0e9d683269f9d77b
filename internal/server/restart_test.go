package server

import (
	"context"
	"log/slog"
	"testing"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
)

// The restart command is numbered once per installation: every subscriber
// of one clientId gets the same one, another clientId its own.
func TestRestartPerInstallation(t *testing.T) {
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), hub.New(), noCounters{}, "test")
	r := newRestarts(context.Background(), e, slog.New(slog.DiscardHandler))
	a1, a2, b := r.of("a|chan1"), r.of("a|chan2"), r.of("b|chan1")
	if a1 == nil || b == nil || a1 != a2 || a1 == b || a1.MID == b.MID || a1.MID == "" {
		t.Fatalf("restart commands %v %v %v: want one per installation, each with an id", a1, a2, b)
	}
	if p := r.of("plain"); p == nil || p == a1 || p == b {
		t.Fatalf("the personal installation's restart %v", p)
	}
}
