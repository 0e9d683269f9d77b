package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// VAPID identifies the application server to push services (RFC 8292):
// a P-256 key pair, whose public half the browser subscribed with
// (applicationServerKey), and a contact, a mailto: or https: URI.
type VAPID struct {
	key     *ecdsa.PrivateKey
	public  string // base64url of the uncompressed point
	subject string
}

// GenerateVAPID returns a new key pair, base64url: the private key as its
// 32-byte scalar, the public one as its 65-byte uncompressed point (the
// form browsers take as applicationServerKey).
func GenerateVAPID() (private, public string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	d, err := k.Bytes()
	if err != nil {
		return "", "", err
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		return "", "", err
	}
	return b64.EncodeToString(d), b64.EncodeToString(pub), nil
}

// NewVAPID reads a key pair as GenerateVAPID writes it; public may be ""
// (it follows from the private key) and must otherwise match it. subject
// must be a mailto: or https: URI.
func NewVAPID(private, public, subject string) (*VAPID, error) {
	d, err := DecodeBase64URL(private)
	if err != nil {
		return nil, fmt.Errorf("VAPID private key: %v", err)
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		return nil, errors.New("VAPID private key: not a P-256 private key (want the 32-byte scalar, base64url)")
	}
	pub, _ := k.PublicKey.Bytes() // a parsed key always encodes
	derived := b64.EncodeToString(pub)
	if public != "" && strings.TrimRight(public, "=") != derived {
		return nil, errors.New("VAPID public key: not the private key's (leave it out, or give the one generated with it)")
	}
	u, err := url.Parse(subject)
	if err != nil || (u.Scheme != "mailto" && u.Scheme != "https") || (u.Opaque == "" && u.Host == "") {
		return nil, fmt.Errorf("VAPID subject %q: want a mailto: or https: URI", subject)
	}
	return &VAPID{key: k, public: derived, subject: subject}, nil
}

// PublicKey returns the public key, base64url, for applicationServerKey.
func (v *VAPID) PublicKey() string { return v.public }

// TokenTTL is how long a VAPID token is valid (RFC 8292 allows 24 h).
const TokenTTL = 12 * time.Hour

// Authorization returns the Authorization header value for a request to
// endpoint: "vapid t=<ES256 JWT>, k=<public key>", the token's audience
// the endpoint's origin and its expiry now + TokenTTL.
func (v *VAPID) Authorization(endpoint *url.URL, now time.Time) (string, error) {
	claims, _ := json.Marshal(map[string]any{
		"aud": endpoint.Scheme + "://" + endpoint.Host,
		"exp": now.Add(TokenTTL).Unix(),
		"sub": v.subject,
	})
	signed := b64.EncodeToString([]byte(`{"typ":"JWT","alg":"ES256"}`)) + "." + b64.EncodeToString(claims)
	h := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, v.key, h[:])
	if err != nil {
		return "", err
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return "vapid t=" + signed + "." + b64.EncodeToString(sig[:]) + ", k=" + v.public, nil
}
