package redistest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// migrateBatch is how many keys one MIGRATE moves.
const migrateBatch = 100

// migrateTimeout is MIGRATE's bound on its exchange with the target, in
// milliseconds.
const migrateTimeout = 5000

// Migration is a slot being moved from one master to another the way
// redis-cli --cluster reshard moves it, one step at a time, so that a test
// can act between them. Meanwhile clients writing to the slot are sent
// ASK (a key already moved, or a new one) or TRYAGAIN (several keys, not
// all on one side) by the source; the cluster serves every key throughout.
type Migration struct {
	Slot     int
	From, To string // addresses of the source and target masters

	c            *Cluster
	fromID, toID string
}

// MigrateSlot moves slot, with its keys, to the master to: BeginMigration,
// then Finish. Clients may keep using the slot's keys meanwhile.
func (c *Cluster) MigrateSlot(t testing.TB, slot int, to string) {
	t.Helper()
	c.BeginMigration(t, slot, to).Finish(t)
}

// BeginMigration opens the migration of slot to the master to: the
// target imports it (CLUSTER SETSLOT IMPORTING), then the source migrates
// it (CLUSTER SETSLOT MIGRATING). No key has moved yet.
func (c *Cluster) BeginMigration(t testing.TB, slot int, to string) *Migration {
	t.Helper()
	if slot < 0 || slot >= numSlots {
		t.Fatalf("BeginMigration: slot %d out of range", slot)
	}
	v := c.view()
	src := v.owner(slot)
	dst := v.byID(c.id(to))
	switch {
	case src == nil:
		t.Fatalf("BeginMigration: no master serves slot %d", slot)
	case dst == nil || !dst.Master:
		t.Fatalf("BeginMigration: %s is no master", to)
	case src.ID == dst.ID:
		t.Fatalf("BeginMigration: %s serves slot %d already", to, slot)
	}
	m := &Migration{Slot: slot, From: c.addrOf(*src), To: to, c: c, fromID: src.ID, toID: dst.ID}
	m.setSlot(t, m.To, "IMPORTING", m.fromID)
	m.setSlot(t, m.From, "MIGRATING", m.toID)
	return m
}

// MoveKeys moves at most n of the slot's keys (all, if n <= 0) from the
// source to the target, migrateBatch at a time, and returns how many it
// moved. Each MIGRATE is atomic: a key is on one side or the other.
func (m *Migration) MoveKeys(t testing.TB, n int) (moved int) {
	t.Helper()
	host, port, err := net.SplitHostPort(m.To)
	if err != nil {
		t.Fatal(err)
	}
	for n <= 0 || moved < n {
		batch := migrateBatch
		if n > 0 {
			batch = min(batch, n-moved)
		}
		reply, err := m.c.do(m.From, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(m.Slot), strconv.Itoa(batch))
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT %d on %s: %v", m.Slot, m.From, err)
		}
		keys, err := reply.AsStrSlice()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT %d on %s: %v", m.Slot, m.From, err)
		}
		if len(keys) == 0 {
			break
		}
		// REPLACE: a key the target holds too is a stale copy, as the
		// source serves every key it still has.
		cmd := append([]string{"MIGRATE", host, port, "", "0", strconv.Itoa(migrateTimeout), "REPLACE", "KEYS"}, keys...)
		if _, err := m.c.do(m.From, cmd...); err != nil {
			t.Fatalf("MIGRATE of %d keys of slot %d from %s to %s: %v", len(keys), m.Slot, m.From, m.To, err)
		}
		moved += len(keys)
	}
	return moved
}

// Finish moves the keys left, then assigns the slot to the target on the
// target, the source and every other master (CLUSTER SETSLOT NODE) and
// waits until every running node agrees on it and the cluster has settled
// (WaitSettled).
func (m *Migration) Finish(t testing.TB) {
	t.Helper()
	m.MoveKeys(t, 0)
	m.setSlot(t, m.To, "NODE", m.toID)
	m.setSlot(t, m.From, "NODE", m.toID)
	for _, addr := range m.c.Masters() {
		if addr != m.To && addr != m.From && m.c.Node(addr).running() {
			m.setSlot(t, addr, "NODE", m.toID)
		}
	}
	m.c.waitState(t, fmt.Sprintf("slot %d served by %s", m.Slot, m.To), func() error {
		v, err := m.c.settled()
		if err != nil {
			return err
		}
		if o := v.owner(m.Slot); o == nil || o.ID != m.toID {
			return fmt.Errorf("slot %d not served by %s yet", m.Slot, m.To)
		}
		return nil
	})
}

// setSlot sends CLUSTER SETSLOT <slot> <state> <id> to the node at addr.
func (m *Migration) setSlot(t testing.TB, addr, state, id string) {
	t.Helper()
	if _, err := m.c.do(addr, "CLUSTER", "SETSLOT", strconv.Itoa(m.Slot), state, id); err != nil {
		t.Fatalf("CLUSTER SETSLOT %d %s %s on %s: %v", m.Slot, state, m.c.addrOfID(id), addr, err)
	}
}
