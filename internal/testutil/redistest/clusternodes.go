package redistest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// numSlots is the number of hash slots of a Redis Cluster.
const numSlots = 16384

// clusterNode is one line of CLUSTER NODES: a node of the cluster as the
// node answering sees it.
type clusterNode struct {
	ID   string
	Addr string // host:port of its clients, without the bus port
	// Myself marks the answering node's own line, the only one that shows
	// the slots it is migrating or importing.
	Myself    bool
	Master    bool
	Failed    bool // flagged fail: a majority of masters agreed it is down
	Handshake bool // a node being met, under a provisional id
	MasterID  string
	Slots     []slotRange
	Migrating map[int]string // slot → id of the node it is moving to
	Importing map[int]string // slot → id of the node it is coming from
}

// slotRange is a run of slots, both ends included.
type slotRange struct{ Lo, Hi int }

// nodesView is the cluster as one node sees it: its CLUSTER NODES reply.
type nodesView []clusterNode

// parseNodes reads a CLUSTER NODES reply. Lines are
//
//	<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
//
// where a slot is "n", "lo-hi", "[n->-id]" (migrating) or "[n-<-id]"
// (importing).
func parseNodes(text string) (nodesView, error) {
	var v nodesView
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: want at least 8 fields", line)
		}
		addr, _, _ := strings.Cut(f[1], ",")
		addr, _, _ = strings.Cut(addr, "@")
		n := clusterNode{ID: f[0], Addr: addr}
		for flag := range strings.SplitSeq(f[2], ",") {
			switch flag {
			case "myself":
				n.Myself = true
			case "master":
				n.Master = true
			case "fail":
				n.Failed = true
			case "handshake":
				n.Handshake = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, s := range f[8:] {
			if err := n.addSlot(s); err != nil {
				return nil, fmt.Errorf("CLUSTER NODES line %q: %w", line, err)
			}
		}
		v = append(v, n)
	}
	return v, nil
}

// addSlot adds one slot field of a CLUSTER NODES line to n.
func (n *clusterNode) addSlot(s string) error {
	if inner, ok := strings.CutPrefix(s, "["); ok {
		inner = strings.TrimSuffix(inner, "]")
		for _, st := range []struct {
			sep string
			m   *map[int]string
		}{{"->-", &n.Migrating}, {"-<-", &n.Importing}} {
			slot, peer, ok := strings.Cut(inner, st.sep)
			if !ok {
				continue
			}
			i, err := strconv.Atoi(slot)
			if err != nil {
				return fmt.Errorf("slot %q: %w", s, err)
			}
			if *st.m == nil {
				*st.m = map[int]string{}
			}
			(*st.m)[i] = peer
			return nil
		}
		return fmt.Errorf("slot %q: neither migrating nor importing", s)
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || l > h || h >= numSlots {
		return fmt.Errorf("slot range %q is not one", s)
	}
	n.Slots = append(n.Slots, slotRange{l, h})
	return nil
}

// Serves reports whether slot is in one of n's ranges.
func (n *clusterNode) Serves(slot int) bool {
	return slices.ContainsFunc(n.Slots, func(r slotRange) bool { return r.Lo <= slot && slot <= r.Hi })
}

// byID returns the node with id, nil if the view has none.
func (v nodesView) byID(id string) *clusterNode {
	for i := range v {
		if v[i].ID == id {
			return &v[i]
		}
	}
	return nil
}

// self returns the answering node's own line.
func (v nodesView) self() *clusterNode {
	for i := range v {
		if v[i].Myself {
			return &v[i]
		}
	}
	return nil
}

// owner returns the master serving slot in this view, nil if none does.
func (v nodesView) owner(slot int) *clusterNode {
	for i := range v {
		if v[i].Master && v[i].Serves(slot) {
			return &v[i]
		}
	}
	return nil
}

// masters returns the masters not flagged failed, those serving slots
// first, in the order of their lowest slot, then the others by address.
func (v nodesView) masters() []clusterNode {
	var ms []clusterNode
	for _, n := range v {
		if n.Master && !n.Failed && !n.Handshake {
			ms = append(ms, n)
		}
	}
	slices.SortFunc(ms, func(a, b clusterNode) int {
		switch {
		case len(a.Slots) > 0 && len(b.Slots) > 0:
			return minSlot(a) - minSlot(b)
		case len(a.Slots) > 0:
			return -1
		case len(b.Slots) > 0:
			return 1
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	return ms
}

// minSlot is the lowest slot n serves.
func minSlot(n clusterNode) int {
	m := numSlots
	for _, r := range n.Slots {
		m = min(m, r.Lo)
	}
	return m
}

// replicasOf returns the replicas of the master with id not flagged
// failed, by address.
func (v nodesView) replicasOf(id string) []clusterNode {
	var rs []clusterNode
	for _, n := range v {
		if !n.Master && n.MasterID == id && !n.Failed && !n.Handshake {
			rs = append(rs, n)
		}
	}
	slices.SortFunc(rs, func(a, b clusterNode) int { return strings.Compare(a.Addr, b.Addr) })
	return rs
}

// slotMap describes who serves which slots, in a form equal between two
// views exactly when they agree on it: Redis lists a node's slots as
// merged ranges in order.
func (v nodesView) slotMap() string {
	var parts []string
	for _, n := range v {
		if n.Master && len(n.Slots) > 0 {
			parts = append(parts, fmt.Sprint(n.ID, n.Slots))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// roles describes the role of each node of ids (master, or replica of
// which) in a form equal between two views exactly when they agree on it.
func (v nodesView) roles(ids []string) string {
	var b strings.Builder
	for _, id := range ids {
		n := v.byID(id)
		switch {
		case n == nil:
			fmt.Fprintf(&b, "%s:unknown ", id)
		case n.Master:
			fmt.Fprintf(&b, "%s:master ", id)
		default:
			fmt.Fprintf(&b, "%s:replica-of-%s ", id, n.MasterID)
		}
	}
	return b.String()
}
