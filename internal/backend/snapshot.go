package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pushpull/pushpull/internal/snapshotfile"
)

// A snapshot of the memory state is written at a graceful stop beside the
// memory store's (storage.snapshot), so that after a restart publishes by
// user and by tag still reach the clients that reconnect with the channels
// they hold. It is one JSON object.
type stateSnapshot struct {
	Version int                             `json:"version"`
	Owners  map[string]ownerSnapshot        `json:"owners"`
	Watches map[string]map[string]time.Time `json:"watches"`
	Seen    map[string]time.Time            `json:"seen"`
	// Web Push: subscriptions and the notifications waiting (a claimed
	// one, being sent at the stop, is kept as due).
	PushSubs  map[string]map[string]PushSub `json:"pushSubs,omitempty"`
	PushQueue []PushItem                    `json:"pushQueue,omitempty"`
}

type ownerSnapshot struct {
	Current  Channel   `json:"current"`
	Previous *Channel  `json:"previous,omitempty"`
	Expires  time.Time `json:"expires"`
	Due      bool      `json:"due,omitempty"`
}

const stateSnapshotVersion = 1

// WriteSnapshot writes the state to w.
func (m *Memory) WriteSnapshot(w io.Writer) error {
	m.mu.Lock()
	snap := stateSnapshot{Version: stateSnapshotVersion, Owners: make(map[string]ownerSnapshot, len(m.owners)),
		Watches: m.watches, Seen: m.seen}
	for name, o := range m.owners {
		snap.Owners[name] = ownerSnapshot{Current: o.Current, Previous: o.Previous, Expires: o.expires, Due: o.due}
	}
	snap.PushSubs = m.subs
	for _, it := range m.queue {
		snap.PushQueue = append(snap.PushQueue, it.PushItem)
	}
	b, err := json.Marshal(snap)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadSnapshot loads what WriteSnapshot wrote into an empty state; records
// that expired meanwhile go at their next use, as they would have.
func (m *Memory) ReadSnapshot(r io.Reader) error {
	var snap stateSnapshot
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("backend state snapshot: %w", err)
	}
	if snap.Version != stateSnapshotVersion {
		return fmt.Errorf("backend state snapshot version %d, want %d", snap.Version, stateSnapshotVersion)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.owners) != 0 || len(m.watches) != 0 || len(m.seen) != 0 || len(m.subs) != 0 || len(m.queue) != 0 {
		return errors.New("backend state snapshot: the state is not empty")
	}
	for name, o := range snap.Owners {
		m.owners[name] = &memOwner{Owner: Owner{Current: o.Current, Previous: o.Previous}, expires: o.Expires, due: o.Due}
	}
	for tag, w := range snap.Watches {
		if len(w) > 0 {
			m.watches[tag] = w
		}
	}
	for u, t := range snap.Seen {
		m.seen[u] = t
	}
	m.initPush()
	for u, subs := range snap.PushSubs {
		if len(subs) > 0 {
			m.subs[u] = subs
		}
	}
	for _, it := range snap.PushQueue {
		if it.ID != "" {
			m.addItem(it)
		}
	}
	return nil
}

// SaveSnapshot writes the state to path atomically.
func (m *Memory) SaveSnapshot(path string) error { return snapshotfile.Save(path, m.WriteSnapshot) }

// LoadSnapshot reads the state at path, if there is one, and removes it.
func (m *Memory) LoadSnapshot(path string) (bool, error) {
	return snapshotfile.Load(path, m.ReadSnapshot)
}
