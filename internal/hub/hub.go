// Package hub maps channels to the connections subscribed to them on this
// process and fans each message out to them, encoded once per format.
package hub

import (
	"hash/maphash"
	"sync"

	"github.com/pushpull/pushpull/protocol"
)

// Subscriber is a connection or a held request waiting for messages.
type Subscriber interface {
	// Deliver hands over a message that reached the subscriber through
	// channel. Deliver must not block: a subscriber that cannot keep up
	// drops itself, and must not call back into the hub.
	Deliver(p *Prepared, channel string)
}

const shardCount = 64

// Hub is the channel -> subscribers index of one process.
type Hub struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu   sync.RWMutex
	subs map[string]subscribers
}

// subscribers of one channel. Most channels are one user's private
// channel with a single connection: that one needs no set of its own.
type subscribers struct {
	one  Subscriber              // the only subscriber, or nil
	many map[Subscriber]struct{} // two or more
}

func (e subscribers) len() int {
	if e.one != nil {
		return 1
	}
	return len(e.many)
}

// New returns an empty hub.
func New() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].subs = make(map[string]subscribers)
	}
	return h
}

func (h *Hub) shard(channel string) *shard {
	return &h.shards[maphash.String(h.seed, channel)%shardCount]
}

// Subscribe adds s to channels.
func (h *Hub) Subscribe(s Subscriber, channels []string) {
	for _, c := range channels {
		sh := h.shard(c)
		sh.mu.Lock()
		e := sh.subs[c]
		switch {
		case e.one == nil && e.many == nil:
			e.one = s
		case e.many != nil:
			e.many[s] = struct{}{}
		case e.one != s:
			e.many = map[Subscriber]struct{}{e.one: {}, s: {}}
			e.one = nil
		}
		sh.subs[c] = e
		sh.mu.Unlock()
	}
}

// Unsubscribe removes s from channels.
func (h *Hub) Unsubscribe(s Subscriber, channels []string) {
	for _, c := range channels {
		sh := h.shard(c)
		sh.mu.Lock()
		e, ok := sh.subs[c]
		switch {
		case !ok:
		case e.one == s:
			delete(sh.subs, c)
		case e.many != nil:
			delete(e.many, s)
			if len(e.many) == 0 {
				delete(sh.subs, c)
			}
		}
		sh.mu.Unlock()
	}
}

// Broadcast delivers m to every subscriber of its channels on this
// process, once per channel, in the order Broadcast is called. A subscriber
// of two of the message's channels gets it twice, each copy naming its
// channel, as the original server did; clients drop the repeat by mid.
func (h *Hub) Broadcast(m *protocol.Message) {
	p := NewPrepared(m)
	for _, c := range m.Channels {
		sh := h.shard(c)
		sh.mu.RLock()
		e := sh.subs[c]
		p.Fanout = e.len()
		if e.one != nil {
			e.one.Deliver(p, c)
		}
		for s := range e.many {
			s.Deliver(p, c)
		}
		sh.mu.RUnlock()
	}
}

// Count returns how many subscribers channel has on this process.
func (h *Hub) Count(channel string) int {
	sh := h.shard(channel)
	sh.mu.RLock()
	n := sh.subs[channel].len()
	sh.mu.RUnlock()
	return n
}

// Channels returns how many channels have subscribers on this process.
func (h *Hub) Channels() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.subs)
		sh.mu.RUnlock()
	}
	return n
}

// Each calls f for every channel with subscribers on this process.
func (h *Hub) Each(f func(channel string, subscribers int)) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for c, e := range sh.subs {
			f(c, e.len())
		}
		sh.mu.RUnlock()
	}
}
