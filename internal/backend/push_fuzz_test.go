package backend

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/protocol"
)

// FuzzPushHTTP sends arbitrary bodies to the Web Push calls: each is
// answered with a documented status and a JSON body, never a panic.
func FuzzPushHTTP(f *testing.F) {
	paths := []string{"push/send", "push/subscribe", "push/unsubscribe", "push/cancel", "push/key", "publish"}
	for i, body := range []string{
		`{"USER_ID":[1,"2"],"SKIP_USERS":[2],"MESSAGE":"hi","TAG":"t","SUB_TAG":"s","BADGE":3,"PARAMS":{"a":1},
		  "ADVANCED_PARAMS":{"notificationsToCancel":["t"]},"EXPIRY":60,"SOUND":"x","APP_ID":"web","IMPORTANT":"Y",
		  "SEND_IMMEDIATELY":"N","SEND_DEFERRED":true}`,
		`{"userId":1,"appId":"web","subscription":{"endpoint":"https://push.example/x","expirationTime":null,
		  "keys":{"p256dh":"BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU","auth":"MDEyMzQ1Njc4OWFiY2RlZg"}}}`,
		`{"userId":1,"endpoint":"https://push.example/x"}`,
		`{"USER_ID":1,"TAGS":["t"]}`,
		`{}`,
		`{"users":[1],"message":{"module_id":"m","command":"c"},"notifyOffline":{"MESSAGE":"x","TAG":"t"}}`,
		`{"USER_ID":{"a":1},"BADGE":-1,"EXPIRY":1e99}`,
	} {
		f.Add(uint8(i), body)
	}
	v := newVAPID(f)
	signer, _ := protocol.NewSigner("key", "sha1")
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), hub.New(), zero{}, "test")
	s := New(Options{
		Engine: e, State: NewMemory(), Signer: signer, Key: "bk", Version: 3,
		WriteTTL: time.Hour, StorageTTL: 2 * time.Hour, WatchTTL: time.Minute,
		Push: &PushConfig{Sender: &webpush.Sender{VAPID: v}, MaxQueue: 1000, AllowPrivate: true},
	})
	allowed := map[int]bool{200: true, 400: true, 503: true}
	f.Fuzz(func(t *testing.T, path uint8, body string) {
		req := httptest.NewRequest(http.MethodPost, "/pushpull/"+paths[int(path)%len(paths)], strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer bk")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("content type %q", ct)
		}
	})
}
