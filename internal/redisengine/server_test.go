package redisengine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
)

// raw returns a plain client for checking what the engine wrote.
func raw(t testing.TB, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// recorder is a hub subscriber keeping what it is delivered, once per
// broadcast: the hub hands a message published to several of its channels
// over once per channel, with the same Prepared.
type recorder struct {
	mu   sync.Mutex
	got  []*protocol.Message
	last *hub.Prepared
	ch   chan struct{}
}

func newRecorder(h *hub.Hub, channels ...string) *recorder {
	r := &recorder{ch: make(chan struct{}, 1)}
	h.Subscribe(r, channels)
	return r
}

func (r *recorder) Deliver(p *hub.Prepared, _ string) hub.Flusher {
	r.mu.Lock()
	if p == r.last {
		r.mu.Unlock()
		return nil
	}
	r.last = p
	r.got = append(r.got, p.Msg)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) messages() []*protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*protocol.Message(nil), r.got...)
}

// wait returns the delivered messages once there are at least n.
func (r *recorder) wait(t testing.TB, n int) []*protocol.Message {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		if got := r.messages(); len(got) >= n {
			return got
		}
		select {
		case <-r.ch:
		case <-deadline.C:
			t.Fatalf("delivered %d messages, want %d", len(r.messages()), n)
		}
	}
}

type testEngine struct {
	*Engine
	hub *hub.Hub
}

func newEngine(t testing.TB, opt Options) *testEngine {
	t.Helper()
	if opt.ProcessUniqueID == "" {
		opt.ProcessUniqueID = fmt.Sprintf("p%d", rand.IntN(1e9))
	}
	h := hub.New()
	e, err := New(context.Background(), opt, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return &testEngine{Engine: e, hub: h}
}

func opts(addrs ...string) Options {
	return Options{Client: rueidis.ClientOption{InitAddress: addrs}, Log: slog.New(slog.DiscardHandler)}
}

func waitReady(t testing.TB, e *testEngine) {
	t.Helper()
	var err error
	testutil.WaitFor(t, "ready", func() bool {
		err = e.Ready(context.Background())
		return err == nil
	})
}

// pubSub starts, on the Redis at addr, a publisher-only engine and a
// subscribing one, and waits until both are ready.
func pubSub(t testing.TB, addr string) (pub, sub *testEngine) {
	t.Helper()
	po := opts(addr)
	po.PublishMode = true
	pub = newEngine(t, po)
	sub = newEngine(t, opts(addr))
	waitReady(t, pub)
	waitReady(t, sub)
	return pub, sub
}

func publish(t testing.TB, e *testEngine, body string, channels ...string) *protocol.Message {
	t.Helper()
	m := &protocol.Message{Channels: channels, Body: []byte(body)}
	if err := e.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mids(ms []*protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MID
	}
	return out
}

// rawCmd builds a command for a standalone server.
func rawCmd(name string, args ...string) rueidis.Completed {
	return rueidis.Builder{}.Arbitrary(name).Args(args...).Build()
}
