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
// by the message and channel TTLs. Run must be running for expired messages
// to be freed.
type Memory struct {
	ttl   TTLs
	now   func() time.Time
	start int64

	mu       sync.Mutex
	counter  uint64
	channels map[string]*history
	expiry   expiryHeap // every kept message, soonest expiry first
}

type history struct {
	slots   []slot    // ordered by id; a removed message leaves its slot with m == nil
	head    int       // slots[:head] are gone
	holes   int       // removed slots after head
	expires time.Time // the index itself expires channelTTL after its first write
}

type slot struct {
	id uint64
	m  *protocol.Message
}

// NewMemory returns an empty memory store. now may be nil for time.Now.
func NewMemory(ttl TTLs, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{ttl: ttl, now: now, start: now().Unix(), channels: make(map[string]*history)}
}

// Start returns the server start time used in message ids.
func (s *Memory) Start() int64 { return s.start }

func (s *Memory) assign(m *protocol.Message) {
	s.counter++
	m.ID = s.counter
	m.MID = protocol.FormatMID(s.start, m.ID)
	m.Created = s.now()
	m.Expires = m.Created.Add(s.ttl.Lifetime(m.Expiry))
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
	for _, c := range m.Channels {
		h := s.channels[c]
		if h == nil || !m.Created.Before(h.expires) {
			if h != nil {
				h.drop()
			}
			h = &history{expires: m.Created.Add(s.ttl.Channel)}
			s.channels[c] = h
		}
		if n := len(h.slots); n > 0 && h.slots[n-1].m == m {
			continue // m names c twice
		}
		h.slots = append(h.slots, slot{m.ID, m})
	}
	heap.Push(&s.expiry, m)
	return nil
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
			if sl.m != nil && !sl.m.Expired(now) {
				out = append(out, sl.m)
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
			if m := h.slots[i].m; m != nil && !m.Expired(now) {
				if m.MID > last {
					last = m.MID
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
	for len(s.expiry) > 0 && s.expiry[0].Expired(now) {
		m := heap.Pop(&s.expiry).(*protocol.Message)
		for _, c := range m.Channels {
			if h := s.channels[c]; h != nil {
				h.remove(m)
				if h.empty() {
					delete(s.channels, c)
				}
			}
		}
	}
	for c, h := range s.channels {
		if !now.Before(h.expires) {
			h.drop()
			delete(s.channels, c)
		}
	}
}

// Len returns how many messages and channel indexes are kept.
func (s *Memory) Len() (messages, channels int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expiry), len(s.channels)
}

func (h *history) empty() bool { return len(h.slots)-h.head-h.holes == 0 }

func (h *history) drop() { h.slots, h.head, h.holes = nil, 0, 0 }

// remove takes m out of the index: the oldest entry (the usual case, with
// uniform TTLs) just moves head; any other leaves a hole that a compaction
// closes once holes outnumber live entries.
func (h *history) remove(m *protocol.Message) {
	live := h.slots[h.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].id >= m.ID })
	if i == len(live) || live[i].m != m {
		return
	}
	live[i].m = nil
	h.holes++
	for h.head < len(h.slots) && h.slots[h.head].m == nil {
		h.head++
		h.holes--
	}
	if h.head > len(h.slots)/2 || h.holes > (len(h.slots)-h.head)/2 {
		h.compact()
	}
}

func (h *history) compact() {
	kept := make([]slot, 0, len(h.slots)-h.head-h.holes)
	for _, sl := range h.slots[h.head:] {
		if sl.m != nil {
			kept = append(kept, sl)
		}
	}
	h.slots, h.head, h.holes = kept, 0, 0
}

type expiryHeap []*protocol.Message

func (e expiryHeap) Len() int           { return len(e) }
func (e expiryHeap) Less(i, j int) bool { return e[i].Expires.Before(e[j].Expires) }
func (e expiryHeap) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiryHeap) Push(x any)        { *e = append(*e, x.(*protocol.Message)) }
func (e *expiryHeap) Pop() any {
	old := *e
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*e = old[:len(old)-1]
	return m
}
