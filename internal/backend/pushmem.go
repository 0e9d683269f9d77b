package backend

import (
	"context"
	"slices"
	"time"
)

// The memory PushStore: Memory's subscriptions and queue, under its mutex.

type memPushItem struct {
	PushItem
	leased time.Time // claimed until then
}

func (m *Memory) initPush() {
	if m.subs == nil {
		m.subs = make(map[string]map[string]PushSub)
		m.queue = make(map[string]*memPushItem)
	}
}

// AddSub implements PushStore.
func (m *Memory) AddSub(_ context.Context, s PushSub, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	subs := m.subs[s.User]
	if subs == nil {
		subs = make(map[string]PushSub)
		m.subs[s.User] = subs
	}
	subs[s.ID] = s
	for len(subs) > max {
		var oldest PushSub
		for _, o := range subs {
			if oldest.ID == "" || o.Created.Before(oldest.Created) {
				oldest = o
			}
		}
		delete(subs, oldest.ID)
	}
	return nil
}

// RemoveSub implements PushStore.
func (m *Memory) RemoveSub(_ context.Context, user, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	subs := m.subs[user]
	_, ok := subs[id]
	delete(subs, id)
	if len(subs) == 0 {
		delete(m.subs, user)
	}
	return ok, nil
}

// Subs implements PushStore.
func (m *Memory) Subs(_ context.Context, users []string, appID string) (map[string][]PushSub, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	out := make(map[string][]PushSub)
	for _, u := range users {
		for _, s := range m.subs[u] {
			if appID == "" || s.AppID == appID {
				out[u] = append(out[u], s)
			}
		}
		slices.SortFunc(out[u], func(a, b PushSub) int { return a.Created.Compare(b.Created) })
	}
	return out, nil
}

// Sub implements PushStore.
func (m *Memory) Sub(_ context.Context, user, id string) (PushSub, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	s, ok := m.subs[user][id]
	return s, ok, nil
}

// Enqueue implements PushStore.
func (m *Memory) Enqueue(_ context.Context, items []PushItem, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	if len(m.queue)+len(items) > max {
		return ErrQueueFull
	}
	for _, it := range items {
		if it.Tag != "" {
			for id, o := range m.queue {
				if o.User == it.User && o.Sub == it.Sub && o.Tag == it.Tag && !o.leased.After(it.Created) {
					delete(m.queue, id)
				}
			}
		}
		m.queue[it.ID] = &memPushItem{PushItem: it}
	}
	return nil
}

// Claim implements PushStore. It scans the queue, which webPush.maxQueue
// bounds.
func (m *Memory) Claim(_ context.Context, now time.Time, lease time.Duration, n int) ([]PushItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	var due []*memPushItem
	for _, it := range m.queue {
		if !it.Due.After(now) && !it.leased.After(now) {
			due = append(due, it)
		}
	}
	slices.SortFunc(due, func(a, b *memPushItem) int { return a.Due.Compare(b.Due) })
	out := make([]PushItem, 0, min(n, len(due)))
	for _, it := range due[:min(n, len(due))] {
		it.leased = now.Add(lease)
		out = append(out, it.PushItem)
	}
	return out, nil
}

// Finish implements PushStore.
func (m *Memory) Finish(_ context.Context, it PushItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	delete(m.queue, it.ID)
	return nil
}

// Reschedule implements PushStore.
func (m *Memory) Reschedule(_ context.Context, it PushItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	if _, ok := m.queue[it.ID]; ok { // not cancelled meanwhile
		m.queue[it.ID] = &memPushItem{PushItem: it}
	}
	return nil
}

// Cancel implements PushStore. A claimed item (being sent) is not
// cancelled.
func (m *Memory) Cancel(_ context.Context, user string, tags []string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	now := time.Now()
	n := 0
	for id, it := range m.queue {
		if it.User == user && it.leased.Before(now) && (it.Tag != "" && slices.Contains(tags, it.Tag) || it.SubTag != "" && slices.Contains(tags, it.SubTag)) {
			delete(m.queue, id)
			n++
		}
	}
	return n, nil
}

// QueueStats implements PushStore.
func (m *Memory) QueueStats(context.Context) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	for _, it := range m.queue {
		if oldest.IsZero() || it.Created.Before(oldest) {
			oldest = it.Created
		}
	}
	return len(m.queue), oldest, nil
}
