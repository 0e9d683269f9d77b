package store_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// model is the memory store's contract written the simple way: each
// channel's index is a slice filtered on every read.
type model struct {
	ttl      store.TTLs
	channels map[string]*modelIndex
	kept     []*protocol.Message // what Expire has not freed yet
}

type modelIndex struct {
	expires time.Time
	msgs    []*protocol.Message
}

func (md *model) save(m *protocol.Message) {
	for _, c := range m.Channels {
		idx := md.channels[c]
		if idx == nil || !m.Created.Before(idx.expires) {
			idx = &modelIndex{expires: m.Created.Add(md.ttl.Channel)}
			md.channels[c] = idx
		}
		idx.msgs = append(idx.msgs, m)
	}
	md.kept = append(md.kept, m)
}

func live(m *protocol.Message, now time.Time) bool { return now.Before(m.Expires) }

// visible returns the live messages of channels, oldest first, once each.
func (md *model) visible(channels []string, now time.Time) []*protocol.Message {
	var out []*protocol.Message
	for _, c := range channels {
		idx := md.channels[c]
		if idx == nil || !now.Before(idx.expires) {
			continue
		}
		for _, m := range idx.msgs {
			if live(m, now) && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(x, y *protocol.Message) int {
		switch {
		case x.MID < y.MID:
			return -1
		case x.MID > y.MID:
			return 1
		}
		return 0
	})
	return out
}

// since relies on mids comparing as strings, as a Redis lexical range does.
func (md *model) since(channels []string, after string, now time.Time) []*protocol.Message {
	out := md.visible(channels, now)
	if !protocol.ValidMID(after) {
		return out
	}
	return slices.DeleteFunc(out, func(m *protocol.Message) bool { return m.MID <= after })
}

func (md *model) last(channels []string, now time.Time) string {
	v := md.visible(channels, now)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1].MID
}

// expire frees expired messages, and indexes that are past their TTL or
// hold nothing live.
func (md *model) expire(now time.Time) {
	md.kept = slices.DeleteFunc(md.kept, func(m *protocol.Message) bool { return !live(m, now) })
	for c, idx := range md.channels {
		idx.msgs = slices.DeleteFunc(idx.msgs, func(m *protocol.Message) bool { return !live(m, now) })
		if len(idx.msgs) == 0 || !now.Before(idx.expires) {
			delete(md.channels, c)
		}
	}
}

// TestMemoryAgainstModel runs random operations with random expiries on the
// memory store and on the model; they must agree on every read and on what
// is kept after each Expire.
func TestMemoryAgainstModel(t *testing.T) {
	ttl := store.TTLs{Message: 20 * time.Second, Channel: 45 * time.Second}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		c := newClock()
		s := store.NewMemory(ttl, c.now)
		md := &model{ttl: ttl, channels: make(map[string]*modelIndex)}
		var saved []*protocol.Message

		channelSet := func() []string {
			var out []string
			for range 1 + r.IntN(3) {
				out = append(out, chanID(r.IntN(6)))
			}
			return out
		}
		afterMID := func() string {
			switch k := r.IntN(10); {
			case k < 5 && len(saved) > 0:
				return saved[r.IntN(len(saved))].MID
			case k == 5:
				return protocol.FormatMID(s.Start()-1, r.Uint64N(1000))
			case k == 6:
				return protocol.FormatMID(s.Start()+1, 0)
			case k == 7:
				return protocol.FormatMID(s.Start(), r.Uint64N(uint64(len(saved))+2))
			case k == 8:
				return "null"
			}
			return ""
		}

		for op := range 600 {
			switch k := r.IntN(20); {
			case k < 8:
				var chans []string
				for _, id := range channelSet() {
					if !slices.Contains(chans, id) { // the parsers drop duplicates
						chans = append(chans, id)
					}
				}
				expiry := []uint32{0, 1, 2, 3, 5, 8, 13, 21, 1 << 31}[r.IntN(9)]
				m := save(t, s, expiry, chans...)
				want := c.t.Add(ttl.Lifetime(expiry))
				if m.ID != uint64(len(saved)+1) || !m.Created.Equal(c.t) || !m.Expires.Equal(want) {
					t.Fatalf("seed %d op %d: Save assigned ID %d, Created %v, Expires %v", seed, op, m.ID, m.Created, m.Expires)
				}
				saved = append(saved, m)
				md.save(m)
			case k < 11:
				c.advance(time.Duration(r.IntN(4000)) * time.Millisecond)
			case k < 13:
				s.Expire()
				md.expire(c.t)
				msgs, chans := s.Len()
				if msgs != len(md.kept) || chans != len(md.channels) {
					t.Fatalf("seed %d op %d: after Expire Len = %d, %d; model keeps %d, %d",
						seed, op, msgs, chans, len(md.kept), len(md.channels))
				}
			case k < 18:
				chans, after := channelSet(), afterMID()
				got := since(t, s, after, chans...)
				want := md.since(chans, after, c.t)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: Since(%v, %q) = %v, model %v", seed, op, chans, after, mids(got), mids(want))
				}
			default:
				chans := channelSet()
				if got, want := last(t, s, chans...), md.last(chans, c.t); got != want {
					t.Fatalf("seed %d op %d: Last(%v) = %q, model %q", seed, op, chans, got, want)
				}
			}
		}

		// Whatever happened, once everything has expired nothing is kept.
		c.advance(ttl.Message + ttl.Channel)
		s.Expire()
		checkLen(t, s, 0, 0)
	}
}
