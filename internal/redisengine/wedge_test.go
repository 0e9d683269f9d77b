package redisengine

import (
	"context"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/internal/wedge"
)

// A pub/sub connection that silently stops delivering is found by the
// probes within seconds: readiness goes red, the subscription is rebuilt
// on a new connection, and what was published meanwhile is recovered, so
// nothing accepted is lost.
func TestSilentSubscriptionIsRebuilt(t *testing.T) {
	r := redistest.Start(t)
	proxy, err := wedge.Start(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	po := opts(r.Addr())
	po.PublishMode = true
	pub := newEngine(t, po)
	so := opts(proxy.Addr())
	so.ProbeInterval, so.ProbeTimeout = 100*time.Millisecond, 300*time.Millisecond
	// The client library's own keepalive would notice only a connection
	// that stops answering, and only after this long.
	so.Client.ConnWriteTimeout = time.Minute
	sub := newEngine(t, so)
	waitReady(t, pub)
	waitReady(t, sub)
	rec := newRecorder(sub.hub, chA)
	before := publish(t, pub, `{"n":1}`, chA)
	rec.wait(t, 1)

	proxy.Wedge()
	during := publish(t, pub, `{"n":2}`, chA) // accepted, but not delivered by the wedged connection
	ctx := context.Background()
	testutil.WaitFor(t, "readiness red once the probes stop coming back", func() bool { return sub.Ready(ctx) != nil })
	waitReady(t, sub)
	after := publish(t, pub, `{"n":3}`, chA)
	got := rec.wait(t, 3)
	want := []string{before.MID, during.MID, after.MID}
	if m := mids(got); len(m) != 3 || m[0] != want[0] || m[1] != want[1] || m[2] != want[2] {
		t.Fatalf("delivered %v; want %v, each once", m, want)
	}
}

// A subscription whose probes do not come back while messages still do
// is slow, not silent: it is kept (closing it would drop what its socket
// holds); once nothing comes at all, it is taken for silent.
func TestSlowSubscriptionIsKept(t *testing.T) {
	r := redistest.Start(t)
	po := opts(r.Addr())
	po.PublishMode = true
	pub := newEngine(t, po)
	so := opts(r.Addr())
	so.ProbeInterval, so.ProbeTimeout = 20*time.Millisecond, 60*time.Millisecond
	so.probesLost = true
	sub := newEngine(t, so)
	waitReady(t, pub)
	waitReady(t, sub)
	rec := newRecorder(sub.hub, chA)
	ctx := context.Background()
	slow := func() float64 { return promtest.ToFloat64(sub.metrics.probeSlow) }
	for n := 1; slow() < 3; n++ {
		publish(t, pub, `{"n":1}`, chA)
		rec.wait(t, n)
		if err := sub.Ready(ctx); err != nil {
			t.Fatalf("readiness red while messages come: %v", err)
		}
		if n == 100000 {
			t.Fatal("no late probe counted in 100,000 messages")
		}
	}
	if n := promtest.ToFloat64(sub.metrics.resubscribed); n != 0 {
		t.Fatalf("%v resubscriptions while messages came", n)
	}
	testutil.WaitFor(t, "readiness red once nothing comes", func() bool { return sub.Ready(ctx) != nil })
}
