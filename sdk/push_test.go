package sdk_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/sdk"
)

func newSubscription(t *testing.T) sdk.PushSubscription {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	var s sdk.PushSubscription
	s.Endpoint = "https://push.example.invalid/send/" + base64.RawURLEncoding.EncodeToString(auth)
	s.Keys.P256dh = base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	s.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	return s
}

// The Web Push calls, through the SDK: the key, registering and removing
// subscriptions, decisions, cancellation, and notifyOffline on a publish.
func TestPush(t *testing.T) {
	priv, pub, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := startServer(securityKey, backendKey, func(c *config.Config) {
		c.WebPush.VAPIDPrivateKey, c.WebPush.Subject = priv, "mailto:ops@example.com"
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ctx := testContext(t)
	c := sdk.New(ts.BackendURL, backendKey)
	if key, err := c.PushKey(ctx); err != nil || key != pub {
		t.Fatalf("PushKey: %q %v, want %q", key, err, pub)
	}
	sub := newSubscription(t)
	id, err := c.PushSubscribe(ctx, "1", "web", sub)
	if err != nil || len(id) != 32 {
		t.Fatalf("PushSubscribe: %q %v", id, err)
	}
	bad := sub
	bad.Endpoint = "http://push.example.invalid/x"
	if _, err := c.PushSubscribe(ctx, "1", "web", bad); sdk.StatusCode(err) != http.StatusBadRequest {
		t.Errorf("an http endpoint: %v, want 400", err)
	}
	sent, err := c.PushSend(ctx, sdk.Notification{Users: []string{"1", "2"}, Message: "later", Tag: "t", SendDeferred: true, AppID: "web"})
	if err != nil || sent.Queued != 1 || sent.Users["1"].Decision != "defer" || sent.Users["2"].Decision != "skip" {
		t.Fatalf("PushSend: %+v %v; want 1 deferred, 2 skipped", sent, err)
	}
	if n, err := c.PushCancel(ctx, []string{"1"}, []string{"t"}); err != nil || n != 1 {
		t.Fatalf("PushCancel: %d %v, want 1", n, err)
	}
	p, err := c.Publish(ctx, sdk.Publish{Users: []string{"1"}, Message: sdk.Message{ModuleID: "im", Command: "m"},
		NotifyOffline: &sdk.Notification{Message: "hi", SendDeferred: true}})
	if err != nil || p.Push == nil || p.Push.Queued != 1 {
		t.Fatalf("Publish with NotifyOffline: %+v %v; want 1 queued", p, err)
	}
	if ok, err := c.PushUnsubscribe(ctx, "1", sub.Endpoint); err != nil || !ok {
		t.Fatalf("PushUnsubscribe: %v %v", ok, err)
	}
	if ok, _ := c.PushUnsubscribe(ctx, "1", sub.Endpoint); ok {
		t.Error("PushUnsubscribe removed a subscription twice")
	}
}
