package redisengine

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// startCluster starts a Redis Cluster of three masters and returns their
// addresses once every slot is served.
func startCluster(t *testing.T) []string {
	t.Helper()
	return redistest.StartCluster(t, 3, 0).Seeds()
}

// Two engines on a cluster of three masters: publish on one, receive on
// both, in one order; history, online status and stats work as on one Redis.
func TestCluster(t *testing.T) {
	addrs := startCluster(t)
	t.Run("layout 1.0", func(t *testing.T) { testCluster(t, addrs, "", "") })
	t.Run("layout 2.0", func(t *testing.T) { testCluster(t, addrs, Layout20, "{l20}") })
}

func testCluster(t *testing.T, addrs []string, layout, prefix string) {
	oa, ob := opts(addrs...), opts(addrs[2])
	oa.Layout, ob.Layout, oa.Prefix, ob.Prefix = layout, layout, prefix, prefix
	a := newEngine(t, oa)
	b := newEngine(t, ob)
	waitReady(t, a)
	waitReady(t, b)
	ctx := context.Background()
	recA := newRecorder(a.hub, chA, chB)
	recB := newRecorder(b.hub, chA, chB)

	var want []string
	for i := range 20 {
		e := a
		if i%2 == 1 {
			e = b
		}
		want = append(want, publish(t, e, `{"i":1}`, chA, chB).MID)
	}
	for _, rec := range []*recorder{recA, recB} {
		if got := mids(rec.wait(t, len(want))); !slices.Equal(got, want) {
			t.Fatalf("delivered %v\nwant %v", got, want)
		}
	}
	got, err := b.Since(ctx, []string{chA, chB}, want[9])
	if err != nil || !slices.Equal(mids(got), want[10:]) {
		t.Fatalf("Since = %v, %v", mids(got), err)
	}
	if last, err := a.Last(ctx, []string{chB}); err != nil || last != want[19] {
		t.Fatalf("Last = %q, %v", last, err)
	}

	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := "{pushpull}message:" + want[0]
	if layout == Layout20 {
		key = prefix + "message:" + binID(want[0])
	}
	if n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("message key not under the hash tag: %d %v", n, err)
	}

	a.Subscribed(ctx, []string{chC})
	if on, err := b.Online(ctx, []string{chC, "dddddddddddddddddddddddddddddddd"}); err != nil || !slices.Equal(on, []int{1, 0}) {
		t.Fatalf("Online = %v, %v", on, err)
	}
	testutil.WaitFor(t, "stats of both", func() bool {
		st, err := b.Stats(ctx)
		return err == nil && len(st) == 2
	})
}
