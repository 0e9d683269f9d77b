package redisengine

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
)

// holdSubscriptions makes e's next subscriptions wait until the returned
// function is called.
func holdSubscriptions(e *testEngine) (release func()) {
	ch := make(chan struct{})
	e.sub.mu.Lock()
	e.sub.beforeSubscribe = func() { <-ch }
	e.sub.mu.Unlock()
	return func() { close(ch) }
}

// Redis killed and restarted mid-stream: publishes during the outage fail,
// the subscriber is not ready until it has resubscribed and recovered
// what was published meanwhile, and no accepted message is lost, neither
// to the subscriber's hub nor to a client resuming with its mid.
func TestRedisRestart(t *testing.T) {
	r := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	pub, sub := pubSub(t, r.Addr())
	rec := newRecorder(sub.hub, chA)
	ctx := context.Background()

	// A backend retries a publish that was refused. The first command on
	// each pooled connection may fail after the restart, as the client
	// finds the connection dead only by using it.
	var accepted []string
	send := func(n int) {
		for range n {
			for tries := 0; ; tries++ {
				m := &protocol.Message{Channels: []string{chA}, Body: []byte(`"m"`)}
				err := pub.Publish(ctx, m)
				if err == nil {
					accepted = append(accepted, m.MID)
					break
				}
				if tries == 10 {
					t.Fatal(err)
				}
			}
		}
	}
	send(20)
	clientMID := rec.wait(t, 20)[9].MID // a client that saw only half

	release := holdSubscriptions(sub)
	r.Kill()
	testutil.WaitFor(t, "not ready while Redis is down", func() bool { return sub.Ready(ctx) != nil })
	if err := pub.Publish(ctx, &protocol.Message{Channels: []string{chA}, Body: []byte(`"lost"`)}); err == nil {
		t.Fatal("a publish succeeded with Redis down")
	}
	if pub.Ready(ctx) == nil {
		t.Fatal("publisher ready with Redis down")
	}

	r.Start()
	waitReady(t, pub)
	send(15) // published while the subscriber is not subscribed
	if err := sub.Ready(ctx); err == nil {
		t.Fatal("ready before resubscribing")
	}
	release()
	waitReady(t, sub)
	send(5)

	// A refused publish may have been stored all the same (the reply was
	// lost, not the command): such a message may be delivered too.
	testutil.WaitFor(t, "every accepted message delivered", func() bool {
		return containsAll(mids(rec.messages()), accepted)
	})
	if got := mids(rec.messages()); !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatalf("hub got messages out of order or twice: %v", got)
	}
	since, err := sub.Since(ctx, []string{chA}, clientMID)
	if err != nil {
		t.Fatal(err)
	}
	if want := accepted[slices.Index(accepted, clientMID)+1:]; !containsAll(mids(since), want) || !slices.IsSorted(mids(since)) {
		t.Fatalf("resuming client got %v\nwant %v", mids(since), want)
	}
}

// A gap larger than GapLimit is not replayed: OnResync is called, and
// delivery resumes with the messages that follow.
func TestGapResync(t *testing.T) {
	r := redistest.Start(t)
	var resyncs atomic.Int32
	so := opts(r.Addr())
	so.GapLimit = 5
	so.OnResync = func() { resyncs.Add(1) }
	sub := newEngine(t, so)
	po := opts(r.Addr())
	po.PublishMode = true
	pub := newEngine(t, po)
	waitReady(t, sub)
	waitReady(t, pub)
	rec := newRecorder(sub.hub, chA)
	ctx := context.Background()
	first := publish(t, pub, `1`, chA)
	rec.wait(t, 1)

	release := holdSubscriptions(sub)
	if err := raw(t, r.Addr()).Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "not ready after losing the subscription", func() bool { return sub.Ready(ctx) != nil })
	for range 6 {
		publish(t, pub, `2`, chA)
	}
	release()
	waitReady(t, sub)
	if resyncs.Load() != 1 {
		t.Fatalf("OnResync called %d times", resyncs.Load())
	}
	after := publish(t, pub, `3`, chA)
	if got := mids(rec.wait(t, 2)); !slices.Equal(got, []string{first.MID, after.MID}) {
		t.Fatalf("delivered %v", got)
	}

	// A gap within the limit is replayed.
	release = holdSubscriptions(sub)
	if err := raw(t, r.Addr()).Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "not ready after losing the subscription", func() bool { return sub.Ready(ctx) != nil })
	var gap []string
	for range 5 {
		gap = append(gap, publish(t, pub, `4`, chA).MID)
	}
	release()
	waitReady(t, sub)
	if got := mids(rec.wait(t, 7)); !slices.Equal(got[2:], gap) || resyncs.Load() != 1 {
		t.Fatalf("delivered %v, want %v then %v; %d resyncs", got, []string{first.MID, after.MID}, gap, resyncs.Load())
	}
}

// A process started before its Redis reports not ready and refuses
// publishes, then connects by itself.
func TestStartWhileDown(t *testing.T) {
	r := redistest.New(t)
	t.Cleanup(r.Kill)
	e := newEngine(t, opts(r.Addr()))
	ctx := context.Background()
	if err := e.Ready(ctx); err == nil {
		t.Fatal("ready without Redis")
	}
	if err := e.Publish(ctx, &protocol.Message{Channels: []string{chA}, Body: []byte(`1`)}); err == nil {
		t.Fatal("published without Redis")
	}
	if _, err := e.Since(ctx, []string{chA}, ""); err == nil {
		t.Fatal("Since without Redis")
	}
	r.Start()
	waitReady(t, e)
	rec := newRecorder(e.hub, chA)
	m := publish(t, e, `1`, chA)
	if got := rec.wait(t, 1); got[0].MID != m.MID {
		t.Fatalf("delivered %v", mids(got))
	}
}

func containsAll(have, want []string) bool {
	set := make(map[string]bool, len(have))
	for _, m := range have {
		set[m] = true
	}
	for _, m := range want {
		if !set[m] {
			return false
		}
	}
	return true
}
