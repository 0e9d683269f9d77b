// Package webpush sends notifications through the Web Push protocol:
// RFC 8030 delivery to a browser's push service, the payload encrypted
// for the subscription as RFC 8291 (aes128gcm, RFC 8188) says, and the
// sender identified by a VAPID token (RFC 8292). It has no state: the
// backend keeps subscriptions and the queue.
package webpush

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxEndpointLen bounds a subscription's endpoint URL.
const MaxEndpointLen = 2048

// Subscription is what a browser's PushManager.subscribe() gives: the
// push service's endpoint URL and the receiver's keys, base64url as
// PushSubscription.toJSON() writes them.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh"`
	Auth     string `json:"auth"`
}

// Keys are a subscription's decoded keys.
type Keys struct {
	Endpoint *url.URL
	Public   *ecdh.PublicKey // the user agent's P-256 key (p256dh)
	Auth     []byte          // the 16-byte authentication secret
}

// Parse checks s and decodes its keys: the endpoint must be an absolute
// https URL, p256dh an uncompressed point of P-256 (65 bytes), auth 16
// bytes, both base64url (padded or not).
func (s Subscription) Parse() (*Keys, error) {
	if s.Endpoint == "" {
		return nil, errors.New("endpoint: missing")
	}
	if len(s.Endpoint) > MaxEndpointLen {
		return nil, fmt.Errorf("endpoint: longer than %d bytes", MaxEndpointLen)
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %v", err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint: must be an https URL, not %q", u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, errors.New("endpoint: must be https://host/path with no user or fragment")
	}
	pub, err := decodeKey("p256dh", s.P256dh, 65)
	if err != nil {
		return nil, err
	}
	if pub[0] != 4 {
		return nil, errors.New("p256dh: not an uncompressed P-256 point (first byte must be 0x04)")
	}
	k, err := ecdh.P256().NewPublicKey(pub)
	if err != nil {
		return nil, errors.New("p256dh: not a point of P-256")
	}
	auth, err := decodeKey("auth", s.Auth, 16)
	if err != nil {
		return nil, err
	}
	return &Keys{Endpoint: u, Public: k, Auth: auth}, nil
}

// decodeKey decodes base64url field name, which must give n bytes.
func decodeKey(name, s string, n int) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%s: missing", name)
	}
	b, err := DecodeBase64URL(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("%s: %d bytes, want %d", name, len(b), n)
	}
	return b, nil
}

// DecodeBase64URL decodes base64url with or without padding.
func DecodeBase64URL(s string) ([]byte, error) {
	if strings.ContainsAny(s, "+/") {
		return nil, errors.New("not base64url: '+' or '/' (use '-' and '_')")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("not base64url: " + strings.TrimPrefix(err.Error(), "illegal base64 data "))
	}
	return b, nil
}

var b64 = base64.RawURLEncoding
