// Package engine carries a publish from the process that accepted it to the
// hubs of every process that serves subscribers, and answers the questions
// that span processes: who is online and how each process is doing.
package engine

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// Engine is the distributed part of the server.
type Engine interface {
	store.Store
	// Publish saves m (assigning its id) and delivers it, once, to the
	// subscribers of its channels on every process. A nil error means
	// the message is stored and will be delivered.
	Publish(ctx context.Context, m *protocol.Message) error
	// Subscribed tells the engine that a connection on this process joined
	// channels, so they count as online everywhere at once.
	Subscribed(ctx context.Context, channels []string)
	// Online returns, for each channel, how many subscribers it has on
	// all processes (0: offline).
	Online(ctx context.Context, channels []string) ([]int, error)
	// Stats returns the statistics of every live process.
	Stats(ctx context.Context) ([]ProcessStats, error)
	Presence
	// Ready returns nil while the engine stores and delivers messages.
	Ready(ctx context.Context) error
	// Close releases the engine's resources.
	Close() error
}

// Immediate is implemented by engines whose calls never wait on a network
// or a peer, so that their callers can leave out a deadline.
type Immediate interface {
	Immediate() bool
}

// Presence tracks the connections of users (protocol-5 connections that
// carry a user in their token) across processes, for status changes and
// last-seen times.
type Presence interface {
	// UserConnected records connection conn (unique on this process) of
	// user. first reports that it is the user's only connection anywhere.
	UserConnected(ctx context.Context, user, conn string) (first bool, err error)
	// UserDisconnected forgets conn and records the time as the user's
	// last seen. last reports that the user has no connection left.
	UserDisconnected(ctx context.Context, user, conn string) (last bool, err error)
	// LastSeen returns, for each user seen, 0 when connected now, else the
	// seconds since the last connection ended. Users never seen (or
	// forgotten) are absent.
	LastSeen(ctx context.Context, users []string) (map[string]int64, error)
}

// ProcessStats is one process's entry on the stats route.
type ProcessStats struct {
	PID             int    `json:"pid"`
	Date            int64  `json:"date"` // unix ms of the last update
	ProcessUniqueID string `json:"processUniqueId"`
	WebSockets      int64  `json:"websockets"`
	Pollings        int64  `json:"pollings"`
	Channels        int    `json:"channels"`
	// Tags is how a Redis process groups its keys ("installation", or
	// empty for one group): processes of both groupings on one Redis do
	// not see each other's shared-mode messages.
	Tags string `json:"tags,omitempty"`
}

// Counters reports this process's live connection counts.
type Counters interface {
	WebSockets() int64
	Pollings() int64
}

// Local is the single-process engine on the embedded memory store.
type Local struct {
	*store.Memory
	hub      *hub.Hub
	counters Counters
	uid      string

	mu sync.Mutex // orders store and broadcast, so ids reach every subscriber in order (LOCKS.md)

	presenceMu sync.Mutex
	users      map[string]map[string]struct{} // user -> connections
	lastSeen   map[string]time.Time           // kept LastSeenTTL
	pruned     time.Time                      // when lastSeen was last pruned
}

// LastSeenTTL is how long a user's last-seen time is kept after the last
// connection ended (the Redis engine keeps it as long).
const LastSeenTTL = 30 * 24 * time.Hour

// NewLocal returns an engine delivering to h, keeping history in s.
func NewLocal(s *store.Memory, h *hub.Hub, counters Counters, uid string) *Local {
	return &Local{Memory: s, hub: h, counters: counters, uid: uid}
}

// Publish implements Engine.
func (l *Local) Publish(ctx context.Context, m *protocol.Message) error {
	b := hub.GetBatch()
	l.mu.Lock()
	err := l.Save(ctx, m)
	if err == nil {
		l.hub.Broadcast(m, b)
	}
	l.mu.Unlock()
	b.Flush() // the sockets are written with no lock held
	return err
}

// Immediate implements Immediate: the memory engine never waits.
func (l *Local) Immediate() bool { return true }

// Subscribed implements Engine: the hub already counts local subscribers.
func (l *Local) Subscribed(context.Context, []string) {}

// Online implements Engine.
func (l *Local) Online(_ context.Context, channels []string) ([]int, error) {
	out := make([]int, len(channels))
	for i, c := range channels {
		out[i] = l.hub.Count(c)
	}
	return out, nil
}

// Stats implements Engine.
func (l *Local) Stats(context.Context) ([]ProcessStats, error) {
	return []ProcessStats{LocalStats(l.uid, l.hub, l.counters)}, nil
}

// LocalStats returns this process's stats entry.
func LocalStats(uid string, h *hub.Hub, c Counters) ProcessStats {
	return ProcessStats{
		PID:             os.Getpid(),
		Date:            time.Now().UnixMilli(),
		ProcessUniqueID: uid,
		WebSockets:      c.WebSockets(),
		Pollings:        c.Pollings(),
		Channels:        h.Channels(),
	}
}

// UserConnected implements Presence.
func (l *Local) UserConnected(_ context.Context, user, conn string) (bool, error) {
	l.presenceMu.Lock()
	defer l.presenceMu.Unlock()
	if l.users == nil {
		l.users = make(map[string]map[string]struct{})
	}
	set := l.users[user]
	if set == nil {
		set = make(map[string]struct{}, 1)
		l.users[user] = set
	}
	set[conn] = struct{}{}
	return len(set) == 1, nil
}

// UserDisconnected implements Presence.
func (l *Local) UserDisconnected(_ context.Context, user, conn string) (bool, error) {
	l.presenceMu.Lock()
	defer l.presenceMu.Unlock()
	set, ok := l.users[user]
	if !ok {
		return false, nil
	}
	if _, mine := set[conn]; !mine {
		return false, nil
	}
	delete(set, conn)
	now := time.Now()
	if l.lastSeen == nil {
		l.lastSeen = make(map[string]time.Time)
	}
	l.lastSeen[user] = now
	if now.Sub(l.pruned) > time.Hour {
		// Forget users gone for longer than the TTL, so the map stays
		// bounded by the users of the last month.
		l.pruned = now
		for u, t := range l.lastSeen {
			if now.Sub(t) > LastSeenTTL {
				delete(l.lastSeen, u)
			}
		}
	}
	if len(set) == 0 {
		delete(l.users, user)
		return true, nil
	}
	return false, nil
}

// LastSeen implements Presence.
func (l *Local) LastSeen(_ context.Context, users []string) (map[string]int64, error) {
	l.presenceMu.Lock()
	defer l.presenceMu.Unlock()
	now := time.Now()
	out := make(map[string]int64, len(users))
	for _, u := range users {
		if len(l.users[u]) > 0 {
			out[u] = 0
		} else if t, ok := l.lastSeen[u]; ok && now.Sub(t) <= LastSeenTTL {
			out[u] = int64(now.Sub(t) / time.Second)
		}
	}
	return out, nil
}

// Ready implements Engine: the memory engine is always ready.
func (l *Local) Ready(context.Context) error { return nil }

// Close implements Engine.
func (l *Local) Close() error { return nil }
