package protocol

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ChannelIDLen is the length of a channel id: 32 ASCII letters or digits.
const ChannelIDLen = 32

// MaxChannels caps how many channels one subscribe request may name.
const MaxChannels = 100

// Subscribe errors, with the texts the original server answers.
var (
	//lint:ignore ST1005 clients and backends see these texts verbatim
	ErrNoChannel = errors.New("No channel id provided.")
	//lint:ignore ST1005 clients and backends see these texts verbatim
	ErrBadChannel = errors.New("Channel id is not correct.")
)

// Signer signs values with the shared security key, as the PHP module does:
// the lowercase hex HMAC of the value's bytes. A Signer with an empty key
// signs nothing and accepts unsigned channel ids.
//
// A Signer made by WithPrevious also accepts, until a deadline, what the
// key it replaces signed: a key can change without refusing the channel
// ids clients already hold.
type Signer struct {
	key     []byte
	newHash func() hash.Hash
	hexLen  int

	prev  *Signer   // the key this one replaced; nil: none
	until time.Time // prev verifies before this instant
}

// NewSigner returns a signer for key and algo ("sha1" when empty, "sha256",
// "sha512", "md5").
func NewSigner(key, algo string) (*Signer, error) {
	var h func() hash.Hash
	switch strings.ToLower(algo) {
	case "", "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	case "md5":
		h = md5.New
	default:
		return nil, fmt.Errorf("unknown signature algorithm %q (want sha1, sha256, sha512 or md5)", algo)
	}
	return &Signer{key: []byte(key), newHash: h, hexLen: 2 * h().Size()}, nil
}

// WithPrevious returns a signer that signs with s's key and verifies with
// it, and also with prev's key until the instant until. A prev without a
// key adds nothing: turning signatures on takes effect at once. Only
// prev's own key is kept, not the keys it accepted in turn.
func (s *Signer) WithPrevious(prev *Signer, until time.Time) *Signer {
	out := &Signer{key: s.key, newHash: s.newHash, hexLen: s.hexLen}
	if prev != nil && prev.Enabled() && s.Enabled() {
		out.prev = &Signer{key: prev.key, newHash: prev.newHash, hexLen: prev.hexLen}
		out.until = until
	}
	return out
}

// Previous returns the replaced signer that s still accepts and until
// when, or nil once its time is over (or when there is none).
func (s *Signer) Previous() (*Signer, time.Time) {
	if s.prev == nil || !time.Now().Before(s.until) {
		return nil, time.Time{}
	}
	return s.prev, s.until
}

// Enabled reports whether a key is configured.
func (s *Signer) Enabled() bool { return len(s.key) > 0 }

// Sign returns the hex signature of value.
func (s *Signer) Sign(value string) string {
	return hex.EncodeToString(s.mac([]byte(value)))
}

// SignBytes returns the hex signature of b.
func (s *Signer) SignBytes(b []byte) string { return hex.EncodeToString(s.mac(b)) }

func (s *Signer) mac(b []byte) []byte {
	m := hmac.New(s.newHash, s.key)
	m.Write(b)
	return m.Sum(nil)
}

// SignChannel returns "<value>.<signature>", or value itself without a key.
func (s *Signer) SignChannel(value string) string {
	if !s.Enabled() {
		return value
	}
	return value + "." + s.Sign(value)
}

// Verify reports whether sig is the hex signature of value, in constant time.
func (s *Signer) Verify(value, sig string) bool {
	return s.VerifyBytes([]byte(value), sig)
}

// VerifyBytes reports whether sig is the hex signature of b, in constant
// time: by the current key, or by the previous one while it is accepted.
func (s *Signer) VerifyBytes(b []byte, sig string) bool {
	if s.verifyOwn(b, sig) {
		return true
	}
	prev, _ := s.Previous()
	return prev != nil && prev.verifyOwn(b, sig)
}

func (s *Signer) verifyOwn(b []byte, sig string) bool {
	if len(sig) != s.hexLen {
		return false
	}
	want := make([]byte, s.hexLen/2)
	if _, err := hex.Decode(want, []byte(sig)); err != nil {
		return false
	}
	return hmac.Equal(s.mac(b), want)
}

// Channel is one subscribed channel: the private id the messages are
// published to and, from version 4 on, the public id paired with it.
type Channel struct {
	ID     string
	Public string
}

// ValidID reports whether id is 32 ASCII letters or digits.
func ValidID(id string) bool {
	if len(id) != ChannelIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// ParseChannels parses a CHANNEL_ID value: entries joined by "/", each
// "<id>[:<publicId>][.<signature>]". Percent-encoded separators are accepted.
// With a key every entry must carry a valid signature of the text before its
// last "."; without one, signatures are ignored. Duplicate ids are dropped.
func (s *Signer) ParseChannels(raw string) ([]Channel, error) {
	if strings.ContainsRune(raw, '%') {
		if u, err := url.PathUnescape(raw); err == nil {
			raw = u
		} else {
			return nil, ErrBadChannel
		}
	}
	if raw == "" {
		return nil, ErrNoChannel
	}
	var out []Channel
	for len(raw) > 0 {
		var entry string
		entry, raw, _ = strings.Cut(raw, "/")
		if entry == "" {
			continue
		}
		ch, err := s.parseEntry(entry)
		if err != nil {
			return nil, err
		}
		if !containsChannel(out, ch.ID) {
			if len(out) == MaxChannels {
				return nil, ErrBadChannel
			}
			out = append(out, ch)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoChannel
	}
	return out, nil
}

func (s *Signer) parseEntry(entry string) (Channel, error) {
	value, sig, signed := entry, "", false
	if i := strings.LastIndexByte(entry, '.'); i >= 0 {
		value, sig, signed = entry[:i], entry[i+1:], true
	}
	if s.Enabled() && (!signed || !s.Verify(value, sig)) {
		return Channel{}, ErrBadChannel
	}
	id, pub, paired := strings.Cut(value, ":")
	if !ValidID(id) || paired && !ValidID(pub) {
		return Channel{}, ErrBadChannel
	}
	return Channel{ID: id, Public: pub}, nil
}

func containsChannel(list []Channel, id string) bool {
	for _, c := range list {
		if c.ID == id {
			return true
		}
	}
	return false
}

// ParseIDList parses the channel ids of a publish or stats request: ids
// joined by "/", each optionally followed by ".<signature>". Signatures are
// checked only when verify is set. Duplicates are dropped.
func (s *Signer) ParseIDList(raw string, verify bool) ([]string, error) {
	if strings.ContainsRune(raw, '%') {
		u, err := url.PathUnescape(raw)
		if err != nil {
			return nil, ErrBadChannel
		}
		raw = u
	}
	var ids []string
	for _, entry := range strings.Split(raw, "/") {
		if entry == "" {
			continue
		}
		id, sig, signed := strings.Cut(entry, ".")
		if verify && s.Enabled() && (!signed || !s.Verify(id, sig)) {
			return nil, ErrBadChannel
		}
		if !ValidID(id) {
			return nil, ErrBadChannel
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, ErrNoChannel
	}
	return UniqueIDs(ids), nil
}

// UniqueIDs drops the repeats from a list of ids (channel ids, user ids,
// tags) in place and returns the shortened list: the first of each id, in
// the order given.
func UniqueIDs(ids []string) []string {
	out := ids[:0]
	if len(ids) <= 32 {
		for _, id := range ids {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}
