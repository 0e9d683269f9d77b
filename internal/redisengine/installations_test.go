package redisengine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
)

// tenantChannel is a channel of installation inst, as the shared mode
// names it.
func tenantChannel(inst string) string {
	return inst + protocol.NamespaceSep + fmt.Sprintf("%032x", crc16(inst))
}

// ledger publishes round-robin over installations from one goroutine and
// keeps, per installation, the ids answered as published, in order.
type ledger struct {
	pub      *testEngine
	insts    []string
	mu       sync.Mutex
	accepted map[string][]string
	total    atomic.Int64
	failed   atomic.Int64
	stop     atomic.Bool
	done     chan struct{}
}

func startLedger(pub *testEngine, insts []string) *ledger {
	l := &ledger{pub: pub, insts: insts, accepted: map[string][]string{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; !l.stop.Load(); i++ {
			inst := insts[i%len(insts)]
			m := &protocol.Message{Channels: []string{tenantChannel(inst)}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if err := pub.Publish(context.Background(), m); err != nil {
				l.failed.Add(1) // not answered: it may or may not be delivered
				continue
			}
			l.mu.Lock()
			l.accepted[inst] = append(l.accepted[inst], m.MID)
			l.mu.Unlock()
			l.total.Add(1)
		}
	}()
	return l
}

// more waits until n more publishes were answered.
func (l *ledger) more(t *testing.T, n int64) {
	t.Helper()
	want := l.total.Load() + n
	testutil.WaitFor(t, fmt.Sprintf("%d publishes answered", want), func() bool { return l.total.Load() >= want })
}

func (l *ledger) finish() map[string][]string {
	l.stop.Store(true)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.accepted)
}

// checkDelivered waits until rec holds every accepted message and checks
// that each installation's messages came once and in id order. Messages
// whose publish was not answered may come too.
func checkDelivered(t *testing.T, name string, rec *recorder, accepted map[string][]string) {
	t.Helper()
	var got map[string][]string
	complete := func() bool {
		got = map[string][]string{}
		for _, m := range rec.messages() {
			inst := protocol.Namespace(m.Channels[0])
			got[inst] = append(got[inst], m.MID)
		}
		for inst, want := range accepted {
			for _, mid := range want {
				if _, found := slices.BinarySearch(got[inst], mid); !found {
					return false
				}
			}
		}
		return true
	}
	testutil.WaitFor(t, name+" delivered every answered publish", func() bool {
		for inst, mids := range got {
			for i := 1; i < len(mids); i++ {
				if mids[i] <= mids[i-1] {
					t.Fatalf("%s: installation %s delivered %s after %s", name, inst, mids[i], mids[i-1])
				}
			}
		}
		return complete()
	})
}

// Thirty installations on a cluster of three masters with a replica each:
// every master takes a share of the publishes; a master killed and its
// replica promoted, and a slot moved, while publishing, lose, repeat and
// reorder nothing that was answered.
func TestInstallationsOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	var insts []string
	for i := range 30 {
		insts = append(insts, fmt.Sprintf("c%02d", i))
	}
	var channels []string
	for _, inst := range insts {
		channels = append(channels, tenantChannel(inst))
	}
	engine := func(seeds []string, publishMode bool) *testEngine {
		o := opts(seeds...)
		o.Tags, o.Installations, o.WaitReplicas, o.PublishMode = TagsInstallation, insts, 1, publishMode
		return newEngine(t, o)
	}
	seeds := cl.Seeds()
	pub := engine(seeds, true)
	a := engine(seeds[:1], false)
	b := engine(seeds[len(seeds)-1:], false)
	for _, e := range []*testEngine{pub, a, b} {
		waitReady(t, e)
	}
	recA, recB := newRecorder(a.hub, channels...), newRecorder(b.hub, channels...)
	ctx := context.Background()

	// Each installation has its own counter, keys and master.
	cl.ResetStats(t)
	first := map[string]string{}
	for _, inst := range insts {
		first[inst] = publish(t, pub, `{"first":true}`, tenantChannel(inst)).MID
		if _, id := protocol.SplitMID(first[inst]); id != 1 {
			t.Fatalf("installation %s: first id %s, want its own counter at 1", inst, first[inst])
		}
	}
	share := map[string]int64{}
	for _, m := range cl.Masters() {
		st := cl.CommandStats(t, m)
		share[m] = st["evalsha"] + st["eval"]
		if share[m] == 0 {
			t.Errorf("master %s ran no publish: %v", m, share)
		}
	}
	t.Logf("publishes per master (30 installations): %v", share)
	c := cl.Client(t)
	key := "{c07}message:" + first["c07"]
	if n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("%s: %d %v", key, n, err)
	}
	if got, err := b.Since(ctx, []string{tenantChannel("c07")}, ""); err != nil || len(got) != 1 || got[0].MID != first["c07"] {
		t.Fatalf("Since = %v, %v", got, err)
	}
	if on, err := b.Online(ctx, []string{tenantChannel("c01"), tenantChannel("c02")}); err != nil || len(on) != 2 {
		t.Fatalf("Online = %v, %v", on, err)
	}

	l := startLedger(pub, insts)
	l.more(t, 60)

	// A master dies; its replica takes over; the old one comes back as
	// a replica, so that publishes again reach a replica (WaitReplicas).
	cl.WaitReplicated(t)
	victim := cl.Masters()[0]
	promoted := cl.Failover(t, victim)
	cl.Node(victim).Start()
	cl.WaitSettled(t)
	l.more(t, 60)
	t.Logf("failover %s -> %s: %d answered, %d refused so far", victim, promoted, l.total.Load(), l.failed.Load())

	// An installation's slot moves to another master.
	slot := cl.SlotOf("{c05}")
	var to string
	for _, m := range cl.Masters() {
		if m != cl.OwnerOf(slot) {
			to = m
			break
		}
	}
	mig := cl.BeginMigration(t, slot, to)
	l.more(t, 30)
	mig.MoveKeys(t, 0)
	l.more(t, 30)
	mig.Finish(t)
	l.more(t, 60)
	accepted := l.finish()
	for inst, mid := range first {
		accepted[inst] = append([]string{mid}, accepted[inst]...)
	}
	t.Logf("%d publishes answered, %d refused", l.total.Load(), l.failed.Load())

	checkDelivered(t, "a", recA, accepted)
	checkDelivered(t, "b", recB, accepted)
	waitReady(t, a)
	waitReady(t, b)
	got, err := a.Since(ctx, []string{tenantChannel("c05")}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := accepted["c05"]
	if !isSubsequence(want, mids(got)) {
		t.Fatalf("history of c05 after the move: %d messages, missing some of the %d answered", len(got), len(want))
	}
}

func isSubsequence(sub, of []string) bool {
	i := 0
	for _, v := range of {
		if i < len(sub) && v == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

// The slot function agrees with Redis.
func TestKeySlot(t *testing.T) {
	r := redistest.Start(t, "--cluster-enabled", "yes")
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, k := range []string{"", "a", "foo", "{c05}pushserver", "x{}y", "{}{a}", "{a}{b}", "pre{c07}message:1", strings.Repeat("z", 100)} {
		want, err := c.Do(context.Background(), rawCmd("CLUSTER", "KEYSLOT", k)).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if got := keySlot(k); int64(got) != want {
			t.Errorf("keySlot(%q) = %d, Redis says %d", k, got, want)
		}
	}
}

// A cluster with a master down at start: readiness is red and says which
// installation waits, publishes fail plainly, and once the master is back
// everything is served; a message to channels of two installations is
// refused before anything is written.
func TestInstallationsClusterPartlyReachable(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0, "--cluster-require-full-coverage", "no")
	insts := []string{"c00", "c01", "c02", "c03", "c04", "c05"}
	down := cl.Masters()[1]
	var lost, kept string // an installation on the stopped master, one elsewhere
	var waiting []string  // all on the stopped master
	for _, inst := range insts {
		if cl.OwnerOf(cl.SlotOf("{"+inst+"}")) == down {
			lost = inst
			waiting = append(waiting, "installation "+inst+":")
		} else {
			kept = inst
		}
	}
	if lost == "" || kept == "" {
		t.Skip("the installations all hash to one side")
	}
	cl.Node(down).Kill()
	o := opts(cl.Seeds()...)
	o.Tags, o.Installations = TagsInstallation, insts
	e := newEngine(t, o)
	ctx := context.Background()
	var err error
	defer func() { t.Logf("last readiness: %v", err) }()
	testutil.WaitFor(t, "readiness red naming the installation", func() bool {
		err = e.Ready(ctx)
		return err != nil && slices.ContainsFunc(waiting, func(w string) bool { return strings.HasPrefix(err.Error(), w) })
	})
	if err := e.Publish(ctx, &protocol.Message{Channels: []string{tenantChannel(lost)}, Body: []byte(`1`)}); err == nil {
		t.Fatal("a publish to an installation on a stopped master succeeded")
	}
	mixed := &protocol.Message{Channels: []string{tenantChannel(kept), tenantChannel(lost)}, Body: []byte(`1`)}
	if err := e.Publish(ctx, mixed); err == nil || !strings.Contains(err.Error(), "installations") {
		t.Fatalf("a message to two installations: %v", err)
	}
	rec := newRecorder(e.hub, tenantChannel(kept), tenantChannel(lost))
	testutil.WaitFor(t, "publishes to the other masters", func() bool {
		return e.Publish(ctx, &protocol.Message{Channels: []string{tenantChannel(kept)}, Body: []byte(`2`)}) == nil
	})
	cl.Node(down).Start()
	cl.WaitSettled(t)
	waitReady(t, e)
	m := publish(t, e, `3`, tenantChannel(lost))
	delivered := func(m *protocol.Message) func() bool {
		return func() bool {
			return slices.ContainsFunc(rec.messages(), func(d *protocol.Message) bool { return d.MID == m.MID && d.Channels[0] == m.Channels[0] })
		}
	}
	testutil.WaitFor(t, "the message on the master that came back", delivered(m))

	// An installation not configured at start (a client added by a
	// reload) is subscribed when a connection joins one of its channels.
	added := tenantChannel("c99")
	e.hub.Subscribe(rec, []string{added})
	e.Subscribed(ctx, []string{added})
	waitReady(t, e)
	m = publish(t, e, `4`, added)
	testutil.WaitFor(t, "the added installation's message", delivered(m))
}
