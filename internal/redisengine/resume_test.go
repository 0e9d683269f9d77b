package redisengine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// A client that resumes while this process recovers a pub/sub gap reads
// the gap from Redis as history; the recovery then brings the same
// messages to the hub. The WebSocket sends each once, in order.
func TestResumeDuringGapRecoveryNoRepeats(t *testing.T) {
	r := redistest.Start(t)
	pub, sub := pubSub(t, r.Addr())
	ctx := context.Background()
	wss := ws.NewServer(ws.Options{})
	defer wss.Close()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sess, err := wss.Upgrade(w, req, ws.FormatEncoder(format.Text))
		if err != nil {
			return
		}
		sub.hub.Subscribe(sess, []string{chA})
		sess.Start(nil, func() { sub.hub.Unsubscribe(sess, []string{chA}) })
		history, err := sub.Since(req.Context(), []string{chA}, req.URL.Query().Get("mid"))
		if err != nil {
			sess.Close(protocol.CloseInternalError, "history unavailable")
			return
		}
		sess.Live(history, func(*protocol.Message) string { return chA })
	}))
	defer hs.Close()

	rec := newRecorder(sub.hub, chA)
	first := publish(t, pub, `{"n":1}`, chA)
	rec.wait(t, 1)
	release := holdSubscriptions(sub)
	if err := raw(t, r.Addr()).Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "not ready after losing the subscription", func() bool { return sub.Ready(ctx) != nil })
	var want []string
	for _, b := range []string{`{"n":2}`, `{"n":3}`, `{"n":4}`} {
		want = append(want, publish(t, pub, b, chA).MID)
	}
	conn, br, _, err := gws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/?mid="+first.MID)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rw := wsclient.Stream(conn, br) // history may come with the handshake's answer
	testutil.WaitFor(t, "the client to subscribe", func() bool { return sub.hub.Count(chA) == 2 })
	release() // the recovery delivers 2-4 again, to the hub
	waitReady(t, sub)
	want = append(want, publish(t, pub, `{"n":5}`, chA).MID)
	// Messages queued together come as one frame of envelopes.
	var got []string
	for len(got) < len(want) {
		_ = conn.SetReadDeadline(time.Now().Add(testutil.Timeout))
		b, err := wsutil.ReadServerText(rw)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		for _, env := range strings.Split(string(b), protocol.EnvelopeStart)[1:] {
			_, rest, _ := strings.Cut(env, `"mid":"`)
			mid, _, _ := strings.Cut(rest, `"`)
			got = append(got, mid)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v; want %v (nothing repeated)", got, want)
	}
}

// A process that starts while others publish serves clients before its
// first subscription is made: what is published in between reaches them
// all the same, recovered from the id that was newest when it started.
func TestFirstSubscriptionRecoversSinceStart(t *testing.T) {
	r := redistest.Start(t)
	po := opts(r.Addr())
	po.PublishMode = true
	pub := newEngine(t, po)
	waitReady(t, pub)
	first := publish(t, pub, `{"n":1}`, chA)

	hold := make(chan struct{})
	so := opts(r.Addr())
	so.beforeSubscribe = func() { <-hold }
	sub := newEngine(t, so)
	rec := newRecorder(sub.hub, chA)
	// A client resuming now finds nothing new in history and goes live.
	if h, err := sub.Since(context.Background(), []string{chA}, first.MID); err != nil || len(h) != 0 {
		t.Fatalf("history after the first message: %v %v", mids(h), err)
	}
	var want []string
	for _, b := range []string{`{"n":2}`, `{"n":3}`} {
		want = append(want, publish(t, pub, b, chA).MID)
	}
	close(hold)
	waitReady(t, sub)
	if got := mids(rec.wait(t, 2)); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("delivered %v; want %v, published before the first subscription", got, want)
	}
}
