package backend

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/sdk"
)

// states runs f on the memory state and, when redis-server is installed,
// on a Redis state.
func states(t *testing.T, f func(t *testing.T, s State)) {
	t.Run("memory", func(t *testing.T) { f(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		c := startRedis(t)
		f(t, NewRedis(c, "test:"))
	})
}

func startRedis(t *testing.T) rueidis.Client {
	t.Helper()
	r := redistest.Start(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestStateIssue(t *testing.T) {
	states(t, func(t *testing.T, s State) {
		ctx := context.Background()
		t0 := time.UnixMilli(1_800_000_000_000)
		keep := 20 * time.Second
		ch := func(id string, start time.Time) Channel {
			return Channel{ID: id, Public: "p" + id, Start: start, End: start.Add(10 * time.Second)}
		}
		o, rotated, err := s.Issue(ctx, "user:1", ch("a", t0), t0, keep)
		if err != nil || rotated || o.Current.ID != "a" || o.Previous != nil {
			t.Fatalf("first issue: %+v rotated %v err %v; want a, no rotation", o, rotated, err)
		}
		// Before its end the channel stays.
		o, rotated, err = s.Issue(ctx, "user:1", ch("b", t0.Add(5*time.Second)), t0.Add(5*time.Second), keep)
		if err != nil || rotated || o.Current.ID != "a" {
			t.Fatalf("issue before the end: %+v rotated %v err %v; want a kept", o, rotated, err)
		}
		if due, _ := s.Due(ctx, t0.Add(9*time.Second), 10); len(due) != 0 {
			t.Errorf("due before the end: %v", due)
		}
		if due, _ := s.Due(ctx, t0.Add(10*time.Second), 10); !slices.Equal(due, []string{"user:1"}) {
			t.Errorf("due at the end: %v; want [user:1]", due)
		}
		// At its end it is replaced, once: the second caller gets the new one.
		t1 := t0.Add(10 * time.Second)
		o, rotated, err = s.Issue(ctx, "user:1", ch("c", t1), t1, keep)
		if err != nil || !rotated || o.Current.ID != "c" || o.Previous == nil || o.Previous.ID != "a" || o.Previous.Public != "pa" {
			t.Fatalf("issue at the end: %+v rotated %v err %v; want c replacing a", o, rotated, err)
		}
		o, rotated, err = s.Issue(ctx, "user:1", ch("d", t1), t1, keep)
		if err != nil || rotated || o.Current.ID != "c" {
			t.Fatalf("second issue at the end: %+v rotated %v; want c, no rotation", o, rotated)
		}
		loaded, err := s.Load(ctx, []string{"user:1", "user:2"}, t1)
		if err != nil || len(loaded) != 1 || loaded["user:1"].Current.ID != "c" || loaded["user:1"].Previous.ID != "a" {
			t.Fatalf("load: %+v, %v", loaded, err)
		}
		if !loaded["user:1"].Current.End.Equal(t1.Add(10 * time.Second)) {
			t.Errorf("end %v; want %v", loaded["user:1"].Current.End, t1.Add(10*time.Second))
		}
		// The previous channel is dropped once its storage time is over.
		if o := loaded["user:1"].live(t0.Add(keep), keep); o.Previous != nil {
			t.Errorf("previous channel kept past its storage time: %+v", o.Previous)
		}
		// Undue drops only an owner still due.
		if err := s.Undue(ctx, "user:1", t1); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.Due(ctx, t1.Add(10*time.Second), 10); !slices.Equal(due, []string{"user:1"}) {
			t.Errorf("due after undue of a rotated owner: %v; want [user:1]", due)
		}
		if err := s.Undue(ctx, "user:1", t1.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.Due(ctx, t1.Add(10*time.Second), 10); len(due) != 0 {
			t.Errorf("due after undue: %v", due)
		}
	})
}

func TestStateWatch(t *testing.T) {
	states(t, func(t *testing.T, s State) {
		ctx := context.Background()
		now := time.Now()
		if err := s.Watch(ctx, "1", []string{"A", "B"}, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.Watch(ctx, "2", []string{"B"}, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		w, err := s.Watchers(ctx, []string{"A", "B"}, now)
		slices.Sort(w)
		if err != nil || !slices.Equal(w, []string{"1", "2"}) {
			t.Errorf("watchers of A, B: %v %v; want [1 2]", w, err)
		}
		// User 2's watch has ended by now+2s; extending it is refused.
		later := now.Add(2 * time.Second)
		if w, _ := s.Watchers(ctx, []string{"B"}, later); !slices.Equal(w, []string{"1"}) {
			t.Errorf("watchers of B after user 2's watch ended: %v; want [1]", w)
		}
		ok, err := s.Extend(ctx, "2", []string{"B"}, later, later.Add(time.Hour))
		if err != nil || !slices.Equal(ok, []bool{false}) {
			t.Errorf("extend of an ended watch: %v %v; want [false]", ok, err)
		}
		// User 1's watch of A is extended past its first end.
		ok, err = s.Extend(ctx, "1", []string{"A", "C"}, later, now.Add(time.Hour))
		if err != nil || !slices.Equal(ok, []bool{true, false}) {
			t.Errorf("extend: %v %v; want [true false]", ok, err)
		}
		if w, _ := s.Watchers(ctx, []string{"A"}, now.Add(30*time.Minute)); !slices.Equal(w, []string{"1"}) {
			t.Errorf("watchers of A after the extension: %v; want [1]", w)
		}
		if err := s.Unwatch(ctx, "1", []string{"A"}); err != nil {
			t.Fatal(err)
		}
		if w, _ := s.Watchers(ctx, []string{"A"}, now); len(w) != 0 {
			t.Errorf("watchers after unwatch: %v", w)
		}
		if err := s.Seen(ctx, []string{"1"}, now); err != nil {
			t.Fatal(err)
		}
		seen, err := s.LastSeen(ctx, []string{"1", "2"})
		if err != nil || len(seen) != 1 || seen["1"].UnixMilli() != now.UnixMilli() {
			t.Errorf("last seen: %v %v; want only user 1 at %v", seen, err, now)
		}
	})
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type zero struct{}

func (zero) WebSockets() int64 { return 0 }
func (zero) Pollings() int64   { return 0 }

// sub is a hub subscriber that records what it receives.
type sub struct{ got []*protocol.Message }

func (s *sub) Deliver(p *hub.Prepared, _ string) hub.Flusher {
	s.got = append(s.got, p.Msg)
	return nil
}

func newService(t testing.TB, h *hub.Hub, clk *clock) *Service {
	t.Helper()
	signer, _ := protocol.NewSigner("key", "sha1")
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, zero{}, "test")
	return New(Options{
		Engine: e, State: NewMemory(), Signer: signer, Key: "bk", Version: 3,
		WriteTTL: 10 * time.Second, StorageTTL: 30 * time.Second, WatchTTL: time.Minute,
		Now: clk.now,
	})
}

// A due channel with a reader is rotated by Rotate: the old channel gets
// channel_expire naming the new one, and later publishes by user id reach
// both until the old one's storage time ends.
func TestRotate(t *testing.T) {
	h := hub.New()
	clk := &clock{time.Now()}
	s := newService(t, h, clk)
	ctx := context.Background()
	cfg, err := s.Config(ctx, "5")
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := strings.Cut(cfg.Channels["private"].ID, ".")
	r := &sub{}
	h.Subscribe(r, []string{old})

	clk.t = clk.t.Add(10 * time.Second)
	n, err := s.Rotate(ctx)
	if err != nil || n != 1 {
		t.Fatalf("rotate: %d %v; want 1 (only the private channel has a reader)", n, err)
	}
	if len(r.got) != 1 {
		t.Fatalf("old channel got %d messages; want channel_expire", len(r.got))
	}
	var notice struct {
		ModuleID string `json:"module_id"`
		Command  string `json:"command"`
		Params   struct {
			Action     string            `json:"action"`
			Channel    map[string]string `json:"channel"`
			NewChannel sdk.ChannelInfo   `json:"new_channel"`
		} `json:"params"`
	}
	if err := json.Unmarshal(r.got[0].Body, &notice); err != nil {
		t.Fatal(err)
	}
	cfg2, _ := s.Config(ctx, "5")
	if notice.ModuleID != "pull" || notice.Command != "channel_expire" || notice.Params.Action != "reconnect" ||
		notice.Params.Channel["type"] != "private" || notice.Params.NewChannel != cfg2.Channels["private"] {
		t.Errorf("notice %+v; want channel_expire to %+v", notice, cfg2.Channels["private"])
	}
	if n, _ := s.Rotate(ctx); n != 0 {
		t.Errorf("second rotate replaced %d channels; want 0", n)
	}
	p, err := s.Publish(ctx, Target{Users: []string{"5", "6"}}, Message{ModuleID: "m", Command: "c"}, 0)
	if err != nil || p.Channels != 2 || p.Users != 1 || len(p.MIDs) != 1 {
		t.Errorf("publish after rotation: %+v %v; want one message to the new and old channels", p, err)
	}
	if len(r.got) != 2 {
		t.Errorf("old channel got %d messages; want the notice and the publish", len(r.got))
	}
	clk.t = clk.t.Add(25 * time.Second) // past the old channel's storage time, the new one rotates lazily
	p, err = s.Publish(ctx, Target{Users: []string{"5"}}, Message{ModuleID: "m", Command: "c"}, 0)
	if err != nil || p.Channels != 2 {
		t.Errorf("publish later: %+v %v; want the newest and the previous channel", p, err)
	}
	if len(r.got) != 2 {
		t.Errorf("a channel past its storage time still receives: %d messages", len(r.got))
	}
}
