package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	tu "github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/pushservice"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/protocol"
)

// pushEnv is a backend with Web Push on, sending to a local push service.
type pushEnv struct {
	s      *Service
	e      *engine.Local
	ps     *pushservice.Service
	vapid  *webpush.VAPID
	cfg    PushConfig
	cancel context.CancelFunc
	done   chan struct{}
}

func newVAPID(t testing.TB) *webpush.VAPID {
	priv, _, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	v, err := webpush.NewVAPID(priv, "", "mailto:ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newPushEnv builds a service on state st sending to ps (a new push
// service when nil) with v (a new key when nil), its worker not started.
func newPushEnv(t *testing.T, st State, ps *pushservice.Service, v *webpush.VAPID, edit func(*PushConfig)) *pushEnv {
	t.Helper()
	if v == nil {
		v = newVAPID(t)
	}
	if ps == nil {
		ps = pushservice.Start(t, v.PublicKey())
	}
	cfg := PushConfig{
		Sender:   &webpush.Sender{VAPID: v, Client: ps.Client()},
		Interval: 5 * time.Millisecond, Backoff: 20 * time.Millisecond, DeferDelay: time.Hour,
		Rate: 1000, UserRate: 6000, AllowPrivate: true, // the push service is on loopback
	}
	if edit != nil {
		edit(&cfg)
	}
	signer, _ := protocol.NewSigner("key", "sha1")
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), hub.New(), zero{}, "test")
	s := New(Options{
		Engine: e, State: st, Signer: signer, Key: "bk", Version: 3,
		WriteTTL: time.Hour, StorageTTL: 2 * time.Hour, WatchTTL: time.Minute, Push: &cfg,
	})
	return &pushEnv{s: s, e: e, ps: ps, vapid: v, cfg: cfg}
}

// start runs the worker until stop or the end of the test.
func (p *pushEnv) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.s.RunPush(ctx)
	}()
	t.Cleanup(p.stop)
}

// stop ends the worker and waits for it.
func (p *pushEnv) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

func (p *pushEnv) subscribe(t *testing.T, user string) string {
	t.Helper()
	id, sub := p.ps.Subscribe()
	if _, err := p.s.Subscribe(context.Background(), user, "", sub); err != nil {
		t.Fatal(err)
	}
	return id
}

func (p *pushEnv) queueLen(t *testing.T) int {
	n, _, err := p.s.push.store.QueueStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// call posts body to the backend API's path and decodes the answer.
func (p *pushEnv) call(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/pushpull/"+path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer bk")
	w := httptest.NewRecorder()
	p.s.ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: %d %q", path, w.Code, w.Body.String())
	}
	return w.Code, out
}

// pushStates runs f on the memory state and on a Redis state.
func pushStates(t *testing.T, f func(t *testing.T, newState func() State)) {
	t.Run("memory", func(t *testing.T) { f(t, func() State { return NewMemory() }) })
	t.Run("redis", func(t *testing.T) {
		c := startRedis(t)
		f(t, func() State { return NewRedis(c, "test:") })
	})
}

func payloadOf(t *testing.T, m pushservice.Message) pushPayload {
	t.Helper()
	var p pushPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	return p
}

// TestPushDecisions sends one AddQueue call to users in every state and
// checks what each is decided and what the push service receives.
func TestPushDecisions(t *testing.T) {
	pushStates(t, func(t *testing.T, newState func() State) {
		p := newPushEnv(t, newState(), nil, nil, nil)
		ctx := context.Background()
		subs := map[string]string{}
		for _, u := range []string{"1", "2", "3", "5"} {
			subs[u] = p.subscribe(t, u)
		}
		// 2 is connected now; 3 was a moment ago.
		if _, err := p.e.UserConnected(ctx, "2", "c2"); err != nil {
			t.Fatal(err)
		}
		_, _ = p.e.UserConnected(ctx, "3", "c3")
		_, _ = p.e.UserDisconnected(ctx, "3", "c3")
		// Last seen is counted in whole seconds, 0 being connected.
		tu.WaitFor(t, "user 3 seen a second ago", func() bool {
			st, err := p.s.Online(ctx, []string{"3"})
			return err == nil && !st["3"].Online
		})
		p.start(t)
		code, out := p.call(t, "push/send", `{"USER_ID":[1,"2",3,4,5],"SKIP_USERS":[5],"MESSAGE":"hello ✓","TAG":"IM_MESS_1",
			"SUB_TAG":"IM_MESS","BADGE":"3","PARAMS":{"id":7},"ADVANCED_PARAMS":{"senderName":"Ann"},"SOUND":"ding","IMPORTANT":"Y"}`)
		if code != 200 || out["queued"] != 2.0 {
			t.Fatalf("push/send: %d %v; want 2 queued (users 1 and 3)", code, out)
		}
		want := map[string]string{"1": "send", "2": "skip", "3": "defer", "4": "skip", "5": "skip"}
		users := out["users"].(map[string]any)
		for u, d := range want {
			if got := users[u].(map[string]any)["decision"]; got != d {
				t.Errorf("user %s: decision %v, want %s (%v)", u, got, d, users[u])
			}
		}
		tu.WaitFor(t, "the notification to user 1", func() bool { return len(p.ps.Messages()) == 1 })
		m := p.ps.Messages()[0]
		pl := payloadOf(t, m)
		ttl, _ := strconv.Atoi(m.TTL)
		if m.Subscription != subs["1"] || pl.Message != "hello ✓" || pl.Tag != "IM_MESS_1" || pl.SubTag != "IM_MESS" ||
			pl.Badge == nil || *pl.Badge != 3 || string(pl.Params) != `{"id":7}` || pl.Sound != "ding" || !pl.Important || pl.Silent ||
			m.Urgency != "high" || m.Topic != webpush.Topic("IM_MESS_1") || ttl > 43200 || ttl < 43000 {
			t.Errorf("push service got %+v %+v", m, pl)
		}
		// With SEND_IMMEDIATELY the connected user gets it silently, the
		// recent one at once; EXPIRY is the TTL; no IMPORTANT: normal.
		code, out = p.call(t, "push/send", `{"USER_ID":["2","3"],"MESSAGE":"now","SEND_IMMEDIATELY":true,"EXPIRY":60,"SOUND":"ding"}`)
		if code != 200 || out["queued"] != 2.0 {
			t.Fatalf("push/send immediately: %d %v", code, out)
		}
		tu.WaitFor(t, "the immediate notifications", func() bool { return len(p.ps.Messages()) == 3 })
		for _, m := range p.ps.Messages()[1:] {
			pl := payloadOf(t, m)
			silent := m.Subscription == subs["2"]
			if pl.Message != "now" || pl.Silent != silent || (pl.Sound == "") != silent || m.Urgency != "normal" || m.TTL != "60" && m.TTL != "59" {
				t.Errorf("immediate notification %+v %+v; silent should be %v", m, pl, silent)
			}
		}
		// The push service answers before the sender acknowledges, so
		// the queue and the counter settle a moment after the messages.
		tu.WaitFor(t, "the sent ones acknowledged, user 3's deferred one left", func() bool {
			return p.queueLen(t) == 1 && testutil.ToFloat64(p.s.push.sent) == 3
		})
	})
}

// TestPushDefer checks deferred notifications: sent when due to a user
// still away, dropped for one who came back, cancelled by tag before.
func TestPushDefer(t *testing.T) {
	pushStates(t, func(t *testing.T, newState func() State) {
		p := newPushEnv(t, newState(), nil, nil, func(c *PushConfig) { c.DeferDelay = 300 * time.Millisecond })
		ctx := context.Background()
		away := p.subscribe(t, "1")
		p.subscribe(t, "2")
		p.subscribe(t, "3")
		q, err := p.s.AddQueue(ctx, Notification{Users: []string{"1", "2", "3"}, Message: "later", Tag: "t1", SubTag: "group", Deferred: true})
		if err != nil || q.Queued != 3 {
			t.Fatalf("AddQueue: %+v %v", q, err)
		}
		// 3's is cancelled by its sub-tag; 2 comes back before it is due.
		code, out := p.call(t, "push/cancel", `{"USER_ID":3,"TAGS":["group"]}`)
		if code != 200 || out["cancelled"] != 1.0 {
			t.Fatalf("push/cancel: %d %v", code, out)
		}
		_, _ = p.e.UserConnected(ctx, "2", "c")
		p.start(t)
		tu.WaitFor(t, "the deferred notifications handled", func() bool { return p.queueLen(t) == 0 })
		msgs := p.ps.Messages()
		if len(msgs) != 1 || msgs[0].Subscription != away {
			t.Fatalf("push service got %+v; want only user 1's", msgs)
		}
		if got := testutil.ToFloat64(p.s.push.skipped); got != 1 {
			t.Errorf("deferred_skipped %v, want 1", got)
		}
	})
}

// TestPushReplaceByTag checks that a notification replaces the waiting
// one with its tag, and that notificationsToCancel cancels.
func TestPushReplaceByTag(t *testing.T) {
	pushStates(t, func(t *testing.T, newState func() State) {
		p := newPushEnv(t, newState(), nil, nil, nil)
		ctx := context.Background()
		p.subscribe(t, "1")
		for i := range 3 {
			if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1"}, Message: fmt.Sprint("v", i), Tag: "chat", Deferred: true}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1"}, Message: "other", Tag: "other", Deferred: true}); err != nil {
			t.Fatal(err)
		}
		if n := p.queueLen(t); n != 2 {
			t.Fatalf("queue holds %d; want the last of tag chat and the other", n)
		}
		if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1"}, Message: "read", Deferred: true,
			AdvancedParams: json.RawMessage(`{"notificationsToCancel":["chat","other"]}`)}); err != nil {
			t.Fatal(err)
		}
		if n := p.queueLen(t); n != 1 {
			t.Fatalf("queue holds %d; want only the last one", n)
		}
	})
}

// TestPushFaults: a 429 with Retry-After is retried no sooner, a 5xx
// with backoff, and a 410 drops the subscription.
func TestPushFaults(t *testing.T) {
	pushStates(t, func(t *testing.T, newState func() State) {
		p := newPushEnv(t, newState(), nil, nil, nil)
		ctx := context.Background()
		slow := p.subscribe(t, "1")
		failing := p.subscribe(t, "2")
		gone := p.subscribe(t, "3")
		p.ps.SetFault(func(sub string, n int) (int, string) {
			switch {
			case sub == slow && n == 1:
				return http.StatusTooManyRequests, "1"
			case sub == failing && n <= 2:
				return http.StatusServiceUnavailable, ""
			}
			return 0, ""
		})
		p.ps.Unsubscribe(gone)
		p.start(t)
		if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1", "2", "3"}, Message: "x"}); err != nil {
			t.Fatal(err)
		}
		tu.WaitFor(t, "every notification handled", func() bool { return p.queueLen(t) == 0 })
		msgs := p.ps.Messages()
		if len(msgs) != 2 || p.ps.Requests(slow) != 2 || p.ps.Requests(failing) != 3 || p.ps.Requests(gone) != 1 {
			t.Fatalf("messages %+v, requests %d %d %d; want one each to 1 and 2 after 2 and 3 requests, 1 to the gone one",
				msgs, p.ps.Requests(slow), p.ps.Requests(failing), p.ps.Requests(gone))
		}
		times := p.ps.RequestTimes(slow)
		if gap := times[1].Sub(times[0]); gap < time.Second {
			t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
		}
		if subs, _ := p.s.Subscriptions(ctx, "3"); len(subs) != 0 {
			t.Errorf("user 3 still has %d subscriptions after a 410", len(subs))
		}
		if subs, _ := p.s.Subscriptions(ctx, "1"); len(subs) != 1 {
			t.Errorf("user 1 has %d subscriptions after a 429; want it kept", len(subs))
		}
		if d, r := testutil.ToFloat64(p.s.push.dropped), testutil.ToFloat64(p.s.push.retried); d != 1 || r != 3 {
			t.Errorf("dropped %v retried %v; want 1 and 3", d, r)
		}
	})
}

// TestPushGivesUp: a notification past its attempts is dropped.
func TestPushGivesUp(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, func(c *PushConfig) { c.MaxAttempts = 3 })
	id := p.subscribe(t, "1")
	p.ps.SetFault(func(string, int) (int, string) { return http.StatusInternalServerError, "" })
	p.start(t)
	if _, err := p.s.AddQueue(context.Background(), Notification{Users: []string{"1"}, Message: "x"}); err != nil {
		t.Fatal(err)
	}
	tu.WaitFor(t, "the notification given up", func() bool { return p.queueLen(t) == 0 })
	if n := p.ps.Requests(id); n != 3 || testutil.ToFloat64(p.s.push.failed) != 1 {
		t.Errorf("%d requests, failed %v; want 3 and 1", n, testutil.ToFloat64(p.s.push.failed))
	}
}

// TestPushRestart: the push service is down while the server restarts;
// the notification is sent once, after it comes back. In memory through
// the snapshot, on Redis through the shared queue.
func TestPushRestart(t *testing.T) {
	pushStates(t, func(t *testing.T, newState func() State) {
		st := newState()
		p := newPushEnv(t, st, nil, nil, nil)
		id := p.subscribe(t, "1")
		p.ps.Stop()
		p.start(t)
		if _, err := p.s.AddQueue(context.Background(), Notification{Users: []string{"1"}, Message: "survives"}); err != nil {
			t.Fatal(err)
		}
		tu.WaitFor(t, "a failed attempt", func() bool { return testutil.ToFloat64(p.s.push.retried) >= 1 })
		p.stop()
		if m, ok := st.(*Memory); ok {
			path := filepath.Join(t.TempDir(), "backend.snapshot")
			if err := m.SaveSnapshot(path); err != nil {
				t.Fatal(err)
			}
			next := NewMemory()
			if loaded, err := next.LoadSnapshot(path); err != nil || !loaded {
				t.Fatalf("load snapshot: %v %v", loaded, err)
			}
			st = next
		} else {
			st = newState()
		}
		p2 := newPushEnv(t, st, p.ps, p.vapid, nil)
		p.ps.Restart()
		p2.start(t)
		tu.WaitFor(t, "the notification after the restart", func() bool { return len(p.ps.Messages()) == 1 })
		tu.WaitFor(t, "the queue empty", func() bool { return p2.queueLen(t) == 0 })
		if msgs := p.ps.Messages(); len(msgs) != 1 || msgs[0].Subscription != id || payloadOf(t, msgs[0]).Message != "survives" {
			t.Fatalf("push service got %+v; want the notification once", msgs)
		}
	})
}

// TestPushStopCutsHangingSend: a stop does not wait for a push service
// that never answers; the notification stays queued and is sent once
// after.
func TestPushStopCutsHangingSend(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, nil)
	id := p.subscribe(t, "1")
	p.ps.SetFault(func(string, int) (int, string) { return pushservice.Hang, "" })
	p.start(t)
	if _, err := p.s.AddQueue(context.Background(), Notification{Users: []string{"1"}, Message: "x"}); err != nil {
		t.Fatal(err)
	}
	tu.WaitFor(t, "the hanging request", func() bool { return p.ps.Requests(id) == 1 })
	p.stop() // returns once the send is cut short
	if n := p.queueLen(t); n != 1 {
		t.Fatalf("queue holds %d after the stop, want the notification", n)
	}
	p.ps.SetFault(nil)
	p.start(t)
	tu.WaitFor(t, "the notification", func() bool { return len(p.ps.Messages()) == 1 && p.queueLen(t) == 0 })
}

// TestPushSharedQueue: two processes on one Redis send every
// notification once between them.
func TestPushSharedQueue(t *testing.T) {
	c := startRedis(t)
	v := newVAPID(t)
	a := newPushEnv(t, NewRedis(c, "test:"), nil, v, nil)
	b := newPushEnv(t, NewRedis(c, "test:"), a.ps, v, nil)
	const users = 40
	for u := range users {
		a.subscribe(t, strconv.Itoa(u))
	}
	a.start(t)
	b.start(t)
	for u := range users {
		if _, err := b.s.AddQueue(context.Background(), Notification{Users: []string{strconv.Itoa(u)}, Message: strconv.Itoa(u)}); err != nil {
			t.Fatal(err)
		}
	}
	tu.WaitFor(t, "every notification sent", func() bool { return a.queueLen(t) == 0 && len(a.ps.Messages()) >= users })
	seen := map[string]int{}
	for _, m := range a.ps.Messages() {
		seen[payloadOf(t, m).Message]++
	}
	for u := range users {
		if n := seen[strconv.Itoa(u)]; n != 1 {
			t.Errorf("notification %d sent %d times", u, n)
		}
	}
	if sa, sb := testutil.ToFloat64(a.s.push.sent), testutil.ToFloat64(b.s.push.sent); sa+sb != users {
		t.Errorf("sent %v + %v, want %d", sa, sb, users)
	}
}

// TestPushUserRate: past a user's rate a notification waits, taking no
// attempt.
func TestPushUserRate(t *testing.T) {
	clk := &clock{time.Now()}
	p := newPushEnv(t, NewMemory(), nil, nil, func(c *PushConfig) { c.UserRate = 1 })
	p.s.o.Now = clk.now
	p.subscribe(t, "1")
	ctx := context.Background()
	for i := range 2 {
		if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1"}, Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.s.pushOnce(ctx); n != 2 || len(p.ps.Messages()) != 1 || p.queueLen(t) != 1 {
		t.Fatalf("claimed %d, sent %d, queue %d; want 2, 1, 1", n, len(p.ps.Messages()), p.queueLen(t))
	}
	clk.t = clk.t.Add(30 * time.Second)
	if n := p.s.pushOnce(ctx); n != 0 {
		t.Fatalf("claimed %d half a minute later; want the second to wait a minute", n)
	}
	clk.t = clk.t.Add(31 * time.Second)
	if n := p.s.pushOnce(ctx); n != 1 || len(p.ps.Messages()) != 2 {
		t.Fatalf("claimed %d, sent %d a minute later; want 1, 2", n, len(p.ps.Messages()))
	}
}

// TestPushBadInput checks the refusals of the push calls.
func TestPushBadInput(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, nil)
	_, sub := p.ps.Subscribe()
	good := func(edit func(*subscriptionJSON)) string {
		var s subscriptionJSON
		s.Endpoint, s.Keys.P256dh, s.Keys.Auth = sub.Endpoint, sub.P256dh, sub.Auth
		edit(&s)
		b, _ := json.Marshal(map[string]any{"userId": 1, "subscription": s})
		return string(b)
	}
	if code, out := p.call(t, "push/subscribe", good(func(*subscriptionJSON) {})); code != 200 || out["id"] == "" {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	for _, c := range []struct {
		path, body, want string
	}{
		{"push/subscribe", good(func(s *subscriptionJSON) { s.Endpoint = "http://push.example/x" }), "endpoint: must be an https URL"},
		{"push/subscribe", good(func(s *subscriptionJSON) { s.Keys.P256dh = "not base64!" }), "p256dh: not base64url"},
		{"push/subscribe", good(func(s *subscriptionJSON) { s.Keys.P256dh = strings.Repeat("A", 87) }), "p256dh: not an uncompressed P-256 point"},
		{"push/subscribe", good(func(s *subscriptionJSON) { s.Keys.Auth = "AAAA" }), "auth: 3 bytes, want 16"},
		{"push/send", `{"USER_ID":1,"MESSAGE":"` + strings.Repeat("x", 4000) + `"}`, "Web Push carries at most 3993"},
		{"push/send", `{"USER_ID":1,"MESSAGE":"x","PARAMS":"` + strings.Repeat("x", 3990) + `"}`, "notification: payload is"},
		{"push/send", `{"USER_ID":1}`, "MESSAGE: empty"},
		{"push/send", `{"USER_ID":1,"MESSAGE":"x","IMPORTANT":"maybe"}`, `a flag must be true, false, "Y" or "N"`},
		{"push/send", `{"USER_ID":1,"MESSAGE":"x","EXPIRY":-1}`, "EXPIRY"},
		{"push/send", `{"USER_ID":1,"MESSAGE":"x","TAG":"` + strings.Repeat("t", 300) + `"}`, "TAG"},
		{"push/cancel", `{"USER_ID":1}`, "give USER_ID and TAGS"},
		{"publish", `{"users":[1],"message":{"module_id":"m","command":"c"},"notifyOffline":{"USER_ID":2,"MESSAGE":"x"}}`, "give no USER_ID"},
	} {
		code, out := p.call(t, c.path, c.body)
		if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), c.want) {
			t.Errorf("%s %.80s: %d %v; want 400 with %q", c.path, c.body, code, out, c.want)
		}
	}
	if code, out := p.call(t, "push/key", `{}`); code != 200 || out["publicKey"] != p.vapid.PublicKey() {
		t.Errorf("push/key: %d %v", code, out)
	}
}

// Without AllowPrivate an endpoint on a private address is refused at
// registration.
func TestPushPrivateEndpoint(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, func(c *PushConfig) { c.AllowPrivate = false })
	_, sub := p.ps.Subscribe()
	if _, err := p.s.Subscribe(context.Background(), "1", "", sub); err == nil || !strings.Contains(err.Error(), "is not public") {
		t.Errorf("subscription on %s: %v, want it refused", sub.Endpoint, err)
	}
}

// TestPublishNotifyOffline: a publish with notifyOffline notifies the
// receivers who are not connected.
func TestPublishNotifyOffline(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, nil)
	ctx := context.Background()
	offline := p.subscribe(t, "1")
	p.subscribe(t, "2")
	watcher := p.subscribe(t, "3")
	if _, err := p.s.Watch(ctx, "3", []string{"room"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, _ = p.e.UserConnected(ctx, "2", "c")
	p.start(t)
	code, out := p.call(t, "publish", `{"users":[1,2],"tags":["room"],"message":{"module_id":"im","command":"message","params":{"text":"hi"}},
		"notifyOffline":{"MESSAGE":"New message","TAG":"im1"}}`)
	if code != 200 {
		t.Fatalf("publish: %d %v", code, out)
	}
	pub := out["published"].([]any)[0].(map[string]any)
	if pub["push"].(map[string]any)["queued"] != 2.0 {
		t.Fatalf("publish: %v; want 2 notifications queued (users 1 and 3)", pub)
	}
	tu.WaitFor(t, "the notifications", func() bool { return len(p.ps.Messages()) == 2 })
	got := map[string]bool{}
	for _, m := range p.ps.Messages() {
		got[m.Subscription] = payloadOf(t, m).Message == "New message"
	}
	if !got[offline] || !got[watcher] {
		t.Errorf("push service got %+v; want users 1 and 3", p.ps.Messages())
	}
}

// TestPushQueueFull: past maxQueue a send is refused with 503.
func TestPushQueueFull(t *testing.T) {
	p := newPushEnv(t, NewMemory(), nil, nil, func(c *PushConfig) { c.MaxQueue = 1 })
	p.subscribe(t, "1")
	p.subscribe(t, "2")
	code, out := p.call(t, "push/send", `{"USER_ID":[1,2],"MESSAGE":"x"}`)
	if code != 503 || !strings.Contains(fmt.Sprint(out["error"]), "queue is full") {
		t.Errorf("push/send past the bound: %d %v", code, out)
	}
}

// TestPushRedisCluster runs the queue's scripts on a Redis Cluster of
// three masters, under the hash-tagged prefix FromConfig gives there:
// every script's keys are in one slot.
func TestPushRedisCluster(t *testing.T) {
	cli := redistest.Binary(t, "redis-cli")
	var addrs []string
	for range 3 {
		r := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
		addrs = append(addrs, r.Addr())
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	tu.WaitFor(t, "the cluster serving every slot", func() bool {
		return c.Do(ctx, c.B().Set().Key("probe").Value("1").Build()).Error() == nil
	})
	p := newPushEnv(t, NewRedis(c, "{pushpull}:backend:"), nil, nil, nil)
	id := p.subscribe(t, "1")
	for _, n := range []Notification{
		{Users: []string{"1"}, Message: "old", Tag: "chat", SubTag: "im", Deferred: true},
		{Users: []string{"1"}, Message: "new", Tag: "chat", SubTag: "im", Deferred: true},
		{Users: []string{"1"}, Message: "other", Tag: "other", Deferred: true},
	} {
		if _, err := p.s.AddQueue(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.queueLen(t); n != 2 {
		t.Fatalf("queue holds %d, want 2 (the newer chat one replaced the older)", n)
	}
	if n, err := p.s.CancelPush(ctx, []string{"1"}, []string{"im"}); err != nil || n != 1 {
		t.Fatalf("cancel by sub-tag: %d %v, want 1", n, err)
	}
	if _, err := p.s.AddQueue(ctx, Notification{Users: []string{"1"}, Message: "now", Tag: "now"}); err != nil {
		t.Fatal(err)
	}
	p.start(t)
	tu.WaitFor(t, "the notification sent", func() bool { return len(p.ps.Messages()) == 1 })
	if m := p.ps.Messages()[0]; m.Subscription != id || payloadOf(t, m).Message != "now" {
		t.Errorf("push service got %+v", m)
	}
	tu.WaitFor(t, "only the deferred one left", func() bool { return p.queueLen(t) == 1 })
}
