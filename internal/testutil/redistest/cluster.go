package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/testutil"
)

// NodeTimeout is the cluster-node-timeout of the nodes StartCluster runs,
// in milliseconds: short, so that a killed master is replaced within a
// few seconds, and long enough that a node slowed by a loaded machine is
// not taken for dead.
const NodeTimeout = 1000

// commandTimeout bounds one command the harness sends to a node.
const commandTimeout = 5 * time.Second

// clusterPoll is how often the harness looks at the cluster while it
// waits for a state.
const clusterPoll = 10 * time.Millisecond

// Cluster is a Redis Cluster of redis-server processes of one test. Its
// methods read the topology from the nodes each time, so they stay right
// after failovers and slot migrations; the methods without a testing.TB
// fail the test that started the cluster. Clients of the cluster may run
// beside them in other goroutines; the methods themselves, which stop and
// start nodes, are for one goroutine at a time.
type Cluster struct {
	t     testing.TB
	nodes []*Server         // in the order started
	ids   map[string]string // address → node id, which a node keeps across restarts

	mu      sync.Mutex
	clients map[string]rueidis.Client // one per node, made on first use
}

// StartCluster starts masters × (1 + replicasPerMaster) redis-server
// processes in cluster mode, joins them with redis-cli --cluster create,
// and returns once every node reports cluster_state:ok, agrees with the
// others on the topology and every replica's link to its master is up.
// Redis needs at least three masters. args are added to each node's
// options after the harness's own, which they override
// ("--cluster-node-timeout", "5000"). The nodes are stopped when the test
// ends.
func StartCluster(t testing.TB, masters, replicasPerMaster int, args ...string) *Cluster {
	t.Helper()
	if masters < 3 || replicasPerMaster < 0 {
		t.Fatalf("StartCluster(%d, %d): a cluster needs at least 3 masters", masters, replicasPerMaster)
	}
	cli := Binary(t, "redis-cli")
	c := &Cluster{t: t, ids: map[string]string{}, clients: map[string]rueidis.Client{}}
	nodeArgs := append([]string{
		"--cluster-enabled", "yes",
		"--cluster-node-timeout", strconv.Itoa(NodeTimeout),
		// A replica however long cut off from its master may take its place:
		// tests kill masters at any moment.
		"--cluster-replica-validity-factor", "0",
		// Replicas stay where the test put them, and a master stays one when
		// its last slot is migrated away.
		"--cluster-allow-replica-migration", "no",
		// A replica's first sync starts at once, not after the 5 s Redis
		// waits for more replicas to share it.
		"--repl-diskless-sync-delay", "0",
	}, args...)
	for range masters * (1 + replicasPerMaster) {
		c.nodes = append(c.nodes, Start(t, nodeArgs...))
	}
	t.Cleanup(c.closeClients) // before the servers' own cleanups stop them

	create := append(append([]string{"--cluster", "create"}, c.Seeds()...),
		"--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.nodes {
		id, err := c.doString(s.Addr(), "CLUSTER", "MYID")
		if err != nil {
			t.Fatalf("CLUSTER MYID on %s: %v", s.Addr(), err)
		}
		c.ids[s.Addr()] = id
	}
	c.waitState(t, "the cluster formed", func() error {
		v, err := c.settled()
		if err != nil {
			return err
		}
		ms := v.masters()
		if len(ms) != masters {
			return fmt.Errorf("%d masters, want %d", len(ms), masters)
		}
		for _, m := range ms {
			if n := len(v.replicasOf(m.ID)); n != replicasPerMaster {
				return fmt.Errorf("master %s has %d replicas, want %d", m.Addr, n, replicasPerMaster)
			}
		}
		return nil
	})
	return c
}

// Seeds returns the address of every node, running or not, in the order
// they were started: what a cluster client is configured with.
func (c *Cluster) Seeds() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Masters returns the masters the cluster counts now (not flagged failed),
// in the order of the lowest slot each serves; masters without slots
// come last.
func (c *Cluster) Masters() []string {
	c.t.Helper()
	return c.addrsOf(c.view().masters())
}

// ReplicasOf returns the replicas of master the cluster counts now (not
// flagged failed), by address.
func (c *Cluster) ReplicasOf(master string) []string {
	c.t.Helper()
	return c.addrsOf(c.view().replicasOf(c.id(master)))
}

// Node returns the server at addr, to stop or start it.
func (c *Cluster) Node(addr string) *Server {
	c.t.Helper()
	for _, s := range c.nodes {
		if s.Addr() == addr {
			return s
		}
	}
	c.t.Fatalf("%s is no node of the cluster", addr)
	return nil
}

// SlotOf returns the hash slot of key, as Redis computes it.
func (c *Cluster) SlotOf(key string) int {
	c.t.Helper()
	for _, s := range c.running() {
		m, err := c.do(s.Addr(), "CLUSTER", "KEYSLOT", key)
		if err == nil {
			if n, err := m.AsInt64(); err == nil {
				return int(n)
			}
		}
	}
	c.t.Fatalf("CLUSTER KEYSLOT %q: no node answered", key)
	return 0
}

// OwnerOf returns the address of the master serving slot now.
func (c *Cluster) OwnerOf(slot int) string {
	c.t.Helper()
	n := c.view().owner(slot)
	if n == nil {
		c.t.Fatalf("no master serves slot %d", slot)
	}
	return c.addrOf(*n)
}

// Client returns a cluster client seeded with every node, closed when t
// ends.
func (c *Cluster) Client(t testing.TB) rueidis.Client {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Seeds(), DisableCache: true})
	if err != nil {
		t.Fatalf("cluster client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NodeClient returns a client of the node at addr alone, which follows no
// redirection: for commands meant for that node. The cluster keeps it and
// closes it when the test ends.
func (c *Cluster) NodeClient(addr string) rueidis.Client {
	c.t.Helper()
	cl, err := c.client(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// WaitSettled waits until every running node reports cluster_state:ok,
// all agree on who serves which slots and on each running node's role,
// none holds a slot half migrated, none flags a running node failed, and
// every running replica's link to its master is up: after a node was
// restarted, say.
func (c *Cluster) WaitSettled(t testing.TB) {
	t.Helper()
	c.waitState(t, "the cluster settled", func() error {
		_, err := c.settled()
		return err
	})
}

// WaitReplicated waits until every running replica has processed all that
// its master had written when it was called: a write acknowledged before
// then survives a failover.
func (c *Cluster) WaitReplicated(t testing.TB) {
	t.Helper()
	v := c.view()
	for _, m := range v.masters() {
		if !c.Node(c.addrOf(m)).running() {
			continue
		}
		off, err := c.replOffset(c.addrOf(m), "master_repl_offset")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range v.replicasOf(m.ID) {
			addr := c.addrOf(r)
			if !c.Node(addr).running() {
				continue
			}
			c.waitState(t, "replica "+addr+" caught up with "+m.Addr, func() error {
				got, err := c.replOffset(addr, "slave_repl_offset")
				if err == nil && got < off {
					err = fmt.Errorf("at offset %d of %d", got, off)
				}
				return err
			})
		}
	}
}

// Failover kills master as a crash would and waits until one of its
// replicas has taken its slots and the running nodes have settled
// (WaitSettled). It returns the promoted replica. What the master had not
// replicated yet is lost (see WaitReplicated).
func (c *Cluster) Failover(t testing.TB, master string) (promoted string) {
	t.Helper()
	v := c.view()
	m := v.byID(c.id(master))
	if m == nil || !m.Master || len(m.Slots) == 0 {
		t.Fatalf("Failover(%s): not a master serving slots", master)
	}
	var replicas []string
	for _, r := range v.replicasOf(m.ID) {
		if c.Node(c.addrOf(r)).running() {
			replicas = append(replicas, c.addrOf(r))
		}
	}
	if len(replicas) == 0 {
		t.Fatalf("Failover(%s): no running replica to promote", master)
	}
	c.Node(master).Kill()
	c.waitState(t, "a replica of "+master+" promoted", func() error {
		v, err := c.settled()
		if err != nil {
			return err
		}
		for _, r := range m.Slots {
			for _, slot := range []int{r.Lo, r.Hi} {
				o := v.owner(slot)
				if o == nil || !slices.Contains(replicas, c.addrOf(*o)) {
					return fmt.Errorf("slot %d not served by a replica of %s", slot, master)
				}
				promoted = c.addrOf(*o)
			}
		}
		if got := v.byID(c.id(promoted)).Slots; !slices.Equal(got, m.Slots) {
			return fmt.Errorf("%s serves %v, not all of %v", promoted, got, m.Slots)
		}
		return nil
	})
	return promoted
}

// FailoverGraceful has replica take its master's place with CLUSTER
// FAILOVER, which loses no write: the master stops its clients until the
// replica has caught up. It waits until the two have swapped roles and
// the cluster has settled, and returns the former master.
func (c *Cluster) FailoverGraceful(t testing.TB, replica string) (demoted string) {
	t.Helper()
	r := c.view().byID(c.id(replica))
	if r == nil || r.Master {
		t.Fatalf("FailoverGraceful(%s): not a replica", replica)
	}
	demoted = c.addrOfID(r.MasterID)
	if _, err := c.do(replica, "CLUSTER", "FAILOVER"); err != nil {
		t.Fatalf("CLUSTER FAILOVER on %s: %v", replica, err)
	}
	c.waitState(t, replica+" taking over from "+demoted, func() error {
		v, err := c.settled()
		if err != nil {
			return err
		}
		if n := v.byID(c.id(demoted)); n.Master || n.MasterID != c.id(replica) {
			return fmt.Errorf("%s is no replica of %s yet", demoted, replica)
		}
		return nil
	})
	return demoted
}

// settled returns the view of the running nodes once they agree (see
// WaitSettled), or what keeps them from it.
func (c *Cluster) settled() (nodesView, error) {
	running := c.running()
	var ids []string
	for _, s := range running {
		ids = append(ids, c.ids[s.Addr()])
	}
	var first nodesView
	for _, s := range running {
		addr := s.Addr()
		info, err := c.doString(addr, "CLUSTER", "INFO")
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return nil, fmt.Errorf("%s: cluster state not ok", addr)
		}
		v, err := c.nodesOf(addr)
		if err != nil {
			return nil, err
		}
		self := v.self()
		if self == nil {
			return nil, fmt.Errorf("CLUSTER NODES on %s has no myself line", addr)
		}
		if len(self.Migrating)+len(self.Importing) > 0 {
			return nil, fmt.Errorf("%s migrating %v, importing %v", addr, self.Migrating, self.Importing)
		}
		for _, id := range ids {
			if n := v.byID(id); n != nil && n.Failed {
				return nil, fmt.Errorf("%s flags running %s failed", addr, c.addrOfID(id))
			}
		}
		if first == nil {
			first = v
		} else if v.slotMap() != first.slotMap() || v.roles(ids) != first.roles(ids) {
			return nil, fmt.Errorf("%s and %s disagree: %s %s / %s %s", running[0].Addr(), addr,
				first.slotMap(), first.roles(ids), v.slotMap(), v.roles(ids))
		}
		if !self.Master {
			info, err := c.doString(addr, "INFO", "replication")
			if err != nil {
				return nil, fmt.Errorf("INFO replication on %s: %w", addr, err)
			}
			if !strings.Contains(info, "master_link_status:up") {
				return nil, fmt.Errorf("replica %s: link to its master not up", addr)
			}
		}
	}
	if first == nil {
		return nil, errors.New("no node running")
	}
	return first, nil
}

// view returns the cluster as the first running node that answers sees it.
func (c *Cluster) view() nodesView {
	c.t.Helper()
	var err error
	for _, s := range c.running() {
		var v nodesView
		if v, err = c.nodesOf(s.Addr()); err == nil {
			return v
		}
	}
	c.t.Fatalf("no node told the cluster's nodes: %v", err)
	return nil
}

// nodesOf returns the cluster as the node at addr sees it.
func (c *Cluster) nodesOf(addr string) (nodesView, error) {
	text, err := c.doString(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", addr, err)
	}
	return parseNodes(text)
}

// replOffset returns a number field of the node's INFO replication.
func (c *Cluster) replOffset(addr, field string) (int64, error) {
	info, err := c.doString(addr, "INFO", "replication")
	if err != nil {
		return 0, fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO replication on %s has no %s", addr, field)
}

// running returns the nodes whose process runs.
func (c *Cluster) running() []*Server {
	var rs []*Server
	for _, s := range c.nodes {
		if s.running() {
			rs = append(rs, s)
		}
	}
	return rs
}

// id returns the node id of the node at addr.
func (c *Cluster) id(addr string) string {
	c.t.Helper()
	id, ok := c.ids[addr]
	if !ok {
		c.t.Fatalf("%s is no node of the cluster", addr)
	}
	return id
}

// addrOfID returns the address of the node with id.
func (c *Cluster) addrOfID(id string) string {
	for addr, i := range c.ids {
		if i == id {
			return addr
		}
	}
	return "node " + id
}

// addrOf returns the address of n, as the harness knows it: a node seen
// by another may lack one.
func (c *Cluster) addrOf(n clusterNode) string {
	for addr, id := range c.ids {
		if id == n.ID {
			return addr
		}
	}
	return n.Addr
}

// addrsOf maps nodes to their addresses.
func (c *Cluster) addrsOf(ns []clusterNode) []string {
	addrs := make([]string, len(ns))
	for i, n := range ns {
		addrs[i] = c.addrOf(n)
	}
	return addrs
}

// do sends one command to the node at addr and returns its reply, or the
// error Redis or the connection gave.
func (c *Cluster) do(addr string, cmd ...string) (rueidis.RedisMessage, error) {
	cl, err := c.client(addr)
	if err != nil {
		return rueidis.RedisMessage{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return cl.Do(ctx, cl.B().Arbitrary(cmd...).Build()).ToMessage()
}

// doString is do for a command replying a string.
func (c *Cluster) doString(addr string, cmd ...string) (string, error) {
	m, err := c.do(addr, cmd...)
	if err != nil {
		return "", err
	}
	return m.ToString()
}

// client returns the client of the node at addr, making it if need be.
func (c *Cluster) client(addr string) (rueidis.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl, nil
	}
	cl, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      true,
		DisableRetry:      true, // the harness polls; a node it killed answers no retry
		// RESP3 replies CLUSTER NODES and INFO as verbatim strings, whose
		// text rueidis hands over with their "txt:" prefix.
		AlwaysRESP2: true,
	})
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", addr, err)
	}
	c.clients[addr] = cl
	return cl, nil
}

// closeClients closes the clients of the nodes.
func (c *Cluster) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
	clear(c.clients)
}

// waitState polls cond until it returns nil, and fails t with its last
// error if it has not within testutil.Timeout.
func (c *Cluster) waitState(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(testutil.Timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", testutil.Timeout, what, err)
		}
		time.Sleep(clusterPoll)
	}
}
