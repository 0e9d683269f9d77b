package backend

import (
	"context"
	"sync"
	"time"
)

// Memory is the State of a single process.
type Memory struct {
	mu      sync.Mutex
	owners  map[string]*memOwner
	watches map[string]map[string]time.Time // tag -> user -> until
	seen    map[string]time.Time

	subs  map[string]map[string]PushSub // user -> id -> Web Push subscription
	queue map[string]*memPushItem       // Web Push notifications waiting, by id
	// userItems indexes queue by user: user -> ids.
	userItems map[string]map[string]struct{}
	// pushNext is no later than the earliest time an item may be
	// claimed: Claim skips its scan before it (zero: scan).
	pushNext time.Time
}

type memOwner struct {
	Owner
	expires time.Time // when the whole record goes: the current channel's storage end
	due     bool      // listed by Due
}

// NewMemory returns an empty memory state.
func NewMemory() *Memory {
	return &Memory{
		owners:  make(map[string]*memOwner),
		watches: make(map[string]map[string]time.Time),
		seen:    make(map[string]time.Time),
	}
}

// Load implements State.
func (m *Memory) Load(_ context.Context, owners []string, now time.Time) (map[string]Owner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Owner, len(owners))
	for _, name := range owners {
		if o := m.owner(name, now); o != nil {
			out[name] = copyOwner(o.Owner)
		}
	}
	return out, nil
}

// owner returns name's record, dropping it once expired.
func (m *Memory) owner(name string, now time.Time) *memOwner {
	o := m.owners[name]
	if o != nil && !now.Before(o.expires) {
		delete(m.owners, name)
		return nil
	}
	return o
}

func copyOwner(o Owner) Owner {
	if o.Previous != nil {
		p := *o.Previous
		o.Previous = &p
	}
	return o
}

// Issue implements State.
func (m *Memory) Issue(_ context.Context, name string, fresh Channel, now time.Time, keep time.Duration) (Owner, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.owner(name, now)
	if o != nil && now.Before(o.Current.End) {
		return copyOwner(o.Owner), false, nil
	}
	rotated := o != nil
	next := &memOwner{Owner: Owner{Current: fresh}, expires: fresh.Start.Add(keep), due: true}
	if rotated {
		prev := o.Current
		next.Previous = &prev
	}
	m.owners[name] = next
	return copyOwner(next.Owner), rotated, nil
}

// Due implements State.
func (m *Memory) Due(_ context.Context, now time.Time, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.owners {
		if len(out) == n {
			break
		}
		if o := m.owner(name, now); o != nil && o.due && !now.Before(o.Current.End) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Undue implements State.
func (m *Memory) Undue(_ context.Context, name string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.owners[name]; o != nil && !now.Before(o.Current.End) {
		o.due = false
	}
	return nil
}

// Watch implements State.
func (m *Memory) Watch(_ context.Context, user string, tags []string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range tags {
		w := m.watches[t]
		if w == nil {
			w = make(map[string]time.Time)
			m.watches[t] = w
		}
		w[user] = until
	}
	return nil
}

// Extend implements State.
func (m *Memory) Extend(_ context.Context, user string, tags []string, now, until time.Time) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(tags))
	for i, t := range tags {
		if old, ok := m.watches[t][user]; ok && now.Before(old) {
			m.watches[t][user] = until
			out[i] = true
		}
	}
	return out, nil
}

// Unwatch implements State.
func (m *Memory) Unwatch(_ context.Context, user string, tags []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range tags {
		if w := m.watches[t]; w != nil {
			delete(w, user)
			if len(w) == 0 {
				delete(m.watches, t)
			}
		}
	}
	return nil
}

// Watchers implements State. Expired watches are dropped on the way.
func (m *Memory) Watchers(_ context.Context, tags []string, now time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool)
	var out []string
	for _, t := range tags {
		for user, until := range m.watches[t] {
			if !now.Before(until) {
				delete(m.watches[t], user)
				continue
			}
			if !seen[user] {
				seen[user] = true
				out = append(out, user)
			}
		}
		if len(m.watches[t]) == 0 {
			delete(m.watches, t)
		}
	}
	return out, nil
}

// Seen implements State.
func (m *Memory) Seen(_ context.Context, users []string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range users {
		m.seen[u] = t
	}
	return nil
}

// LastSeen implements State.
func (m *Memory) LastSeen(_ context.Context, users []string) (map[string]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]time.Time)
	for _, u := range users {
		if t, ok := m.seen[u]; ok {
			out[u] = t
		}
	}
	return out, nil
}

// Prune drops expired owners and watches, so that users who left stop
// costing memory.
func (m *Memory) Prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.owners {
		m.owner(name, now)
	}
	for t, w := range m.watches {
		for user, until := range w {
			if !now.Before(until) {
				delete(w, user)
			}
		}
		if len(w) == 0 {
			delete(m.watches, t)
		}
	}
}

// Close implements State.
func (m *Memory) Close() {}
