package store

import (
	"container/heap"
	"context"
	"sort"
	"sync"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// Memory is the embedded store: history in this process's memory, bounded
// by the message and channel TTLs and by Limits. Run must be running for
// expired messages to be freed.
type Memory struct {
	ttl   TTLs
	now   func() time.Time
	start int64

	mu        sync.Mutex
	limits    Limits
	counter   uint64
	channels  map[string]*history
	expiry    expiryHeap // every kept message, soonest expiry first
	order     []*entry   // every kept message, oldest first; order[:orderHead] are gone
	orderHead int
	bytes     int64  // sizes of the kept messages
	evicted   uint64 // messages dropped by Limits before they expired
}

// Limits bound what the memory store keeps; 0 leaves a bound off. A
// channel past its bounds loses its oldest messages; the store past its
// budget loses the oldest messages of all.
type Limits struct {
	ChannelMessages int   // messages one channel keeps
	ChannelBytes    int64 // bytes of messages one channel keeps
	Bytes           int64 // bytes of messages the whole store keeps
}

// entry is a kept message with its bookkeeping.
type entry struct {
	m     *protocol.Message
	size  int64
	refs  int // channel indexes holding it
	index int // in the expiry heap; -1 once out of it
}

// size is what a message costs the store, roughly: its bytes and a fixed
// overhead for the structures that hold it.
func size(m *protocol.Message) int64 {
	n := len(m.Body) + len(m.Dictionary) + 256
	for u, p := range m.UserParams {
		n += len(u) + len(p) + 48
	}
	for _, c := range m.Channels {
		n += len(c) + 16
	}
	return int64(n)
}

type history struct {
	slots   []slot    // ordered by id; a removed message leaves its slot with e == nil
	head    int       // slots[:head] are gone
	holes   int       // removed slots after head
	count   int       // live slots
	bytes   int64     // their sizes
	expires time.Time // the index itself expires channelTTL after its first write
}

type slot struct {
	id uint64
	e  *entry
}

// NewMemory returns an empty memory store. now may be nil for time.Now.
func NewMemory(ttl TTLs, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{ttl: ttl, now: now, start: now().Unix(), channels: make(map[string]*history)}
}

// SetLimits bounds what the store keeps from now on.
func (s *Memory) SetLimits(l Limits) {
	s.mu.Lock()
	s.limits = l
	s.mu.Unlock()
}

// Usage is what the store holds.
type Usage struct {
	Messages int
	Bytes    int64
	Evicted  uint64 // messages dropped by Limits since the start
}

// Usage returns what the store holds now.
func (s *Memory) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Usage{Messages: len(s.expiry), Bytes: s.bytes, Evicted: s.evicted}
}

// Start returns the server start time used in message ids.
func (s *Memory) Start() int64 { return s.start }

func (s *Memory) assign(m *protocol.Message) {
	s.counter++
	m.ID = s.counter
	m.MID = protocol.FormatMID(s.start, m.ID)
	m.Created = s.now()
	m.Expires = s.ttl.Expires(m.Created, m.Expiry)
}

// Reserve implements Store.
func (s *Memory) Reserve(_ context.Context, m *protocol.Message) error {
	s.mu.Lock()
	s.assign(m)
	s.mu.Unlock()
	return nil
}

// Save implements Store.
func (s *Memory) Save(_ context.Context, m *protocol.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assign(m)
	if m.Expires.IsZero() {
		return nil // transient: an id, nothing kept
	}
	s.keep(m, func(c string) *history {
		h := s.channels[c]
		if h == nil || !m.Created.Before(h.expires) {
			if h != nil {
				s.dropChannel(h)
			}
			h = &history{expires: m.Created.Add(s.ttl.Channel)}
			s.channels[c] = h
		}
		return h
	})
	return nil
}

// keep indexes m under each channel that index returns (nil: not that
// one), then enforces the limits. The caller holds s.mu.
func (s *Memory) keep(m *protocol.Message, index func(channel string) *history) {
	e := &entry{m: m, size: size(m)}
	for _, c := range m.Channels {
		h := index(c)
		if h == nil {
			continue
		}
		if n := len(h.slots); n > 0 && h.slots[n-1].e == e {
			continue // m names c twice
		}
		h.slots = append(h.slots, slot{m.ID, e})
		h.count++
		h.bytes += e.size
		e.refs++
		for h.count > 1 && (s.limits.ChannelMessages > 0 && h.count > s.limits.ChannelMessages ||
			s.limits.ChannelBytes > 0 && h.bytes > s.limits.ChannelBytes) {
			s.unindex(h, h.oldest())
		}
	}
	if e.refs == 0 {
		return
	}
	heap.Push(&s.expiry, e)
	s.order = append(s.order, e)
	s.bytes += e.size
	for s.limits.Bytes > 0 && s.bytes > s.limits.Bytes && len(s.expiry) > 1 {
		s.evictOldest()
	}
}

// unindex takes e out of h, counting it evicted when that was its last
// index. The caller holds s.mu.
func (s *Memory) unindex(h *history, e *entry) {
	if !h.remove(e) {
		return
	}
	if e.refs--; e.refs == 0 {
		s.release(e)
		s.evicted++
	}
}

// evictOldest drops the oldest kept message from every channel.
func (s *Memory) evictOldest() {
	for s.orderHead < len(s.order) {
		e := s.order[s.orderHead]
		s.order[s.orderHead] = nil
		s.orderHead++
		if e.index < 0 {
			continue // expired or evicted already
		}
		s.forget(e)
		s.evicted++
		break
	}
	s.compactOrder()
}

// forget drops e from every channel index and releases it.
func (s *Memory) forget(e *entry) {
	for _, c := range e.m.Channels {
		if h := s.channels[c]; h != nil {
			h.remove(e)
			if h.empty() {
				delete(s.channels, c)
			}
		}
	}
	e.refs = 0
	s.release(e)
}

// release forgets e: out of the expiry heap and the byte count.
func (s *Memory) release(e *entry) {
	if e.index >= 0 {
		heap.Remove(&s.expiry, e.index)
	}
	s.bytes -= e.size
}

func (s *Memory) compactOrder() {
	if s.orderHead > 1024 && s.orderHead > len(s.order)/2 {
		s.order = append([]*entry(nil), s.order[s.orderHead:]...)
		s.orderHead = 0
	}
}

// dropChannel forgets an index whose channel expired. Its messages are
// freed at their own expiry (or by the store's budget, oldest first).
func (s *Memory) dropChannel(h *history) {
	for _, sl := range h.slots[h.head:] {
		if sl.e != nil {
			sl.e.refs--
		}
	}
	h.drop()
}

// Since implements Store.
func (s *Memory) Since(_ context.Context, channels []string, after string) ([]*protocol.Message, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*protocol.Message
	for _, c := range channels {
		h := s.channels[c]
		if h == nil || !now.Before(h.expires) {
			continue
		}
		live := h.slots[h.head:]
		for _, sl := range live[s.searchAfter(live, after):] {
			if sl.e != nil && !sl.e.m.Expired(now) {
				out = append(out, sl.e.m)
			}
		}
	}
	if len(channels) > 1 {
		out = sortUnique(out)
	}
	return out, nil
}

// searchAfter returns the index of the first slot whose message sorts after
// the message id after. Every kept message carries this store's start time,
// so an id of an earlier start precedes them all and one of a later start
// follows them all.
func (s *Memory) searchAfter(live []slot, after string) int {
	if !protocol.ValidMID(after) {
		return 0
	}
	start, id := protocol.SplitMID(after)
	switch {
	case start < s.start:
		return 0
	case start > s.start:
		return len(live)
	}
	return sort.Search(len(live), func(i int) bool { return live[i].id > id })
}

// Last implements Store.
func (s *Memory) Last(_ context.Context, channels []string) (string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	last := ""
	for _, c := range channels {
		h := s.channels[c]
		if h == nil || !now.Before(h.expires) {
			continue
		}
		for i := len(h.slots) - 1; i >= h.head; i-- {
			if e := h.slots[i].e; e != nil && !e.m.Expired(now) {
				if e.m.MID > last {
					last = e.m.MID
				}
				break
			}
		}
	}
	return last, nil
}

func sortUnique(ms []*protocol.Message) []*protocol.Message {
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	out := ms[:0]
	for i, m := range ms {
		if i == 0 || m != ms[i-1] {
			out = append(out, m)
		}
	}
	return out
}

// Run frees expired messages and channels every interval until ctx ends.
func (s *Memory) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Expire()
		}
	}
}

// Expire frees every message and channel index past its lifetime.
func (s *Memory) Expire() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.expiry) > 0 && s.expiry[0].m.Expired(now) {
		s.forget(s.expiry[0])
	}
	for c, h := range s.channels {
		if !now.Before(h.expires) {
			s.dropChannel(h)
			delete(s.channels, c)
		}
	}
	for s.orderHead < len(s.order) && s.order[s.orderHead].index < 0 {
		s.order[s.orderHead] = nil
		s.orderHead++
	}
	s.compactOrder()
}

// Len returns how many messages and channel indexes are kept.
func (s *Memory) Len() (messages, channels int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expiry), len(s.channels)
}

func (h *history) empty() bool { return h.count == 0 }

func (h *history) drop() { h.slots, h.head, h.holes, h.count, h.bytes = nil, 0, 0, 0, 0 }

// oldest returns the oldest live entry of a non-empty index.
func (h *history) oldest() *entry { return h.slots[h.head].e }

// remove takes e out of the index, reporting whether it was there: the
// oldest entry (the usual case, with uniform TTLs) just moves head; any
// other leaves a hole that a compaction closes once holes outnumber live
// entries.
func (h *history) remove(e *entry) bool {
	live := h.slots[h.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].id >= e.m.ID })
	if i == len(live) || live[i].e != e {
		return false
	}
	live[i].e = nil
	h.holes++
	h.count--
	h.bytes -= e.size
	for h.head < len(h.slots) && h.slots[h.head].e == nil {
		h.head++
		h.holes--
	}
	if h.head > len(h.slots)/2 || h.holes > (len(h.slots)-h.head)/2 {
		h.compact()
	}
	return true
}

func (h *history) compact() {
	kept := make([]slot, 0, len(h.slots)-h.head-h.holes)
	for _, sl := range h.slots[h.head:] {
		if sl.e != nil {
			kept = append(kept, sl)
		}
	}
	h.slots, h.head, h.holes = kept, 0, 0
}

// expiryHeap orders entries by expiry; each knows its index in it.
type expiryHeap []*entry

func (e expiryHeap) Len() int           { return len(e) }
func (e expiryHeap) Less(i, j int) bool { return e[i].m.Expires.Before(e[j].m.Expires) }
func (e expiryHeap) Swap(i, j int) {
	e[i], e[j] = e[j], e[i]
	e[i].index, e[j].index = i, j
}
func (e *expiryHeap) Push(x any) {
	en := x.(*entry)
	en.index = len(*e)
	*e = append(*e, en)
}
func (e *expiryHeap) Pop() any {
	old := *e
	en := old[len(old)-1]
	old[len(old)-1] = nil
	*e = old[:len(old)-1]
	en.index = -1
	return en
}
