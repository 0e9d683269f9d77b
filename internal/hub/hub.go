// Package hub maps channels to the connections subscribed to them on this
// process and fans each message out to them, encoded once per format.
package hub

import (
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pushpull/pushpull/protocol"
)

// Subscriber is a connection or a held request waiting for messages.
type Subscriber interface {
	// Deliver queues a message that reached the subscriber through
	// channel. It runs while the caller holds the lock that orders
	// deliveries (see LOCKS.md at the root of the tree), so it only queues:
	// no socket I/O, no blocking, no call into the hub. A subscriber left
	// with queued bytes that nobody is writing yet returns a Flusher, which
	// the caller runs once it holds no lock (Batch.Flush); otherwise nil.
	Deliver(p *Prepared, channel string) Flusher
}

// Flusher writes what a Subscriber queued.
type Flusher interface {
	// Flush writes the queued bytes. With inline set the calling goroutine
	// writes them itself, without ever blocking (a small fan-out saves a
	// hand-off); otherwise a worker does. The caller holds no lock.
	Flush(inline bool)
}

// InlineFanout is the largest batch whose flushes the delivering goroutine
// runs itself, all of them: for a few subscribers that saves a hand-off per
// message.
const InlineFanout = 4

// chunkFanout is the least a flush worker is handed of a larger batch.
const chunkFanout = 64

// Batch gathers what broadcasts leave to flush, so that it is written after
// the caller has released its locks. The zero value is ready; a Batch is
// not safe for concurrent use.
type Batch struct {
	subs    []Subscriber // scratch: one channel's subscribers, copied out of the shard
	pending []Flusher
}

var batches = sync.Pool{New: func() any { return new(Batch) }}

// GetBatch returns an empty batch from a pool; Flush returns it.
func GetBatch() *Batch { return batches.Get().(*Batch) }

// Flush runs the flushers gathered and puts b back in the pool: b must not
// be used afterwards. Call it holding no lock.
//
// A large fan-out is cut in one chunk per processor: the calling goroutine
// writes the first itself and flush workers the others, each chunk with one
// hand-off, so the sockets are written on every core at once. A chunk no
// worker is free to take is written by the caller too. Each session's own
// queue keeps its messages in order whoever writes it.
func (b *Batch) Flush() {
	n := len(b.pending)
	size := n // a small batch is one chunk, the caller's
	if n > InlineFanout {
		parts := min(flushWorkers.procs, max(n/chunkFanout, 1))
		size = (n + parts - 1) / parts
	}
	for start := size; start < n; start += size {
		chunk := slices.Clone(b.pending[start:min(start+size, n)])
		select {
		case flushWorkers.chunks <- chunk:
		default:
			runChunk(chunk)
		}
	}
	runChunk(b.pending[:size])
	clear(b.pending)
	b.pending = b.pending[:0]
	if cap(b.pending) > 4096 {
		b.pending = nil
	}
	batches.Put(b)
}

func runChunk(fs []Flusher) {
	for _, f := range fs {
		f.Flush(true)
	}
}

// flushWorkers take the chunks of large fan-outs; one fewer than the
// processors, since the goroutine that broadcast writes a chunk itself.
var flushWorkers = func() (w struct {
	procs  int
	chunks chan []Flusher
}) {
	w.procs = runtime.GOMAXPROCS(0)
	w.chunks = make(chan []Flusher, 4*w.procs)
	for i := 1; i < w.procs; i++ {
		go func() {
			for c := range w.chunks {
				runChunk(c)
			}
		}()
	}
	return w
}()

const shardCount = 64

// Hub is the channel -> subscribers index of one process.
type Hub struct {
	seed      maphash.Seed
	delivered atomic.Int64 // messages handed to subscribers (one per subscriber and channel)
	shards    [shardCount]shard
}

// Delivered returns how many deliveries Broadcast made: one per
// subscriber and channel of each message.
func (h *Hub) Delivered() int64 { return h.delivered.Load() }

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
//
// Each channel's subscribers are copied out under the shard's lock and
// delivered to after it is released; what they leave to write goes to b.
// The caller orders broadcasts (it holds the engine's delivery lock) and
// flushes b once it has released that lock.
func (h *Hub) Broadcast(m *protocol.Message, b *Batch) {
	p := NewPrepared(m)
	n := 0
	for _, c := range m.Channels {
		sh := h.shard(c)
		subs := b.subs[:0]
		sh.mu.RLock()
		e := sh.subs[c]
		if e.one != nil {
			subs = append(subs, e.one)
		}
		for s := range e.many {
			subs = append(subs, s)
		}
		sh.mu.RUnlock()
		n += len(subs)
		for i, s := range subs {
			if f := s.Deliver(p, c); f != nil {
				b.pending = append(b.pending, f)
			}
			subs[i] = nil
		}
		b.subs = subs[:0]
	}
	if cap(b.subs) > 4096 {
		b.subs = nil
	}
	if n > 0 {
		h.delivered.Add(int64(n))
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
