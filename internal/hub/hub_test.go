package hub_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
)

func chanID(n int) string { return fmt.Sprintf("%032x", n) }

type delivery struct {
	p       *hub.Prepared
	channel string
}

// recorder is a subscriber that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	got []delivery
}

func (r *recorder) Deliver(p *hub.Prepared, channel string) hub.Flusher {
	r.mu.Lock()
	r.got = append(r.got, delivery{p, channel})
	r.mu.Unlock()
	return nil
}

// broadcast is Hub.Broadcast with a batch of its own, flushed after.
func broadcast(h *hub.Hub, m *protocol.Message) {
	b := hub.GetBatch()
	h.Broadcast(m, b)
	b.Flush()
}

func (r *recorder) take() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func counts(h *hub.Hub) map[string]int {
	out := make(map[string]int)
	h.Each(func(channel string, n int) {
		if _, dup := out[channel]; dup {
			panic("Each visited " + channel + " twice")
		}
		out[channel] = n
	})
	return out
}

func checkCounts(t *testing.T, h *hub.Hub, want map[string]int) {
	t.Helper()
	if got := counts(h); !maps.Equal(got, want) {
		t.Errorf("Each = %v, want %v", got, want)
	}
	if got := h.Channels(); got != len(want) {
		t.Errorf("Channels = %d, want %d", got, len(want))
	}
	for c, n := range want {
		if got := h.Count(c); got != n {
			t.Errorf("Count(%s) = %d, want %d", c, got, n)
		}
	}
}

func TestSubscribeUnsubscribe(t *testing.T) {
	h := hub.New()
	a, b, c := chanID(1), chanID(2), chanID(3)
	s1, s2 := &recorder{}, &recorder{}
	checkCounts(t, h, map[string]int{})
	if h.Count(a) != 0 {
		t.Error("Count of an empty hub")
	}

	h.Subscribe(s1, []string{a, b})
	h.Subscribe(s2, []string{b})
	checkCounts(t, h, map[string]int{a: 1, b: 2})

	h.Subscribe(s1, []string{a, b}) // again: a set, not a list
	checkCounts(t, h, map[string]int{a: 1, b: 2})

	h.Unsubscribe(s2, []string{a, c}) // not subscribed there: nothing happens
	checkCounts(t, h, map[string]int{a: 1, b: 2})

	h.Unsubscribe(s1, []string{a})
	checkCounts(t, h, map[string]int{b: 2})
	if h.Count(a) != 0 {
		t.Errorf("Count(a) = %d after its last subscriber left", h.Count(a))
	}

	h.Unsubscribe(s1, []string{b})
	h.Unsubscribe(s2, []string{b})
	checkCounts(t, h, map[string]int{})

	broadcast(h, &protocol.Message{Channels: []string{a, b}})
	if len(s1.take())+len(s2.take()) != 0 {
		t.Error("an unsubscribed subscriber got a message")
	}
}

func TestEachManyChannels(t *testing.T) {
	h := hub.New()
	want := make(map[string]int)
	subs := make([]*recorder, 10)
	for i := range subs {
		subs[i] = &recorder{}
	}
	for i := range 500 { // spread over every shard
		c := chanID(i)
		n := 1 + i%len(subs)
		for _, s := range subs[:n] {
			h.Subscribe(s, []string{c})
		}
		want[c] = n
	}
	checkCounts(t, h, want)
}

// TestBroadcast: a subscriber gets a message once for each of its channels
// the message was published to, each copy naming that channel, in the
// message's channel order (the original server's behaviour; clients drop
// repeats by mid).
func TestBroadcast(t *testing.T) {
	h := hub.New()
	a, b, c, x := chanID(1), chanID(2), chanID(3), chanID(4)
	onlyA, onlyB, both, bothReversed, onlyC := &recorder{}, &recorder{}, &recorder{}, &recorder{}, &recorder{}
	h.Subscribe(onlyA, []string{a})
	h.Subscribe(onlyB, []string{b})
	h.Subscribe(both, []string{a, b})
	h.Subscribe(bothReversed, []string{b, a})
	h.Subscribe(onlyC, []string{c})
	all := map[string]*recorder{"onlyA": onlyA, "onlyB": onlyB, "both": both, "bothReversed": bothReversed, "onlyC": onlyC}

	tests := []struct {
		channels []string
		want     map[string][]string // subscriber -> the channels its deliveries name
	}{
		{[]string{a}, map[string][]string{"onlyA": {a}, "both": {a}, "bothReversed": {a}}},
		{[]string{a, b}, map[string][]string{"onlyA": {a}, "onlyB": {b}, "both": {a, b}, "bothReversed": {a, b}}},
		{[]string{b, a}, map[string][]string{"onlyA": {a}, "onlyB": {b}, "both": {b, a}, "bothReversed": {b, a}}},
		{[]string{x, c, b}, map[string][]string{"onlyB": {b}, "both": {b}, "bothReversed": {b}, "onlyC": {c}}},
		{[]string{c, a, b}, map[string][]string{"onlyA": {a}, "onlyB": {b}, "both": {a, b}, "bothReversed": {a, b}, "onlyC": {c}}},
		{[]string{x}, map[string][]string{}},
		{nil, map[string][]string{}},
	}
	for _, tt := range tests {
		m := &protocol.Message{Channels: tt.channels, MID: "m"}
		broadcast(h, m)
		var shared *hub.Prepared
		for name, s := range all {
			got := s.take()
			var names []string
			for _, d := range got {
				names = append(names, d.channel)
				if d.p.Msg != m {
					t.Errorf("%v: %s got another message", tt.channels, name)
				}
				// One Prepared per broadcast, so that encodings are shared.
				if shared == nil {
					shared = d.p
				} else if d.p != shared {
					t.Errorf("%v: %s got its own Prepared", tt.channels, name)
				}
			}
			if !slices.Equal(names, tt.want[name]) {
				t.Errorf("%v: %s got it through %v, want %v", tt.channels, name, names, tt.want[name])
			}
		}
	}
}

// TestBroadcastManySubscribers: every subscriber of several channels, in
// different shards, gets a message to all of them once through each.
func TestBroadcastManySubscribers(t *testing.T) {
	h := hub.New()
	channels := make([]string, 20)
	for i := range channels {
		channels[i] = chanID(i)
	}
	subs := make([]*recorder, 300)
	for i := range subs {
		subs[i] = &recorder{}
		// Subscriber i has channels i%20, (i+7)%20 and (i+13)%20.
		h.Subscribe(subs[i], []string{channels[(i+13)%20], channels[i%20], channels[(i+7)%20]})
	}
	broadcast(h, &protocol.Message{Channels: channels})
	for i, s := range subs {
		var got []string
		for _, d := range s.take() {
			got = append(got, d.channel)
		}
		var want []string
		for j, c := range channels {
			if j == i%20 || j == (i+7)%20 || j == (i+13)%20 {
				want = append(want, c)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("subscriber %d got it through %v, want %v", i, got, want)
		}
	}
}

// TestBroadcastConcurrent runs subscriptions, broadcasts and reads at once,
// for the race detector; then checks the index is consistent.
func TestBroadcastConcurrent(t *testing.T) {
	h := hub.New()
	const workers, rounds = 8, 200
	channels := []string{chanID(1), chanID(2), chanID(3)}
	var wg sync.WaitGroup
	subs := make([]*recorder, workers)
	for w := range workers {
		subs[w] = &recorder{}
		wg.Go(func() {
			for i := range rounds {
				h.Subscribe(subs[w], channels)
				broadcast(h, &protocol.Message{MID: fmt.Sprint(w, "-", i), Channels: channels[i%3:]})
				h.Count(channels[0])
				h.Channels()
				h.Each(func(string, int) {})
				h.Unsubscribe(subs[w], channels[:2])
			}
		})
	}
	wg.Wait()
	checkCounts(t, h, map[string]int{channels[2]: workers})
	for w, s := range subs {
		seen := make(map[delivery]bool)
		own := 0
		for _, d := range s.take() {
			if !d.p.Msg.HasChannel(d.channel) {
				t.Fatalf("subscriber %d got a message through %s, not one of its channels", w, d.channel)
			}
			if seen[d] {
				t.Fatalf("subscriber %d got %s through %s twice", w, d.p.Msg.MID, d.channel)
			}
			seen[d] = true
			if strings.HasPrefix(d.p.Msg.MID, fmt.Sprint(w, "-")) {
				own++
			}
		}
		// Each worker was subscribed to every channel when it broadcast, so
		// it got each of its messages through each of the message's
		// channels.
		want := 0
		for i := range rounds {
			want += len(channels[i%3:])
		}
		if own != want {
			t.Errorf("subscriber %d got %d deliveries of its own broadcasts, want %d", w, own, want)
		}
	}
}

// flushCounter is a subscriber whose every delivery asks for a flush, and
// which counts the flushes it gets.
type flushCounter struct {
	flushed atomic.Int64
	inline  atomic.Int64
}

func (f *flushCounter) Deliver(*hub.Prepared, string) hub.Flusher { return f }

func (f *flushCounter) Flush(inline bool) {
	f.flushed.Add(1)
	if inline {
		f.inline.Add(1)
	}
}

// A large fan-out is flushed in chunks, by the broadcasting goroutine and
// the flush workers: every subscriber exactly once, each written inline by
// whoever took its chunk.
func TestLargeFanoutFlushesEachOnce(t *testing.T) {
	for _, n := range []int{1, hub.InlineFanout, hub.InlineFanout + 1, 200, 3000} {
		h := hub.New()
		subs := make([]*flushCounter, n)
		for i := range subs {
			subs[i] = &flushCounter{}
			h.Subscribe(subs[i], []string{chanID(0)})
		}
		for round := 1; round <= 3; round++ {
			broadcast(h, &protocol.Message{Channels: []string{chanID(0)}})
			testutil.WaitFor(t, fmt.Sprintf("%d subscribers flushed %d times", n, round), func() bool {
				for _, s := range subs {
					if s.flushed.Load() < int64(round) {
						return false
					}
				}
				return true
			})
		}
		for i, s := range subs {
			if got, in := s.flushed.Load(), s.inline.Load(); got != 3 || in != 3 {
				t.Fatalf("%d subscribers: subscriber %d flushed %d times (%d inline), want 3 inline", n, i, got, in)
			}
		}
	}
}
