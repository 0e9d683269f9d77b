package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// JWT errors. Each names what failed, for logs; clients only see 401.
var (
	ErrJWTMalformed = errors.New("jwt: malformed token")
	ErrJWTAlg       = errors.New("jwt: algorithm is not HS256")
	ErrJWTSignature = errors.New("jwt: bad signature")
	ErrJWTExpired   = errors.New("jwt: expired")
	ErrJWTNotYet    = errors.New("jwt: issued in the future")
)

// JWTSkew is the clock difference tolerated between the backend that
// issued a token and this server.
const JWTSkew = 60 * time.Second

// maxJWTLen bounds what is decoded: the backend's tokens are a few
// hundred bytes, even with many channels.
const maxJWTLen = 16 << 10

// Claims are the claims of a protocol-5 connection token, as the PHP
// module (auth/jwt.php) issues them.
type Claims struct {
	Issuer   string   // iss: the installation's host id
	Subject  string   // sub: the user id, "" for none
	Channels []string // chan: unsigned channel ids, shared first
	IssuedAt time.Time
	Expires  time.Time
}

// VerifyJWT checks an HS256 token signed with key and returns its claims:
// the header must name HS256, the signature must match in constant time,
// exp must lie ahead and iat not ahead, each with JWTSkew of tolerance.
// Tokens without exp are refused: the backend always sets one.
func VerifyJWT(token string, key []byte, now time.Time) (Claims, error) {
	if len(token) > maxJWTLen {
		return Claims{}, ErrJWTMalformed
	}
	head, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return Claims{}, ErrJWTMalformed
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(head, &h); err != nil {
		return Claims{}, err
	}
	if h.Alg != "HS256" {
		return Claims{}, ErrJWTAlg
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Claims{}, ErrJWTMalformed
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(token[:len(head)+1+len(payload)]))
	if !hmac.Equal(mac.Sum(nil), got) {
		return Claims{}, ErrJWTSignature
	}
	var raw struct {
		Iss  json.RawMessage `json:"iss"`
		Sub  json.RawMessage `json:"sub"`
		Chan json.RawMessage `json:"chan"`
		Iat  *float64        `json:"iat"`
		Exp  *float64        `json:"exp"`
	}
	if err := decodeSegment(payload, &raw); err != nil {
		return Claims{}, err
	}
	if raw.Exp == nil {
		return Claims{}, ErrJWTExpired
	}
	c := Claims{
		Issuer:   scalar(raw.Iss),
		Subject:  scalar(raw.Sub),
		Expires:  unixTime(*raw.Exp),
		Channels: channelClaim(raw.Chan),
	}
	if !now.Before(c.Expires.Add(JWTSkew)) {
		return Claims{}, ErrJWTExpired
	}
	if raw.Iat != nil {
		c.IssuedAt = unixTime(*raw.Iat)
		if c.IssuedAt.After(now.Add(JWTSkew)) {
			return Claims{}, ErrJWTNotYet
		}
	}
	return c, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return ErrJWTMalformed
	}
	if err := json.Unmarshal(b, v); err != nil {
		return ErrJWTMalformed
	}
	return nil
}

func unixTime(f float64) time.Time {
	if f > 1e12 || f < -1e12 {
		f = 1e12 // out of any sensible range: far future or past alike expire or refuse
	}
	return time.Unix(int64(f), 0)
}

// scalar reads a claim the backend writes as a string or a number.
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
	}
	return ""
}

// channelClaim reads chan: a comma-separated string (the backend's form)
// or a list of strings.
func channelClaim(raw json.RawMessage) []string {
	var list []string
	var s string
	switch {
	case json.Unmarshal(raw, &s) == nil:
		list = strings.Split(s, ",")
	case json.Unmarshal(raw, &list) == nil:
	default:
		return nil
	}
	out := list[:0]
	for _, c := range list {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// SignJWT returns an HS256 token of claims signed with key: for tests and
// tools standing in for the backend.
func SignJWT(claims map[string]any, key []byte) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`))
	body, _ := json.Marshal(claims) // maps of plain values always marshal
	s := head + "." + base64.RawURLEncoding.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
