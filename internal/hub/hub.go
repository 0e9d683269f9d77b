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
	subs map[string]map[Subscriber]struct{}
}

// New returns an empty hub.
func New() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].subs = make(map[string]map[Subscriber]struct{})
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
		set := sh.subs[c]
		if set == nil {
			set = make(map[Subscriber]struct{}, 1)
			sh.subs[c] = set
		}
		set[s] = struct{}{}
		sh.mu.Unlock()
	}
}

// Unsubscribe removes s from channels.
func (h *Hub) Unsubscribe(s Subscriber, channels []string) {
	for _, c := range channels {
		sh := h.shard(c)
		sh.mu.Lock()
		if set := sh.subs[c]; set != nil {
			delete(set, s)
			if len(set) == 0 {
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
		set := sh.subs[c]
		p.Fanout = len(set)
		for s := range set {
			s.Deliver(p, c)
		}
		sh.mu.RUnlock()
	}
}

// Count returns how many subscribers channel has on this process.
func (h *Hub) Count(channel string) int {
	sh := h.shard(channel)
	sh.mu.RLock()
	n := len(sh.subs[channel])
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
		for c, set := range sh.subs {
			f(c, len(set))
		}
		sh.mu.RUnlock()
	}
}
