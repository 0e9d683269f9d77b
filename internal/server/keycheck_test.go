package server

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
)

// CheckKey tells the key in force from another, and the previous key
// while its grace period runs; spaces around a pasted key do not count.
func TestCheckKey(t *testing.T) {
	cfg := config.Default()
	cfg.Security.Key = "first"
	cfg.Security.KeyGracePeriod = 3600
	h := hub.New()
	s, err := New(cfg, engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, noCounters{}, "test"), h,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CheckKey("first"); !got.Configured || !got.Matches || got.Previous || got.Trimmed {
		t.Errorf("the key: %+v", got)
	}
	if got := s.CheckKey(" first\n"); !got.Matches || !got.Trimmed {
		t.Errorf("the key with spaces: %+v", got)
	}
	if got := s.CheckKey("firs"); got.Matches || got.Previous {
		t.Errorf("another key: %+v", got)
	}
	next := *cfg
	next.Security.Key = "second"
	l, err := s.newLive(&next, s.live.Load(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.live.Store(l)
	if got := s.CheckKey("first"); got.Matches || !got.Previous {
		t.Errorf("the replaced key: %+v; want previous", got)
	}
	if got := s.CheckKey("second"); !got.Matches {
		t.Errorf("the new key: %+v", got)
	}
	cfg = config.Default()
	s, _ = New(cfg, engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, noCounters{}, "test"), h,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := s.CheckKey("anything"); got.Configured || got.Matches {
		t.Errorf("no key configured: %+v", got)
	}
}
