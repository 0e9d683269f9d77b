package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/pushservice"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/internal/webpush"
)

// metricValue reads one unlabelled series of the server's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	body := request(t, http.MethodGet, base+"/metrics", "", nil).Body
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// A notification queued while the push service is down is sent once,
// after it comes back, though the server restarted meanwhile: kept by
// the snapshot on the memory store, in the shared queue on Redis.
func TestWebPushSurvivesRestart(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		webPushRestart(t, map[string]any{"snapshot": filepath.Join(t.TempDir(), "history.snapshot")})
	})
	t.Run("redis", func(t *testing.T) {
		r := redistest.Start(t)
		webPushRestart(t, map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port})
	})
}

// webPushConfig returns a server config with Web Push on, sending to a
// new local push service, which the server (started after this) trusts.
func webPushConfig(t *testing.T, storage map[string]any) (map[string]any, *pushservice.Service, string) {
	priv, pub, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	ps := pushservice.Start(t, pub)
	// The server trusts the local push service's certificate alone.
	t.Setenv("SSL_CERT_FILE", ps.CertFile(t.TempDir()))
	return map[string]any{
		"servers": []any{map[string]any{"name": "all", "routes": map[string]any{
			"sub": []any{"/bitrix/sub/", "/bitrix/subws/"}, "pub": "/bitrix/pub/", "backend": "/pushpull/", "metrics": "/metrics",
		}}},
		"security": map[string]any{"key": "e2e-secret-key", "backendKey": backendKey},
		"storage":  storage,
		"webPush": map[string]any{"vapidPrivateKey": priv, "vapidPublicKey": pub, "subject": "mailto:ops@example.com",
			"allowPrivateEndpoints": true}, // the push service is on loopback
	}, ps, pub
}

func pushSubscribe(t *testing.T, base string, user int, sub webpush.Subscription) {
	t.Helper()
	backendCall(t, base+"/pushpull/", "push/subscribe", map[string]any{"userId": user, "appId": "web", "subscription": map[string]any{
		"endpoint": sub.Endpoint, "expirationTime": nil, "keys": map[string]string{"p256dh": sub.P256dh, "auth": sub.Auth},
	}}, nil)
}

// On Redis a user connected to one process is online for push/send on
// another: skipped, while a user connected nowhere is notified, once.
func TestWebPushPresenceAcrossProcesses(t *testing.T) {
	r := redistest.Start(t)
	cfg, ps, _ := webPushConfig(t, map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port})
	a := startServer(t, cfg)
	b := startServer(t, cfg)
	baseA := "http://127.0.0.1:" + strconv.Itoa(a.Ports[0])
	baseB := "http://127.0.0.1:" + strconv.Itoa(b.Ports[0])
	var given struct {
		Channels map[string]struct{ ID string } `json:"channels"`
	}
	backendCall(t, baseA+"/pushpull/", "config", map[string]any{"userId": 9}, &given)
	_, online := ps.Subscribe()
	offlineID, offline := ps.Subscribe()
	pushSubscribe(t, baseA, 9, online)
	pushSubscribe(t, baseB, 10, offline)
	_, wsURL := subQuery(a, given.Channels["private"].ID, "")
	mustDialWS(t, wsURL)
	private, _, _ := strings.Cut(given.Channels["private"].ID, ".")
	waitOnline(t, b, private, true)

	var res struct {
		Queued int
		Users  map[string]struct{ Decision, Reason string }
	}
	backendCall(t, baseB+"/pushpull/", "push/send", map[string]any{"USER_ID": []int{9, 10}, "MESSAGE": "hi"}, &res)
	if res.Queued != 1 || res.Users["9"].Decision != "skip" || res.Users["9"].Reason != "online" || res.Users["10"].Decision != "send" {
		t.Fatalf("push/send on the other process: %+v; want 9 skipped as online, 10 sent to", res)
	}
	testutil.WaitFor(t, "the notification to user 10", func() bool {
		return metricValue(t, baseA, "pushpull_webpush_sent_total")+metricValue(t, baseB, "pushpull_webpush_sent_total") == 1
	})
	if msgs := ps.Messages(); len(msgs) != 1 || msgs[0].Subscription != offlineID {
		t.Fatalf("push service got %+v; want user 10's notification once", msgs)
	}
}

func webPushRestart(t *testing.T, storage map[string]any) {
	cfg, ps, pub := webPushConfig(t, storage)
	first := startServer(t, cfg)
	base := "http://127.0.0.1:" + strconv.Itoa(first.Ports[0])
	var key struct{ PublicKey string }
	backendCall(t, base+"/pushpull/", "push/key", map[string]any{}, &key)
	if key.PublicKey != pub {
		t.Fatalf("push/key answered %q, want %q", key.PublicKey, pub)
	}
	id, sub := ps.Subscribe()
	pushSubscribe(t, base, 7, sub)
	ps.Stop()
	var queued struct{ Queued int }
	backendCall(t, base+"/pushpull/", "push/send", map[string]any{"USER_ID": 7, "MESSAGE": "while you were away", "TAG": "im:1", "APP_ID": "web"}, &queued)
	if queued.Queued != 1 {
		t.Fatalf("push/send queued %d, want 1", queued.Queued)
	}
	testutil.WaitFor(t, "a failed attempt", func() bool { return metricValue(t, base, "pushpull_webpush_retries_total") >= 1 })
	first.ExitExpected = true
	first.stop(t)

	second := startServer(t, cfg)
	base = "http://127.0.0.1:" + strconv.Itoa(second.Ports[0])
	ps.Restart()
	testutil.WaitFor(t, "the notification sent", func() bool { return metricValue(t, base, "pushpull_webpush_sent_total") == 1 })
	if n := metricValue(t, base, "pushpull_webpush_queue_length"); n != 0 {
		t.Errorf("queue length %v after the send, want 0", n)
	}
	msgs := ps.Messages()
	if len(msgs) != 1 || msgs[0].Subscription != id {
		t.Fatalf("push service got %d messages %+v; want the notification once", len(msgs), msgs)
	}
	var p struct{ Message, Tag string }
	if err := json.Unmarshal(msgs[0].Payload, &p); err != nil || p.Message != "while you were away" || p.Tag != "im:1" || msgs[0].Topic != webpush.Topic("im:1") {
		t.Errorf("payload %q topic %q: %v", msgs[0].Payload, msgs[0].Topic, err)
	}
}
