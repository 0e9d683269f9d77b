package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
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

func webPushRestart(t *testing.T, storage map[string]any) {
	priv, pub, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	ps := pushservice.Start(t, pub)
	// The server trusts the local push service's certificate alone.
	t.Setenv("SSL_CERT_FILE", ps.CertFile(t.TempDir()))
	cfg := map[string]any{
		"servers": []any{map[string]any{"name": "all", "routes": map[string]any{
			"sub": []any{"/bitrix/sub/", "/bitrix/subws/"}, "pub": "/bitrix/pub/", "backend": "/pushpull/", "metrics": "/metrics",
		}}},
		"security": map[string]any{"key": "e2e-secret-key", "backendKey": backendKey},
		"storage":  storage,
		"webPush":  map[string]any{"vapidPrivateKey": priv, "vapidPublicKey": pub, "subject": "mailto:ops@example.com"},
	}
	first := startServer(t, cfg)
	base := "http://127.0.0.1:" + strconv.Itoa(first.Ports[0])
	var key struct{ PublicKey string }
	backendCall(t, base+"/pushpull/", "push/key", map[string]any{}, &key)
	if key.PublicKey != pub {
		t.Fatalf("push/key answered %q, want %q", key.PublicKey, pub)
	}
	id, sub := ps.Subscribe()
	backendCall(t, base+"/pushpull/", "push/subscribe", map[string]any{"userId": 7, "appId": "web", "subscription": map[string]any{
		"endpoint": sub.Endpoint, "expirationTime": nil, "keys": map[string]string{"p256dh": sub.P256dh, "auth": sub.Auth},
	}}, nil)
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
