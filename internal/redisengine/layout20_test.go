package redisengine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
)

func opts20(addr, uid string) Options {
	o := opts(addr)
	o.Layout = Layout20
	o.ProcessUniqueID = uid
	return o
}

// Two pushpull processes in the 2.0 layout on one Redis: what one
// publishes the other delivers, in order, and both serve it as history,
// under the original's keys.
func TestLayout20TwoProcesses(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	rc := raw(t, r.Addr())
	a := newEngine(t, opts20(r.Addr(), "pp-a"))
	b := newEngine(t, opts20(r.Addr(), "pp-b"))
	waitReady(t, a)
	waitReady(t, b)
	recA, recB := newRecorder(a.hub, chA, "user:7"), newRecorder(b.hub, chA, "user:7")

	var sent []string
	for i := range 10 {
		from := a
		if i%2 == 1 {
			from = b
		}
		m := &protocol.Message{Channels: []string{chA, "user:7"}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Expiry: 60}
		if err := from.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m.MID)
	}
	for _, rec := range []*recorder{recA, recB} {
		got := rec.wait(t, 10)
		if !slices.Equal(mids(got), sent) {
			t.Fatalf("delivered %v, want %v", mids(got), sent)
		}
		for i, m := range got {
			if string(m.Body) != fmt.Sprintf(`{"n":%d}`, i) || !slices.Equal(m.Channels, []string{chA, "user:7"}) {
				t.Fatalf("delivered %d: %s on %v", i, m.Body, m.Channels)
			}
		}
	}
	for _, e := range []*testEngine{a, b} {
		for _, ch := range []string{chA, "user:7"} {
			hist, err := e.Since(ctx, []string{ch}, sent[4])
			if err != nil || !slices.Equal(mids(hist), sent[5:]) {
				t.Fatalf("%s history %v, %v; want %v", ch, mids(hist), err, sent[5:])
			}
		}
		if last, err := e.Last(ctx, []string{chA}); err != nil || last != sent[9] {
			t.Fatalf("last %q, %v", last, err)
		}
	}

	// The original's keys: a binary message key holding protobuf, the
	// channel indexed under both kinds of id with binary members.
	bin := binID(sent[0])
	v, err := rc.Do(ctx, rawCmd("GET", "message:"+bin)).ToString()
	if err != nil || !strings.HasPrefix(v, storedHead20+bin) {
		t.Fatalf("message key holds %q, %v", v, err)
	}
	for _, key := range []string{"channel:messages:" + binID(chA), "pubchannel:messages:" + binID(chA), "pushpull:channel:messages:user:7"} {
		members, err := rc.Do(ctx, rawCmd("ZRANGE", key, "0", "-1")).AsStrSlice()
		if err != nil || len(members) != 10 || members[0] != bin {
			t.Fatalf("%q holds %q, %v", key, members, err)
		}
		if ttl, err := rc.Do(ctx, rawCmd("TTL", key)).AsInt64(); err != nil || ttl <= 0 {
			t.Fatalf("%q has TTL %d, %v", key, ttl, err)
		}
	}
	if n, err := rc.Do(ctx, rawCmd("GET", "server:messagecounter")).AsInt64(); err != nil || n != 10 {
		t.Fatalf("counter %d, %v", n, err)
	}

	// A client's message goes to public channels only.
	m := &protocol.Message{Channels: []string{chB}, Body: []byte(`{}`), Expiry: 60, Sender: protocol.Sender{Type: protocol.SenderClient, ID: chB}}
	if err := a.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Do(ctx, rawCmd("EXISTS", "channel:messages:"+binID(chB), "pubchannel:messages:"+binID(chB))).AsInt64(); err != nil || n != 1 {
		t.Fatalf("a client's message indexed in %d indexes, %v", n, err)
	}
	if hist, err := b.Since(ctx, []string{chB}, ""); err != nil || len(hist) != 1 || hist[0].Sender != m.Sender {
		t.Fatalf("history %+v, %v", hist, err)
	}

	// Online status crosses processes, under the original's keys.
	b.Subscribed(ctx, []string{chB})
	if n, err := a.Online(ctx, []string{chB, chA}); err != nil || n[0] != 1 {
		t.Fatalf("online %v, %v", n, err)
	}
	if v, err := rc.Do(ctx, rawCmd("GET", "channel:online:"+binID(chB))).ToString(); err != nil || v != "1" {
		t.Fatalf("online key holds %q, %v", v, err)
	}
}

// storeAsOriginal writes a message as the push server 2.0 does: INCR, then
// the protobuf value (which names no channels) and the private channels'
// indexes, then the NotificationBatch on its own channel.
func storeAsOriginal(t *testing.T, addr string, publish bool, body string, channels ...string) string {
	t.Helper()
	mid, payload := originalMessage(t, addr, body, channels...)
	if publish {
		publishAsOriginal(t, addr, payload)
	}
	return mid
}

func publishAsOriginal(t *testing.T, addr, payload string) {
	t.Helper()
	if err := raw(t, addr).Do(context.Background(), rawCmd("PUBLISH", "pushserver:original", payload)).Error(); err != nil {
		t.Fatal(err)
	}
}

// originalMessage takes an id and stores a message as the original does,
// returning its id and the payload the original would publish.
func originalMessage(t *testing.T, addr string, body string, channels ...string) (mid, payload string) {
	t.Helper()
	ctx := context.Background()
	rc := raw(t, addr)
	if err := rc.Do(ctx, rawCmd("SETNX", "server:startdate", "1790000000")).Error(); err != nil {
		t.Fatal(err)
	}
	start, err := rc.Do(ctx, rawCmd("GET", "server:startdate")).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n, err := rc.Do(ctx, rawCmd("INCR", "server:messagecounter")).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	mid = fmt.Sprintf("%s%016d", start, n)
	m := &protocol.Message{MID: mid, Body: []byte(body), Expiry: 600, Created: time.Now(), Sender: protocol.Sender{Type: protocol.SenderBackend}}
	stored := encode20(m, store.DefaultTTLs)
	// The original has no createdMs, the field that ends pushpull's.
	stored = stored[:len(stored)-2-protowire.SizeVarint(uint64(m.Created.UnixMilli()))]
	if err := rc.Do(ctx, rawCmd("SET", "message:"+binID(mid), string(stored), "EX", "600")).Error(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range channels {
		if err := rc.Do(ctx, rawCmd("ZADD", "channel:messages:"+binID(ch), "0", binID(mid))).Error(); err != nil {
			t.Fatal(err)
		}
	}
	head := encodeBatchHead20(&protocol.Message{Channels: channels}, len(stored))
	return mid, string(head) + string(stored)
}

// The original's processes publish out of id order: pushpull delivers in
// id order, waiting for a missing id at most the reorder window.
func TestLayout20Reorder(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	patient := opts20(r.Addr(), "patient") // waits as long as the test may take
	patient.ReorderWindow = time.Hour
	e := newEngine(t, patient)
	hasty := opts20(r.Addr(), "hasty") // gives up on a missing id at once
	hasty.ReorderWindow = time.Millisecond
	h := newEngine(t, hasty)
	waitReady(t, e)
	waitReady(t, h)
	rec, hrec := newRecorder(e.hub, chA), newRecorder(h.hub, chA)

	first := storeAsOriginal(t, r.Addr(), true, `{"n":0}`, chA)
	rec.wait(t, 1)
	// Two processes took ids 2 and 3; the second published first.
	second, late := originalMessage(t, r.Addr(), `{"n":1}`, chA)
	third := storeAsOriginal(t, r.Addr(), true, `{"n":2}`, chA)
	publishAsOriginal(t, r.Addr(), late)
	got := rec.wait(t, 3)
	if want := []string{first, second, third}; !slices.Equal(mids(got), want) {
		t.Fatalf("delivered %v, want %v", mids(got), want)
	}
	// A message of the original that pushpull cannot deliver (its body
	// is not JSON) still tells that no id before the next is missing.
	storeAsOriginal(t, r.Addr(), true, `not json`, chA)
	fourth := storeAsOriginal(t, r.Addr(), true, `{"n":3}`, chA)
	if got := rec.wait(t, 4); got[3].MID != fourth {
		t.Fatalf("delivered %v", mids(got))
	}
	hrec.wait(t, 4)

	// An id taken and never published holds the next messages back for
	// the window only.
	if err := raw(t, r.Addr()).Do(ctx, rawCmd("INCR", "server:messagecounter")).Error(); err != nil {
		t.Fatal(err)
	}
	fifth := storeAsOriginal(t, r.Addr(), true, `{"n":4}`, chA)
	sixth := storeAsOriginal(t, r.Addr(), true, `{"n":5}`, chA)
	got = hrec.wait(t, 6)
	if want := []string{fifth, sixth}; !slices.Equal(mids(got[4:]), want) {
		t.Fatalf("delivered %v, want %v last", mids(got), want)
	}
	seventh := storeAsOriginal(t, r.Addr(), true, `{"n":6}`, chA)
	if got := hrec.wait(t, 7); got[6].MID != seventh {
		t.Fatalf("delivered %v", mids(got))
	}
	if got := rec.messages(); len(got) != 4 {
		t.Fatalf("delivered %v past a missing id within the window", mids(got))
	}
}

// The original's messages: delivered from pub/sub, served as history with
// the channels they were indexed in, and recovered from Redis after a
// subscription gap although their values name no channel.
func TestLayout20ReadsOriginal(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	e := newEngine(t, opts20(r.Addr(), "pp"))
	waitReady(t, e)
	rec := newRecorder(e.hub, chA)
	newRecorder(e.hub, chB)

	live := storeAsOriginal(t, r.Addr(), true, `{"live":1}`, chA, chB)
	got := rec.wait(t, 1)
	if got[0].MID != live || string(got[0].Body) != `{"live":1}` || !slices.Equal(got[0].Channels, []string{chA, chB}) {
		t.Fatalf("delivered %+v", got[0])
	}
	hist, err := e.Since(ctx, []string{chA, chB}, "")
	if err != nil || len(hist) != 1 || !slices.Equal(hist[0].Channels, []string{chA, chB}) {
		t.Fatalf("history %+v, %v", hist, err)
	}

	release := holdSubscriptions(e)
	if err := raw(t, r.Addr()).Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "not ready", func() bool { return e.Ready(ctx) != nil })
	var missed []string
	for i := range 3 {
		missed = append(missed, storeAsOriginal(t, r.Addr(), true, fmt.Sprintf(`{"missed":%d}`, i), chA))
	}
	storeAsOriginal(t, r.Addr(), true, `{"elsewhere":1}`, chC) // no subscriber here
	release()
	waitReady(t, e)
	after := storeAsOriginal(t, r.Addr(), true, `{"after":1}`, chA)
	got = rec.wait(t, 5)
	if want := append(append([]string{live}, missed...), after); !slices.Equal(mids(got), want) {
		t.Fatalf("delivered %v, want %v", mids(got), want)
	}
	for _, m := range got[1:4] {
		if !slices.Equal(m.Channels, []string{chA}) {
			t.Fatalf("recovered %s on %v", m.Body, m.Channels)
		}
	}
}

// The original's process stats entries are read, though it may name a
// process by a number, and kept while fresh by its own measure.
func TestLayout20Stats(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	rc := raw(t, r.Addr())
	e := newEngine(t, opts20(r.Addr(), "pp"))
	waitReady(t, e)
	// The original refreshes its entry every 60 s: one 50 s old is fresh.
	entry := strings.Replace(string(fixture20(t, "stats.json")), `"date":1796144954750`,
		fmt.Sprintf(`"date":%d`, time.Now().Add(-50*time.Second).UnixMilli()), 1)
	byNumber := strings.Replace(entry, `"processUniqueId":"ps20-a"`, `"processUniqueId":4242`, 1)
	if err := rc.Do(ctx, rawCmd("HSET", "stats", "ps20-a", entry, "4242", byNumber)).Error(); err != nil {
		t.Fatal(err)
	}
	st, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range st {
		ids = append(ids, s.ProcessUniqueID)
	}
	if !slices.Equal(ids, []string{"4242", "pp", "ps20-a"}) {
		t.Fatalf("stats of %v", ids)
	}
	if n, err := rc.Do(ctx, rawCmd("HLEN", "stats")).AsInt64(); err != nil || n < 3 {
		t.Fatalf("stats entries left: %d, %v", n, err)
	}
}
