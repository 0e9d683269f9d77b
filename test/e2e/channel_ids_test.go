package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"testing"
)

// sign returns the hex HMAC-SHA1 of id with key, the signature the PHP
// module appends to channel ids.
func sign(key, id string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// signed returns id as a client presents it: "<id>.<signature>" with a key,
// id itself without one.
func signed(key, id string) string {
	if key == "" {
		return id
	}
	return id + "." + sign(key, id)
}

// newChannelID returns a fresh channel id: 32 lowercase hex characters.
func newChannelID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
