package redistest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/testutil"
)

// tags are hash tags spreading test keys over the masters.
var tags = []string{"{a}", "{b}", "{c}", "{d}", "{e}", "{f}", "{g}", "{h}"}

// writeKeys sets n keys under each tag through cl and returns them with
// their values.
func writeKeys(t *testing.T, cl rueidis.Client, n int, tags ...string) map[string]string {
	t.Helper()
	kv := map[string]string{}
	for _, tag := range tags {
		for i := range n {
			k, v := fmt.Sprintf("%sk%d", tag, i), fmt.Sprintf("v%d", i)
			if err := cl.Do(context.Background(), cl.B().Set().Key(k).Value(v).Build()).Error(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
			kv[k] = v
		}
	}
	return kv
}

// checkKeys fails t unless cl reads every key of kv with its value.
func checkKeys(t *testing.T, cl rueidis.Client, kv map[string]string) {
	t.Helper()
	for k, want := range kv {
		got, err := cl.Do(context.Background(), cl.B().Get().Key(k).Build()).ToString()
		if err != nil || got != want {
			t.Fatalf("GET %s = %q, %v; want %q", k, got, err, want)
		}
	}
}

// countKeys returns how many keys of slot the node at addr holds.
func countKeys(t *testing.T, c *Cluster, addr string, slot int) int64 {
	t.Helper()
	cl := c.NodeClient(addr)
	n, err := cl.Do(context.Background(), cl.B().ClusterCountkeysinslot().Slot(int64(slot)).Build()).AsInt64()
	if err != nil {
		t.Fatalf("CLUSTER COUNTKEYSINSLOT %d on %s: %v", slot, addr, err)
	}
	return n
}

// otherMaster returns a master other than addr.
func otherMaster(t *testing.T, c *Cluster, addr string) string {
	t.Helper()
	for _, m := range c.Masters() {
		if m != addr {
			return m
		}
	}
	t.Fatalf("no master besides %s", addr)
	return ""
}

// A started cluster has the asked layout, its slots computed by Redis, and
// each key on the master OwnerOf names, which serves it without redirect.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3, 1)
	if n := len(c.Seeds()); n != 6 {
		t.Fatalf("%d seeds, want 6", n)
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("masters %v, want 3", masters)
	}
	seen := map[string]bool{}
	for _, m := range masters {
		rs := c.ReplicasOf(m)
		if len(rs) != 1 || slices.Contains(masters, rs[0]) || seen[rs[0]] {
			t.Fatalf("replicas of %s: %v", m, rs)
		}
		seen[rs[0]] = true
	}
	if s := c.SlotOf("foo"); s != 12182 {
		t.Fatalf("SlotOf(foo) = %d, want 12182", s)
	}
	if a, b := c.SlotOf("{user1}.x"), c.SlotOf("user1"); a != b {
		t.Fatalf("hash tag ignored: %d, %d", a, b)
	}

	kv := writeKeys(t, c.Client(t), 2, tags...)
	ctx := context.Background()
	for k, want := range kv {
		owner := c.OwnerOf(c.SlotOf(k))
		cl := c.NodeClient(owner)
		if got, err := cl.Do(ctx, cl.B().Get().Key(k).Build()).ToString(); err != nil || got != want {
			t.Fatalf("GET %s on its owner %s = %q, %v", k, owner, got, err)
		}
		cl = c.NodeClient(otherMaster(t, c, owner))
		err := cl.Do(ctx, cl.B().Get().Key(k).Build()).Error()
		if re, ok := rueidis.IsRedisErr(err); !ok {
			t.Fatalf("GET %s on another master: %v, want MOVED", k, err)
		} else if to, moved := re.IsMoved(); !moved || to != owner {
			t.Fatalf("GET %s on another master: %v, want MOVED to %s", k, err, owner)
		}
	}
}

// A killed master's replica takes its slots with the keys replicated
// before; restarted, the old master comes back as the new one's replica.
func TestFailover(t *testing.T) {
	c := StartCluster(t, 3, 1)
	cl := c.Client(t)
	kv := writeKeys(t, cl, 5, tags...)
	c.WaitReplicated(t)

	slot := c.SlotOf(tags[0])
	old := c.OwnerOf(slot)
	replicas := c.ReplicasOf(old)
	promoted := c.Failover(t, old)
	if !slices.Contains(replicas, promoted) {
		t.Fatalf("promoted %s, not one of %v", promoted, replicas)
	}
	if ms := c.Masters(); len(ms) != 3 || !slices.Contains(ms, promoted) || slices.Contains(ms, old) {
		t.Fatalf("masters after failover: %v", ms)
	}
	if o := c.OwnerOf(slot); o != promoted {
		t.Fatalf("slot %d served by %s, want %s", slot, o, promoted)
	}
	checkKeys(t, cl, kv)

	c.Node(old).Start()
	c.WaitSettled(t)
	if rs := c.ReplicasOf(promoted); !slices.Equal(rs, []string{old}) {
		t.Fatalf("replicas of %s after the restart: %v, want %s", promoted, rs, old)
	}
	checkKeys(t, cl, kv)
}

// CLUSTER FAILOVER swaps a master and its replica without losing a write.
func TestFailoverGraceful(t *testing.T) {
	c := StartCluster(t, 3, 1)
	cl := c.Client(t)
	kv := writeKeys(t, cl, 5, tags...)

	master := c.Masters()[1]
	replica := c.ReplicasOf(master)[0]
	if demoted := c.FailoverGraceful(t, replica); demoted != master {
		t.Fatalf("demoted %s, want %s", demoted, master)
	}
	if ms := c.Masters(); !slices.Contains(ms, replica) || slices.Contains(ms, master) {
		t.Fatalf("masters after failover: %v", ms)
	}
	if rs := c.ReplicasOf(replica); !slices.Equal(rs, []string{master}) {
		t.Fatalf("replicas of %s: %v, want %s", replica, rs, master)
	}
	checkKeys(t, cl, kv)
}

// incrementer INCRs one key through a cluster client until stopped,
// counting the increments Redis acknowledged. An INCR is never abandoned
// midway: one cancelled after Redis ran it would be counted as failed.
type incrementer struct {
	ok, errs atomic.Int64
	last     atomic.Int64 // the value the last acknowledged INCR returned
	stopped  atomic.Bool
	done     chan struct{}

	mu    sync.Mutex
	first error // the first error, for the failure message
}

func startIncrementer(cl rueidis.Client, key string) *incrementer {
	inc := &incrementer{done: make(chan struct{})}
	go func() {
		defer close(inc.done)
		for !inc.stopped.Load() {
			n, err := cl.Do(context.Background(), cl.B().Incr().Key(key).Build()).AsInt64()
			if err == nil {
				inc.ok.Add(1)
				inc.last.Store(n)
				continue
			}
			inc.errs.Add(1)
			inc.mu.Lock()
			if inc.first == nil {
				inc.first = err
			}
			inc.mu.Unlock()
		}
	}()
	return inc
}

// waitMore waits until n more increments than now were acknowledged.
func (inc *incrementer) waitMore(t *testing.T, n int64) {
	t.Helper()
	want := inc.ok.Load() + n
	testutil.WaitFor(t, fmt.Sprintf("%d increments", want), func() bool { return inc.ok.Load() >= want })
}

// end stops the incrementer and fails t if an increment failed.
func (inc *incrementer) end(t *testing.T) {
	t.Helper()
	inc.stopped.Store(true)
	<-inc.done
	if n := inc.errs.Load(); n > 0 {
		t.Fatalf("%d increments failed, the first with %v", n, inc.first)
	}
}

// A slot migrated while a client keeps incrementing one of its keys keeps
// every increment, and ends served by the target with all its keys.
func TestMigrateSlotUnderWrites(t *testing.T) {
	c := StartCluster(t, 3, 1)
	cl := c.Client(t)
	kv := writeKeys(t, cl, 250, "{mig}")
	counter := "{mig}counter"
	slot := c.SlotOf(counter)
	from := c.OwnerOf(slot)
	to := otherMaster(t, c, from)

	inc := startIncrementer(cl, counter)
	inc.waitMore(t, 20)
	c.MigrateSlot(t, slot, to)
	inc.waitMore(t, 20)
	inc.end(t)

	if o := c.OwnerOf(slot); o != to {
		t.Fatalf("slot %d served by %s, want %s", slot, o, to)
	}
	if n := countKeys(t, c, from, slot); n != 0 {
		t.Fatalf("%s kept %d keys of slot %d", from, n, slot)
	}
	if n := countKeys(t, c, to, slot); n != int64(len(kv))+1 {
		t.Fatalf("%s holds %d keys of slot %d, want %d", to, n, slot, len(kv)+1)
	}
	node := c.NodeClient(to)
	got, err := node.Do(context.Background(), node.B().Get().Key(counter).Build()).AsInt64()
	if err != nil || got != inc.ok.Load() || got != inc.last.Load() {
		t.Fatalf("counter on %s = %d, %v; %d increments acknowledged, the last returning %d",
			to, got, err, inc.ok.Load(), inc.last.Load())
	}
	checkKeys(t, cl, kv)
}

// Between the steps of a migration the source sends ASK for the keys it
// moved and for new ones, and a cluster client reads and writes them all.
func TestMigrationSteps(t *testing.T) {
	c := StartCluster(t, 3, 0)
	cl := c.Client(t)
	kv := writeKeys(t, cl, 200, "{step}")
	slot := c.SlotOf("{step}")
	from := c.OwnerOf(slot)
	to := otherMaster(t, c, from)
	ctx := context.Background()

	c.ResetStats(t)
	m := c.BeginMigration(t, slot, to)
	if m.From != from || m.To != to || m.Slot != slot {
		t.Fatalf("migration %+v, want slot %d from %s to %s", m, slot, from, to)
	}
	if n := m.MoveKeys(t, 150); n != 150 {
		t.Fatalf("moved %d keys, want 150", n)
	}
	if n := countKeys(t, c, from, slot); n != 50 {
		t.Fatalf("%s holds %d keys of slot %d, want 50", from, n, slot)
	}
	if o := c.OwnerOf(slot); o != from {
		t.Fatalf("slot %d served by %s before the end, want %s", slot, o, from)
	}

	src := c.NodeClient(from)
	asked := 0
	for k := range kv {
		err := src.Do(ctx, src.B().Get().Key(k).Build()).Error()
		if re, ok := rueidis.IsRedisErr(err); ok {
			if addr, ask := re.IsAsk(); ask && addr == to {
				asked++
				continue
			}
		}
		if err != nil {
			t.Fatalf("GET %s on the source: %v", k, err)
		}
	}
	if asked != 150 {
		t.Fatalf("the source sent ASK for %d keys, want 150", asked)
	}
	checkKeys(t, cl, kv)
	if err := cl.Do(ctx, cl.B().Set().Key("{step}new").Value("new").Build()).Error(); err != nil {
		t.Fatalf("SET of a new key mid-migration: %v", err)
	}
	kv["{step}new"] = "new"
	if n := countKeys(t, c, to, slot); n != 151 {
		t.Fatalf("%s holds %d keys of slot %d, want 151", to, n, slot)
	}
	if n := c.CommandStats(t, to)["asking"]; n == 0 {
		t.Fatal("the client sent the target no ASKING")
	}

	m.Finish(t)
	if o := c.OwnerOf(slot); o != to {
		t.Fatalf("slot %d served by %s, want %s", slot, o, to)
	}
	if n := countKeys(t, c, to, slot); n != int64(len(kv)) {
		t.Fatalf("%s holds %d keys of slot %d, want %d", to, n, slot, len(kv))
	}
	checkKeys(t, cl, kv)
}

// CommandStats counts each master's share of the commands sent through a
// cluster client since ResetStats.
func TestCommandStats(t *testing.T) {
	c := StartCluster(t, 3, 0)
	cl := c.Client(t)
	ctx := context.Background()
	writeKeys(t, cl, 1, tags...) // commands before the reset are not counted

	c.ResetStats(t)
	want := map[string]int64{}
	for i, tag := range tags {
		ch := tag + "channel"
		for range i + 1 {
			if err := cl.Do(ctx, cl.B().Spublish().Channel(ch).Message("m").Build()).Error(); err != nil {
				t.Fatalf("SPUBLISH %s: %v", ch, err)
			}
		}
		want[c.OwnerOf(c.SlotOf(ch))] += int64(i + 1)
	}
	for _, m := range c.Masters() {
		st := c.CommandStats(t, m)
		if st["spublish"] != want[m] || st["set"] != 0 {
			t.Fatalf("%s counted spublish %d, set %d; want %d, 0", m, st["spublish"], st["set"], want[m])
		}
	}
}

// The calls of each command are read from INFO commandstats.
func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_spublish:calls=12,usec=40,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_cluster|nodes:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n"
	got, err := parseCommandStats(info)
	if err != nil || len(got) != 2 || got["spublish"] != 12 || got["cluster|nodes"] != 3 {
		t.Fatalf("parseCommandStats = %v, %v", got, err)
	}
	if _, err := parseCommandStats("cmdstat_get:calls=x\r\n"); err == nil {
		t.Fatal("a bad count was read")
	}
}

// CLUSTER NODES lines are read with their roles, slots and migrations.
func TestParseNodes(t *testing.T) {
	text := "" +
		"07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] [17->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]\n" +
		"292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922\n" +
		"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30003@31003 master,fail - 1426238316232 0 3 connected 10923 10924-16383\n"
	v, err := parseNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	self := v.self()
	if self == nil || self.Addr != "127.0.0.1:30001" || !self.Master || !self.Serves(5460) || self.Serves(5461) {
		t.Fatalf("self = %+v", self)
	}
	if self.Importing[5461] != "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f" || self.Migrating[17] != "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1" {
		t.Fatalf("importing %v, migrating %v", self.Importing, self.Migrating)
	}
	if o := v.owner(10923); o == nil || o.Addr != "127.0.0.1:30003" || !o.Failed {
		t.Fatalf("owner of 10923 = %+v", o)
	}
	if ms := v.masters(); len(ms) != 2 || ms[0].Addr != "127.0.0.1:30001" || ms[1].Addr != "127.0.0.1:30002" {
		t.Fatalf("masters = %+v", ms)
	}
	if rs := v.replicasOf(self.ID); len(rs) != 1 || rs[0].Addr != "127.0.0.1:30004" {
		t.Fatalf("replicas = %+v", rs)
	}
	for _, bad := range []string{"a b c", "id 1.2.3.4:1@2 master - 0 0 1 connected 9-3", "id 1.2.3.4:1@2 master - 0 0 1 connected [9]"} {
		if _, err := parseNodes(bad); err == nil {
			t.Fatalf("parseNodes(%q) took it", bad)
		}
	}
}
