package redisengine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
)

var _ engine.Engine = (*Engine)(nil)

const (
	chA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	chB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	chC = "cccccccccccccccccccccccccccccccc"
)

func TestPublishSinceLast(t *testing.T) {
	r := redistest.Start(t)
	e := newEngine(t, opts(r.Addr()))
	waitReady(t, e)
	ctx := context.Background()
	rec := newRecorder(e.hub, chA)

	m1 := publish(t, e, `{"n":1}`, chA)
	m2 := publish(t, e, `{"n":2}`, chB)
	m3 := publish(t, e, `{"n":3}`, chA, chB)
	m4 := publish(t, e, `{"n":4}`, chA)
	if !(m1.MID < m2.MID && m2.MID < m3.MID && m3.MID < m4.MID) || m2.ID != m1.ID+1 {
		t.Fatalf("ids not in publish order: %s %s %s %s", m1.MID, m2.MID, m3.MID, m4.MID)
	}
	if got := mids(rec.wait(t, 3)); !slices.Equal(got, []string{m1.MID, m3.MID, m4.MID}) {
		t.Fatalf("delivered %v", got)
	}

	for _, tc := range []struct {
		channels []string
		after    string
		want     []*protocol.Message
	}{
		{[]string{chA}, "", []*protocol.Message{m1, m3, m4}},
		{[]string{chA, chB}, "", []*protocol.Message{m1, m2, m3, m4}},
		{[]string{chA, chB}, m2.MID, []*protocol.Message{m3, m4}},
		{[]string{chB}, m3.MID, nil},
		{[]string{chA}, "null", []*protocol.Message{m1, m3, m4}},
		{[]string{chC}, "", nil},
	} {
		got, err := e.Since(ctx, tc.channels, tc.after)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(mids(got), mids(tc.want)) {
			t.Errorf("Since(%v, %q) = %v, want %v", tc.channels, tc.after, mids(got), mids(tc.want))
		}
		for i, m := range got {
			w := tc.want[i]
			if string(m.Body) != string(w.Body) || !slices.Equal(m.Channels, w.Channels) || m.ID != w.ID ||
				!m.Created.Equal(w.Created) || !m.Expires.Equal(w.Expires) {
				t.Errorf("Since returned %+v, published %+v", m, w)
			}
		}
	}
	for _, tc := range []struct {
		channels []string
		want     string
	}{
		{[]string{chA}, m4.MID}, {[]string{chB}, m3.MID}, {[]string{chB, chA}, m4.MID}, {[]string{chC}, ""},
	} {
		if got, err := e.Last(ctx, tc.channels); err != nil || got != tc.want {
			t.Errorf("Last(%v) = %q, %v; want %q", tc.channels, got, err, tc.want)
		}
	}

	var res protocol.Message
	if err := e.Reserve(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.MID <= m4.MID || !protocol.ValidMID(res.MID) {
		t.Fatalf("reserved %q after %q", res.MID, m4.MID)
	}
	if got, _ := e.Since(ctx, []string{chA, chB}, m4.MID); len(got) != 0 {
		t.Fatalf("a reserved id was stored: %v", mids(got))
	}
	m5 := publish(t, e, `{"n":5}`, chA)
	if m5.ID != res.ID+1 {
		t.Fatalf("publish after reserve got id %d, reserved %d", m5.ID, res.ID)
	}
}

func TestExpiry(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.TTLs = store.TTLs{Message: 300 * time.Millisecond, Channel: time.Hour}
	e := newEngine(t, o)
	o.TTLs.Message = time.Hour
	e2 := newEngine(t, o)
	waitReady(t, e)
	waitReady(t, e2)
	ctx := context.Background()

	long := &protocol.Message{Channels: []string{chA}, Body: []byte(`"long"`), Expiry: 3600}
	if err := e.Publish(ctx, long); err != nil {
		t.Fatal(err)
	}
	if got := long.Expires.Sub(long.Created); got != 300*time.Millisecond {
		t.Fatalf("an expiry beyond messageTTL kept %v", got)
	}
	keep := publish(t, e2, `"kept"`, chA) // Last must look past the newer, expired ones
	short := &protocol.Message{Channels: []string{chA}, Body: []byte(`"short"`), Expiry: 1}
	if err := e2.Publish(ctx, short); err != nil {
		t.Fatal(err)
	}
	if got := short.Expires.Sub(short.Created); got != time.Second {
		t.Fatalf("expiry 1 kept %v", got)
	}
	ttl, err := raw(t, r.Addr()).Do(ctx, rawCmd("PTTL", "message:"+short.MID)).AsInt64()
	if err != nil || ttl <= 0 || ttl > 1000 {
		t.Fatalf("message key PTTL %d, %v", ttl, err)
	}

	testutil.WaitFor(t, "expiry", func() bool {
		got, err := e2.Since(ctx, []string{chA}, "")
		return err == nil && slices.Equal(mids(got), []string{keep.MID})
	})
	// Last asks Redis whether a key still exists, Since reads the expiry
	// stored in the message: the two may disagree for the milliseconds
	// between the script's clock and this process's.
	testutil.WaitFor(t, "Last past the expired", func() bool {
		last, err := e2.Last(ctx, []string{chA})
		return err == nil && last == keep.MID
	})
	if got, err := e2.Since(ctx, []string{chA}, long.MID); err != nil || !slices.Equal(mids(got), []string{keep.MID}) {
		t.Fatalf("Since after an expired mid = %v, %v", mids(got), err)
	}
}

// A message that expired on its way through pub/sub is not delivered.
func TestExpiredNotDelivered(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.TTLs = store.TTLs{Message: time.Minute, Channel: time.Hour}
	e := newEngine(t, o)
	waitReady(t, e)
	rec := newRecorder(e.hub, chA)
	ctx := context.Background()
	rc := raw(t, r.Addr())
	old := &protocol.Message{MID: protocol.FormatMID(time.Now().Unix(), 1), Channels: []string{chA},
		Body: []byte(`"old"`), Created: time.Now().Add(-2 * time.Minute)}
	if err := rc.Do(ctx, rawCmd("PUBLISH", "pushserver:other", encode(old))).Error(); err != nil {
		t.Fatal(err)
	}
	fresh := publish(t, e, `"fresh"`, chA)
	if got := mids(rec.wait(t, 1)); !slices.Equal(got, []string{fresh.MID}) {
		t.Fatalf("delivered %v", got)
	}
}

// The keys are the original server's, in its formats, and messages it
// wrote or published are read and delivered.
func TestKeyLayout(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.TTLs = store.TTLs{Message: time.Hour, Channel: 2 * time.Hour}
	o.OnlineTTL, o.OnlineDelta = 120*time.Second, 10*time.Second
	o.ProcessUniqueID = "proc1"
	e := newEngine(t, o)
	waitReady(t, e)
	ctx := context.Background()
	rc := raw(t, r.Addr())

	// The original subscribes to every process's channel.
	got := make(chan string, 1)
	subscribed := make(chan struct{})
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(rueidis.PubSubSubscription) { close(subscribed) })
	go func() {
		_ = rc.Receive(hooked, rc.B().Psubscribe().Pattern("pushserver:*").Build(), func(m rueidis.PubSubMessage) {
			select {
			case got <- m.Channel + " " + m.Message:
			default:
			}
		})
	}()
	<-subscribed

	// A body with a quote, a non-ASCII letter and an HTML character.
	body := `{"module_id":"im","command":"x","params":{"t":"é \"<\u003e"}}`
	m := &protocol.Message{Channels: []string{chA, chB}, Body: []byte(body), Expiry: 60}
	if err := e.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	stored, err := rc.Do(ctx, rawCmd("GET", "message:"+m.MID)).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal([]byte(stored), &js); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": m.MID, "text": body, "expiry": 60.0, "channels": []any{chA, chB},
		"dateCreated": float64(m.Created.UnixMilli()),
	}
	if fmt.Sprint(js) != fmt.Sprint(want) {
		t.Fatalf("stored %s\nwant     %v", stored, want)
	}
	if ttl, _ := rc.Do(ctx, rawCmd("PTTL", "message:"+m.MID)).AsInt64(); ttl <= 0 || ttl > 60000 {
		t.Fatalf("message PTTL %d, want at most the 60 s expiry", ttl)
	}
	select {
	case msg := <-got:
		if msg != "pushserver:proc1 "+stored {
			t.Fatalf("published %q", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing published on pushserver:proc1")
	}

	for _, ch := range []string{chA, chB} {
		key := "channel:" + ch + ":messages"
		members, err := rc.Do(ctx, rawCmd("ZRANGE", key, "0", "-1")).AsStrSlice()
		if err != nil || !slices.Equal(members, []string{m.MID}) {
			t.Fatalf("%s = %v, %v", key, members, err)
		}
		if score, err := rc.Do(ctx, rawCmd("ZSCORE", key, m.MID)).AsFloat64(); err != nil || score != 0 {
			t.Fatalf("%s score %v, %v", key, score, err)
		}
		if ttl, _ := rc.Do(ctx, rawCmd("PTTL", key)).AsInt64(); ttl <= time.Hour.Milliseconds() || ttl > 2*time.Hour.Milliseconds() {
			t.Fatalf("%s PTTL %d, want channelTTL", key, ttl)
		}
	}
	// The index TTL is set once: a later publish leaves it alone.
	if err := rc.Do(ctx, rawCmd("PEXPIRE", "channel:"+chA+":messages", "36000000")).Error(); err != nil {
		t.Fatal(err)
	}
	publish(t, e, `1`, chA)
	if ttl, _ := rc.Do(ctx, rawCmd("PTTL", "channel:"+chA+":messages")).AsInt64(); ttl <= 2*time.Hour.Milliseconds() {
		t.Fatalf("index TTL reset to %d", ttl)
	}

	counter, _ := rc.Do(ctx, rawCmd("GET", "server:messagecounter")).ToString()
	start, _ := rc.Do(ctx, rawCmd("GET", "server:startdate")).ToString()
	if start+fmt.Sprintf("%016s", counter) <= m.MID || start != m.MID[:10] {
		t.Fatalf("counter %s start %s, message %s", counter, start, m.MID)
	}

	e.Subscribed(ctx, []string{chC})
	if v, _ := rc.Do(ctx, rawCmd("GET", "online:"+chC)).ToString(); v != chC {
		t.Fatalf("online:%s = %q", chC, v)
	}
	if ttl, _ := rc.Do(ctx, rawCmd("PTTL", "online:"+chC)).AsInt64(); ttl <= 120000 || ttl > 130000 {
		t.Fatalf("online PTTL %d, want onlineTTL + onlineDelta", ttl)
	}
	var st engine.ProcessStats
	s, err := rc.Do(ctx, rawCmd("HGET", "stats", "proc1")).ToString()
	if err != nil || json.Unmarshal([]byte(s), &st) != nil || st.ProcessUniqueID != "proc1" || st.PID == 0 || st.Date == 0 {
		t.Fatalf("stats entry %q, %v", s, err)
	}

	// A message of the original server: stored, then published on its
	// own process channel.
	rec := newRecorder(e.hub, chC)
	orig := start + fmt.Sprintf("%016d", 999999)
	text := `{"id":"` + orig + `","text":"{\"module_id\":\"pull\"}","expiry":0,"channels":["` + chC + `"],"dateCreated":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`
	for _, c := range [][]string{
		{"SETEX", "message:" + orig, "60", text},
		{"ZADD", "channel:" + chC + ":messages", "0", orig},
		{"PUBLISH", "pushserver:original", text},
	} {
		if err := rc.Do(ctx, rawCmd(c[0], c[1:]...)).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if d := rec.wait(t, 1); d[0].MID != orig || string(d[0].Body) != `{"module_id":"pull"}` {
		t.Fatalf("delivered %+v", d[0])
	}
	since, err := e.Since(ctx, []string{chC}, "")
	if err != nil || len(since) != 1 || since[0].MID != orig || string(since[0].Body) != `{"module_id":"pull"}` {
		t.Fatalf("Since = %v, %v", since, err)
	}
}

// Every message published on any engine reaches every hub exactly once,
// and all hubs see the same order, which is id order.
func TestFanOut(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := redistest.Start(t)
			var es []*testEngine
			var recs []*recorder
			for range n {
				e := newEngine(t, opts(r.Addr()))
				waitReady(t, e)
				es = append(es, e)
				recs = append(recs, newRecorder(e.hub, chA, chB))
			}
			const each = 50
			var wg sync.WaitGroup
			for i, e := range es {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range each {
						ch := []string{chA}
						if j%3 == 0 {
							ch = []string{chA, chB}
						}
						if err := e.Publish(context.Background(), &protocol.Message{Channels: ch, Body: []byte(fmt.Sprintf(`[%d,%d]`, i, j))}); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			var first []string
			for i, rec := range recs {
				got := mids(rec.wait(t, n*each))
				if len(got) != n*each {
					t.Fatalf("hub %d got %d messages, want %d", i, len(got), n*each)
				}
				if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Fatalf("hub %d got messages out of order or twice: %v", i, got)
				}
				if i == 0 {
					first = got
				} else if !slices.Equal(got, first) {
					t.Fatalf("hub %d saw another order than hub 0", i)
				}
			}
		})
	}
}

func TestPublishMode(t *testing.T) {
	r := redistest.Start(t)
	pub, sub := pubSub(t, r.Addr())
	own := newRecorder(pub.hub, chA)
	rec := newRecorder(sub.hub, chA)
	m := publish(t, pub, `"x"`, chA)
	if got := rec.wait(t, 1); got[0].MID != m.MID {
		t.Fatalf("delivered %v", mids(got))
	}
	// A second message, so the first one had time to reach a wrongly
	// subscribed publisher as well.
	m2 := publish(t, sub, `"y"`, chA)
	rec.wait(t, 2)
	if got := own.messages(); len(got) != 0 {
		t.Fatalf("a publisher-only process delivered %v", mids(got))
	}
	pub.Subscribed(context.Background(), []string{chB})
	if n, err := raw(t, r.Addr()).Do(context.Background(), rawCmd("EXISTS", "online:"+chB)).AsInt64(); err != nil || n != 0 {
		t.Fatalf("a publisher-only process set an online key: %d %v", n, err)
	}
	if got, _ := pub.Since(context.Background(), []string{chA}, ""); !slices.Equal(mids(got), []string{m.MID, m2.MID}) {
		t.Fatalf("publisher Since = %v", mids(got))
	}
}

func TestOnline(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.OnlineTTL, o.OnlineDelta = 200*time.Millisecond, 2*time.Second
	a := newEngine(t, o)
	b := newEngine(t, o)
	waitReady(t, a)
	waitReady(t, b)
	ctx := context.Background()

	recs := []*recorder{newRecorder(a.hub, chA), newRecorder(a.hub, chA)}
	a.Subscribed(ctx, []string{chA})
	if got, err := b.Online(ctx, []string{chA, chB}); err != nil || !slices.Equal(got, []int{1, 0}) {
		t.Fatalf("Online on b = %v, %v", got, err)
	}
	if got, err := a.Online(ctx, []string{chA, chB}); err != nil || !slices.Equal(got, []int{2, 0}) {
		t.Fatalf("Online on a = %v, %v", got, err)
	}
	// The refresh pushes the key's expiry back.
	rc := raw(t, r.Addr())
	pttl := func() int64 {
		n, _ := rc.Do(ctx, rawCmd("PTTL", "online:"+chA)).AsInt64()
		return n
	}
	before := pttl()
	testutil.WaitFor(t, "online key refreshed", func() bool { return pttl() > before })
	for _, rec := range recs {
		a.hub.Unsubscribe(rec, []string{chA})
	}
	testutil.WaitFor(t, "channel offline", func() bool {
		got, err := b.Online(ctx, []string{chA})
		return err == nil && got[0] == 0
	})
}

func TestStats(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.ProcessUniqueID = "a"
	a := newEngine(t, o)
	o.ProcessUniqueID = "b"
	b := newEngine(t, o)
	waitReady(t, a)
	waitReady(t, b)
	ctx := context.Background()
	rc := raw(t, r.Addr())
	testutil.WaitFor(t, "stats entries", func() bool {
		n, _ := rc.Do(ctx, rawCmd("HLEN", "stats")).AsInt64()
		return n == 2
	})
	stale, _ := json.Marshal(engine.ProcessStats{PID: 1, ProcessUniqueID: "dead", Date: time.Now().Add(-time.Minute).UnixMilli()})
	fresh, _ := json.Marshal(engine.ProcessStats{PID: 2, ProcessUniqueID: "other", Date: time.Now().UnixMilli()})
	if err := rc.Do(ctx, rawCmd("HSET", "stats", "dead", string(stale), "garbage", "{", "other", string(fresh))).Error(); err != nil {
		t.Fatal(err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range st {
		ids = append(ids, s.ProcessUniqueID)
	}
	if !slices.Equal(ids, []string{"a", "b", "other"}) {
		t.Fatalf("stats of %v", ids)
	}
	for _, f := range []string{"dead", "garbage"} {
		if n, _ := rc.Do(ctx, rawCmd("HEXISTS", "stats", f)).AsInt64(); n != 0 {
			t.Fatalf("stale entry %s kept", f)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Do(ctx, rawCmd("HEXISTS", "stats", "a")).AsInt64(); n != 0 {
		t.Fatal("a closed engine left its stats entry")
	}
}
