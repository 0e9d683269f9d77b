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
		m.userItems = make(map[string]map[string]struct{})
	}
}

// addItem queues it, indexed under its user.
func (m *Memory) addItem(it PushItem) {
	m.queue[it.ID] = &memPushItem{PushItem: it}
	ids := m.userItems[it.User]
	if ids == nil {
		ids = make(map[string]struct{})
		m.userItems[it.User] = ids
	}
	ids[it.ID] = struct{}{}
	m.earlier(it.Due)
}

// dropItem removes item id of user.
func (m *Memory) dropItem(user, id string) {
	delete(m.queue, id)
	if ids := m.userItems[user]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.userItems, user)
		}
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
			for id := range m.userItems[it.User] {
				if o := m.queue[id]; o.Sub == it.Sub && o.Tag == it.Tag && !o.leased.After(it.Created) {
					m.dropItem(it.User, id)
				}
			}
		}
		m.addItem(it)
	}
	return nil
}

// earlier makes Claim scan from t on.
func (m *Memory) earlier(t time.Time) {
	if !m.pushNext.IsZero() && t.Before(m.pushNext) {
		m.pushNext = t
	}
}

// Claim implements PushStore. It scans the queue, which webPush.maxQueue
// bounds.
func (m *Memory) Claim(_ context.Context, now time.Time, lease time.Duration, n int) ([]PushItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	if now.Before(m.pushNext) {
		return nil, nil
	}
	var due []*memPushItem
	next := now.Add(lease) // the claims below come due again then
	for _, it := range m.queue {
		at := it.Due
		if it.leased.After(at) {
			at = it.leased
		}
		if at.After(now) {
			if at.Before(next) {
				next = at
			}
			continue
		}
		due = append(due, it)
	}
	slices.SortFunc(due, func(a, b *memPushItem) int { return a.Due.Compare(b.Due) })
	if len(due) > n {
		next = now // more are due at once
	}
	m.pushNext = next
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
	m.dropItem(it.User, it.ID)
	return nil
}

// Reschedule implements PushStore.
func (m *Memory) Reschedule(_ context.Context, it PushItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initPush()
	if _, ok := m.queue[it.ID]; ok { // not cancelled meanwhile
		m.queue[it.ID] = &memPushItem{PushItem: it}
		m.earlier(it.Due)
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
	for id := range m.userItems[user] {
		it := m.queue[id]
		if it.leased.Before(now) && (it.Tag != "" && slices.Contains(tags, it.Tag) || it.SubTag != "" && slices.Contains(tags, it.SubTag)) {
			m.dropItem(user, id)
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
