package webpush_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil/pushservice"
	"github.com/pushpull/pushpull/internal/webpush"
)

func validSub() webpush.Subscription {
	// A point of P-256 (the generator) and 16 bytes.
	return webpush.Subscription{
		Endpoint: "https://push.example.net/send/abc",
		P256dh:   "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
		Auth:     base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef")),
	}
}

func TestParseSubscription(t *testing.T) {
	if _, err := validSub().Parse(); err != nil {
		t.Fatalf("valid subscription refused: %v", err)
	}
	padded := validSub()
	padded.Auth += "=="
	if _, err := padded.Parse(); err != nil {
		t.Fatalf("padded base64url refused: %v", err)
	}
	notOnCurve := validSub()
	raw, _ := webpush.DecodeBase64URL(notOnCurve.P256dh)
	raw[64] ^= 1
	notOnCurve.P256dh = base64.RawURLEncoding.EncodeToString(raw)
	compressed := validSub()
	compressed.P256dh = base64.RawURLEncoding.EncodeToString(append([]byte{2}, raw[1:33]...))
	for _, c := range []struct {
		name, want string
		edit       func(*webpush.Subscription)
	}{
		{"http endpoint", "endpoint: must be an https URL", func(s *webpush.Subscription) { s.Endpoint = "http://push.example.net/x" }},
		{"relative endpoint", "endpoint: must be an https URL", func(s *webpush.Subscription) { s.Endpoint = "/x" }},
		{"no host", "endpoint: must be https://host/path", func(s *webpush.Subscription) { s.Endpoint = "https:///x" }},
		{"long endpoint", "endpoint: longer than", func(s *webpush.Subscription) { s.Endpoint = "https://a/" + strings.Repeat("x", 3000) }},
		{"bad base64", "p256dh: not base64url", func(s *webpush.Subscription) { s.P256dh = "!!!" }},
		{"std base64", "p256dh: not base64url: '+' or '/'", func(s *webpush.Subscription) { s.P256dh = strings.ReplaceAll(s.P256dh, "-", "+") }},
		{"short key", "p256dh: 33 bytes, want 65", func(s *webpush.Subscription) { *s = compressed }},
		{"not on curve", "p256dh: not a point of P-256", func(s *webpush.Subscription) { *s = notOnCurve }},
		{"short auth", "auth: 4 bytes, want 16", func(s *webpush.Subscription) { s.Auth = "AAAAAA" }},
		{"no auth", "auth: missing", func(s *webpush.Subscription) { s.Auth = "" }},
	} {
		s := validSub()
		c.edit(&s)
		_, err := s.Parse()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func FuzzParseSubscription(f *testing.F) {
	s := validSub()
	f.Add(s.Endpoint, s.P256dh, s.Auth)
	f.Add("https://x/", "BA", "AAAA==")
	f.Fuzz(func(t *testing.T, endpoint, p256dh, auth string) {
		k, err := webpush.Subscription{Endpoint: endpoint, P256dh: p256dh, Auth: auth}.Parse()
		if err != nil {
			return
		}
		if k.Endpoint.Scheme != "https" || len(k.Auth) != 16 || len(k.Public.Bytes()) != 65 {
			t.Fatalf("accepted %q %q %q as %+v", endpoint, p256dh, auth, k)
		}
		if _, err := webpush.Encrypt(k, []byte("x")); err != nil {
			t.Fatalf("accepted subscription cannot be encrypted for: %v", err)
		}
	})
}

func TestTopic(t *testing.T) {
	for _, tag := range []string{"a", strings.Repeat("IM_MESS_", 32), "ünïcode tag"} {
		topic := webpush.Topic(tag)
		if len(topic) != 32 || strings.ContainsAny(topic, "+/=") {
			t.Errorf("Topic(%q) = %q: want 32 base64url characters", tag, topic)
		}
		if webpush.Topic(tag) != topic || webpush.Topic(tag+"x") == topic {
			t.Errorf("Topic(%q) is not a function of the tag alone", tag)
		}
	}
	if webpush.Topic("") != "" {
		t.Error(`Topic("") is not ""`)
	}
}

func TestVAPIDKeys(t *testing.T) {
	priv, pub, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	v, err := webpush.NewVAPID(priv, pub, "mailto:ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if v.PublicKey() != pub {
		t.Fatalf("public key %q, want %q", v.PublicKey(), pub)
	}
	_, other, _ := webpush.GenerateVAPID()
	if _, err := webpush.NewVAPID(priv, other, "mailto:a@b"); err == nil || !strings.Contains(err.Error(), "not the private key's") {
		t.Errorf("mismatched public key: %v", err)
	}
	if _, err := webpush.NewVAPID(priv, "", "ops@example.com"); err == nil || !strings.Contains(err.Error(), "mailto: or https:") {
		t.Errorf("subject without a scheme: %v", err)
	}
	if _, err := webpush.NewVAPID("AAAA", "", "mailto:a@b"); err == nil {
		t.Error("a 3-byte private key was taken")
	}
}

func TestPayloadLimit(t *testing.T) {
	k, err := validSub().Parse()
	if err != nil {
		t.Fatal(err)
	}
	body, err := webpush.Encrypt(k, make([]byte, webpush.MaxPayload))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != webpush.MaxBody {
		t.Fatalf("the largest payload encrypts to %d bytes, want %d", len(body), webpush.MaxBody)
	}
	_, err = webpush.Encrypt(k, make([]byte, webpush.MaxPayload+1))
	var tooLarge webpush.PayloadTooLarge
	if !errors.As(err, &tooLarge) || tooLarge.Size != webpush.MaxPayload+1 {
		t.Fatalf("payload of %d bytes: %v", webpush.MaxPayload+1, err)
	}
}

// TestSend sends to a local push service, which checks the VAPID token
// and decrypts with http_ece.
func TestSend(t *testing.T) {
	priv, pub, _ := webpush.GenerateVAPID()
	v, err := webpush.NewVAPID(priv, "", "https://app.example.com/contact")
	if err != nil {
		t.Fatal(err)
	}
	ps := pushservice.Start(t, pub)
	id, sub := ps.Subscribe()
	k, err := sub.Parse()
	if err != nil {
		t.Fatal(err)
	}
	s := &webpush.Sender{VAPID: v, Client: ps.Client()}
	for _, payload := range []string{"", `{"message":"hi ✓"}`, strings.Repeat("z", webpush.MaxPayload)} {
		res, err := s.Send(context.Background(), k, []byte(payload), webpush.Options{TTL: 90 * time.Second, Urgency: webpush.UrgencyHigh, Topic: webpush.Topic("t")})
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("send %d bytes: %v %v %v", len(payload), res, err, ps.Errors())
		}
		msgs := ps.Messages()
		m := msgs[len(msgs)-1]
		if string(m.Payload) != payload || m.Subscription != id || m.TTL != "90" || m.Urgency != "high" || m.Topic != webpush.Topic("t") {
			t.Fatalf("push service got %+v (%d bytes), want payload of %d bytes, TTL 90, high, topic", m, len(m.Payload), len(payload))
		}
	}
	ps.Unsubscribe(id)
	res, err := s.Send(context.Background(), k, []byte("x"), webpush.Options{})
	if err != nil || !res.Gone() {
		t.Fatalf("send to a gone subscription: %v %v", res, err)
	}
	ps.SetFault(func(string, int) (int, string) { return http.StatusTooManyRequests, "7" })
	res, err = s.Send(context.Background(), k, []byte("x"), webpush.Options{})
	if err != nil || !res.Retryable() || res.RetryAfter != 7*time.Second {
		t.Fatalf("429: %+v %v", res, err)
	}
}

// A client of NewClient(false) does not connect to a push service on a
// private address; NewClient(true) does.
func TestPrivateEndpoints(t *testing.T) {
	priv, pub, _ := webpush.GenerateVAPID()
	v, _ := webpush.NewVAPID(priv, pub, "mailto:a@b")
	ps := pushservice.Start(t, pub)
	_, sub := ps.Subscribe()
	k, err := sub.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if err := webpush.CheckHost(k); !webpush.IsPrivateAddress(err) {
		t.Errorf("CheckHost(%s): %v, want a private address", k.Endpoint.Host, err)
	}
	_, err = (&webpush.Sender{VAPID: v}).Send(context.Background(), k, []byte("x"), webpush.Options{})
	if !webpush.IsPrivateAddress(err) {
		t.Fatalf("send to %s: %v, want a private address refused", k.Endpoint.Host, err)
	}
	if len(ps.Messages()) != 0 || ps.Requests("") != 0 {
		t.Fatal("the push service got a request")
	}
	for _, ip := range []string{"10.1.2.3", "192.168.0.1", "::1", "fe80::1", "100.64.1.1", "0.0.0.0", "::ffff:127.0.0.1"} {
		if webpush.Public(netip.MustParseAddr(ip)) {
			t.Errorf("%s counted as public", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "2001:4860:4860::8888"} {
		if !webpush.Public(netip.MustParseAddr(ip)) {
			t.Errorf("%s counted as private", ip)
		}
	}
}

// FuzzNewVAPID reads arbitrary key pairs and subjects: refused with an
// error, or a key that signs.
func FuzzNewVAPID(f *testing.F) {
	priv, pub, _ := webpush.GenerateVAPID()
	f.Add(priv, pub, "mailto:a@b")
	f.Add(priv, "", "https://example.com/")
	f.Add("AAAA", "BA", "mailto:")
	f.Fuzz(func(t *testing.T, private, public, subject string) {
		v, err := webpush.NewVAPID(private, public, subject)
		if err != nil {
			return
		}
		u, _ := url.Parse("https://push.example/x")
		if _, err := v.Authorization(u, time.Now()); err != nil {
			t.Fatalf("accepted key cannot sign: %v", err)
		}
	})
}
