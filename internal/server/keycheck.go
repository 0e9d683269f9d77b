package server

import (
	"crypto/subtle"
	"strings"

	"github.com/pushpull/pushpull/protocol"
)

// KeyCheck is how a key an operator pasted compares with the security key
// in force (the personal mode's; the shared mode's clients have keys of
// their own).
type KeyCheck struct {
	Configured bool `json:"configured"` // the server has a key at all
	Matches    bool `json:"matches"`    // the pasted key is the one in force
	// Previous: it is the key a reload replaced, still accepted until the
	// grace period ends (security.keyGracePeriod).
	Previous bool `json:"previous"`
	Trimmed  bool `json:"trimmed"` // spaces around the pasted key were dropped
}

// keyCheckValue is what both keys sign for the comparison: neither key is
// compared, kept or logged, only their HMACs of it.
const keyCheckValue = "pushpull key check"

// CheckKey compares key with the security key in force, by their HMACs of
// a fixed value with the configured algorithm, in constant time.
func (s *Server) CheckKey(key string) KeyCheck {
	t := s.live.Load().personal
	trimmed := strings.TrimSpace(key)
	out := KeyCheck{Configured: t.signer.Enabled(), Trimmed: trimmed != key}
	if trimmed == "" || !out.Configured {
		return out
	}
	cand, err := protocol.NewSigner(trimmed, s.cfg.Security.Algo)
	if err != nil {
		return out
	}
	got := []byte(cand.Sign(keyCheckValue))
	out.Matches = subtle.ConstantTimeCompare(got, []byte(t.signer.Sign(keyCheckValue))) == 1
	if prev, _ := t.signer.Previous(); prev != nil && !out.Matches {
		out.Previous = subtle.ConstantTimeCompare(got, []byte(prev.Sign(keyCheckValue))) == 1
	}
	return out
}
