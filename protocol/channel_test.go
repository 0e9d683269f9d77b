package protocol_test

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
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// chanID returns a distinct valid channel id: 32 lowercase hex digits, the
// form the PHP module generates.
func chanID(n int) string { return fmt.Sprintf("%032x", n) }

func newSigner(t testing.TB, key, algo string) *protocol.Signer {
	t.Helper()
	s, err := protocol.NewSigner(key, algo)
	if err != nil {
		t.Fatalf("NewSigner(%q, %q): %v", key, algo, err)
	}
	return s
}

// refHMAC computes the signature the PHP module sends (hash_hmac with a hex
// result) without going through Signer.
func refHMAC(h func() hash.Hash, key, value string) string {
	m := hmac.New(h, []byte(key))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignerPublishedVectors(t *testing.T) {
	// RFC 2202 and RFC 4231, test case 2: key "Jefe".
	const data = "what do ya want for nothing?"
	tests := []struct {
		algo, want string
	}{
		{"md5", "750c783e6ab0b503eaa86e310a5db738"},
		{"sha1", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{"sha256", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"sha512", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
	}
	for _, tt := range tests {
		s := newSigner(t, "Jefe", tt.algo)
		if got := s.Sign(data); got != tt.want {
			t.Errorf("%s: Sign = %s, want %s", tt.algo, got, tt.want)
		}
		if !s.Verify(data, tt.want) {
			t.Errorf("%s: Verify rejects the published vector", tt.algo)
		}
	}
}

func TestSignerAlgorithms(t *testing.T) {
	const key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	value := chanID(7)
	tests := []struct {
		algo   string
		h      func() hash.Hash
		hexLen int
	}{
		{"", sha1.New, 40},
		{"sha1", sha1.New, 40},
		{"SHA1", sha1.New, 40},
		{"sha256", sha256.New, 64},
		{"Sha256", sha256.New, 64},
		{"sha512", sha512.New, 128},
		{"md5", md5.New, 32},
	}
	for _, tt := range tests {
		s := newSigner(t, key, tt.algo)
		want := refHMAC(tt.h, key, value)
		if got := s.Sign(value); got != want {
			t.Errorf("algo %q: Sign = %s, want %s", tt.algo, got, want)
		}
		if got := s.SignBytes([]byte(value)); got != want {
			t.Errorf("algo %q: SignBytes = %s, want %s", tt.algo, got, want)
		}
		if len(want) != tt.hexLen {
			t.Fatalf("algo %q: reference signature has %d hex digits, want %d", tt.algo, len(want), tt.hexLen)
		}
		if got := s.SignChannel(value); got != value+"."+want {
			t.Errorf("algo %q: SignChannel = %s, want %s.%s", tt.algo, got, value, want)
		}
		if !s.Enabled() {
			t.Errorf("algo %q: Enabled = false with a key", tt.algo)
		}
	}
}

func TestNewSignerUnknownAlgorithm(t *testing.T) {
	for _, algo := range []string{"sha3", "sha224", "hmac-sha1", " sha1"} {
		if s, err := protocol.NewSigner("k", algo); err == nil {
			t.Errorf("NewSigner(%q) = %v, want an error", algo, s)
		}
	}
}

func TestSignChannelWithoutKey(t *testing.T) {
	s := newSigner(t, "", "sha256")
	if s.Enabled() {
		t.Fatal("Enabled = true without a key")
	}
	for _, v := range []string{chanID(1), chanID(1) + ":" + chanID(2), ""} {
		if got := s.SignChannel(v); got != v {
			t.Errorf("SignChannel(%q) = %q without a key, want it unchanged", v, got)
		}
	}
}

func TestVerify(t *testing.T) {
	s := newSigner(t, "secret", "sha1")
	value := chanID(3)
	good := refHMAC(sha1.New, "secret", value)
	flipped := good[:len(good)-1] + "0"
	if good[len(good)-1] == '0' {
		flipped = good[:len(good)-1] + "1"
	}
	tests := []struct {
		name, value, sig string
		want             bool
	}{
		{"good", value, good, true},
		{"empty", value, "", false},
		{"short by one", value, good[:len(good)-1], false},
		{"long by one", value, good + "0", false},
		{"sha256 length", value, refHMAC(sha256.New, "secret", value), false},
		{"odd length", value, good[:39], false},
		{"non-hex, right length", value, strings.Repeat("z", 40), false},
		{"hex with a space", value, " " + good[1:], false},
		{"last digit changed", value, flipped, false},
		{"other value", chanID(4), good, false},
		{"other key", value, refHMAC(sha1.New, "Secret", value), false},
		{"prefix of value", value[:31], good, false},
	}
	for _, tt := range tests {
		if got := s.Verify(tt.value, tt.sig); got != tt.want {
			t.Errorf("%s: Verify(%q, %q) = %v, want %v", tt.name, tt.value, tt.sig, got, tt.want)
		}
		if got := s.VerifyBytes([]byte(tt.value), tt.sig); got != tt.want {
			t.Errorf("%s: VerifyBytes = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestWithPrevious: a replaced key verifies beside the new one until its
// deadline and not after; signing always uses the new key.
func TestWithPrevious(t *testing.T) {
	old, cur := newSigner(t, "old-key", "sha1"), newSigner(t, "new-key", "sha1")
	id := chanID(7)
	byOld, byNew := old.SignChannel(id), cur.SignChannel(id)

	during := cur.WithPrevious(old, time.Now().Add(time.Hour))
	if got := during.SignChannel(id); got != byNew {
		t.Errorf("SignChannel during the grace = %q, want the new key's %q", got, byNew)
	}
	for _, signed := range []string{byOld, byNew} {
		if _, err := during.ParseChannels(signed); err != nil {
			t.Errorf("during the grace, ParseChannels(%q): %v", signed, err)
		}
	}
	if prev, _ := during.Previous(); prev == nil {
		t.Error("Previous during the grace = nil")
	}
	if _, err := during.ParseChannels(newSigner(t, "third-key", "sha1").SignChannel(id)); err == nil {
		t.Error("a third key verified during the grace")
	}

	after := cur.WithPrevious(old, time.Now().Add(-time.Nanosecond))
	if _, err := after.ParseChannels(byOld); !errors.Is(err, protocol.ErrBadChannel) {
		t.Errorf("after the grace, the old key's channel: err = %v, want ErrBadChannel", err)
	}
	if _, err := after.ParseChannels(byNew); err != nil {
		t.Errorf("after the grace, the new key's channel: %v", err)
	}
	if prev, _ := after.Previous(); prev != nil {
		t.Error("Previous after the grace is not nil")
	}

	// Only the one key replaced is kept: a second change drops the first key.
	third := newSigner(t, "third-key", "sha1").WithPrevious(during, time.Now().Add(time.Hour))
	if _, err := third.ParseChannels(byOld); err == nil {
		t.Error("the key before the previous one still verifies")
	}
	if _, err := third.ParseChannels(byNew); err != nil {
		t.Errorf("the previous key: %v", err)
	}

	// Turning the key on takes effect at once: no unsigned grace.
	on := cur.WithPrevious(newSigner(t, "", "sha1"), time.Now().Add(time.Hour))
	if _, err := on.ParseChannels(id); err == nil {
		t.Error("an unsigned id was accepted after a key was set")
	}
}

func TestParseChannels(t *testing.T) {
	const key = "secret"
	keyed := newSigner(t, key, "sha1")
	open := newSigner(t, "", "")
	a, b, c := chanID(0xa), chanID(0xb), chanID(0xc)
	sign := func(v string) string { return v + "." + refHMAC(sha1.New, key, v) }

	many := func(n int, f func(string) string) string {
		e := make([]string, n)
		for i := range e {
			e[i] = f(chanID(i))
		}
		return strings.Join(e, "/")
	}
	manyChannels := func(n int) []protocol.Channel {
		out := make([]protocol.Channel, n)
		for i := range out {
			out[i] = protocol.Channel{ID: chanID(i)}
		}
		return out
	}
	id := func(s string) string { return s }
	one := func(id, pub string) []protocol.Channel { return []protocol.Channel{{ID: id, Public: pub}} }

	tests := []struct {
		name    string
		signer  *protocol.Signer
		raw     string
		want    []protocol.Channel
		wantErr error
	}{
		{"single", open, a, one(a, ""), nil},
		{"single signed", keyed, sign(a), one(a, ""), nil},
		{"several", open, a + "/" + b + "/" + c, []protocol.Channel{{ID: a}, {ID: b}, {ID: c}}, nil},
		{"several signed", keyed, sign(a) + "/" + sign(b), []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"encoded slash", open, a + "%2F" + b, []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"encoded slash lowercase", open, a + "%2f" + b, []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"encoded slash signed", keyed, sign(a) + "%2F" + sign(b), []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"encoded colon", open, a + "%3A" + b, one(a, b), nil},
		{"encoded colon signed", keyed, url.PathEscape(sign(a + ":" + b)), one(a, b), nil},
		{"everything escaped", keyed, url.QueryEscape(sign(a+":"+b) + "/" + sign(c)), []protocol.Channel{{ID: a, Public: b}, {ID: c}}, nil},
		{"pair", open, a + ":" + b, one(a, b), nil},
		{"pair signed over priv:pub", keyed, sign(a + ":" + b), one(a, b), nil},
		{"pair signed over priv only", keyed, a + ":" + b + "." + refHMAC(sha1.New, key, a), nil, protocol.ErrBadChannel},
		{"pair signed over pub only", keyed, a + ":" + b + "." + refHMAC(sha1.New, key, b), nil, protocol.ErrBadChannel},
		{"pair with empty public", open, a + ":", nil, protocol.ErrBadChannel},
		{"pair with empty private", open, ":" + b, nil, protocol.ErrBadChannel},
		{"triple", open, a + ":" + b + ":" + c, nil, protocol.ErrBadChannel},
		{"missing signature", keyed, a, nil, protocol.ErrBadChannel},
		{"missing signature on the second", keyed, sign(a) + "/" + b, nil, protocol.ErrBadChannel},
		{"empty signature", keyed, a + ".", nil, protocol.ErrBadChannel},
		{"wrong signature", keyed, a + "." + refHMAC(sha1.New, key, b), nil, protocol.ErrBadChannel},
		{"wrong key", keyed, a + "." + refHMAC(sha1.New, "other", a), nil, protocol.ErrBadChannel},
		{"wrong algorithm", keyed, a + "." + refHMAC(sha256.New, key, a), nil, protocol.ErrBadChannel},
		{"signature ignored without key", open, a + ".0123", one(a, ""), nil},
		{"empty signature ignored without key", open, a + ".", one(a, ""), nil},
		{"pair signature ignored without key", open, a + ":" + b + ".nothex", one(a, b), nil},
		{"two dots", open, a + ".x.y", nil, protocol.ErrBadChannel},
		{"31 chars", open, a[:31], nil, protocol.ErrBadChannel},
		{"33 chars", open, a + "0", nil, protocol.ErrBadChannel},
		{"31 chars signed", keyed, sign(a[:31]), nil, protocol.ErrBadChannel},
		{"33 chars signed", keyed, sign(a + "0"), nil, protocol.ErrBadChannel},
		{"uppercase and letters", open, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", one("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", ""), nil},
		{"dash", open, a[:31] + "-", nil, protocol.ErrBadChannel},
		{"underscore", open, "_" + a[1:], nil, protocol.ErrBadChannel},
		{"space", open, a[:16] + " " + a[17:], nil, protocol.ErrBadChannel},
		{"non-ASCII letter", open, a[:30] + "é", nil, protocol.ErrBadChannel},
		{"NUL", open, a[:31] + "\x00", nil, protocol.ErrBadChannel},
		{"signed non-alnum", keyed, sign(a[:31] + "!"), nil, protocol.ErrBadChannel},
		{"one good one bad", open, a + "/" + b[:31], nil, protocol.ErrBadChannel},
		{"empty entries", open, "/" + a + "//" + b + "/", []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"encoded empty entries", open, "%2F" + a + "%2F%2F", one(a, ""), nil},
		{"duplicates dropped", open, a + "/" + b + "/" + a + "/" + b, []protocol.Channel{{ID: a}, {ID: b}}, nil},
		{"duplicate id, first pair kept", open, a + ":" + b + "/" + a + ":" + c, one(a, b), nil},
		{"duplicates signed", keyed, sign(a) + "/" + sign(a), one(a, ""), nil},
		{"MaxChannels", open, many(protocol.MaxChannels, id), manyChannels(protocol.MaxChannels), nil},
		{"MaxChannels signed", keyed, many(protocol.MaxChannels, sign), manyChannels(protocol.MaxChannels), nil},
		{"MaxChannels and duplicates", open, many(protocol.MaxChannels, id) + "/" + many(protocol.MaxChannels, id), manyChannels(protocol.MaxChannels), nil},
		{"MaxChannels+1", open, many(protocol.MaxChannels+1, id), nil, protocol.ErrBadChannel},
		{"MaxChannels+1 signed", keyed, many(protocol.MaxChannels+1, sign), nil, protocol.ErrBadChannel},
		{"empty", open, "", nil, protocol.ErrNoChannel},
		{"empty with key", keyed, "", nil, protocol.ErrNoChannel},
		{"only slashes", open, "///", nil, protocol.ErrNoChannel},
		{"only encoded slashes", keyed, "%2F%2f", nil, protocol.ErrNoChannel},
		{"bad escape", open, a + "%2", nil, protocol.ErrBadChannel},
		{"bad escape digits", open, a + "%zz" + b, nil, protocol.ErrBadChannel},
		{"lone percent", open, "%", nil, protocol.ErrBadChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.ParseChannels(tt.raw)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseChannels(%q) error = %v, want %v", tt.raw, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseChannels(%q) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

// TestParseChannelsErrorTexts pins the texts the original server answers
// with, which clients and backends may match on.
func TestParseChannelsErrorTexts(t *testing.T) {
	if got := protocol.ErrNoChannel.Error(); got != "No channel id provided." {
		t.Errorf("ErrNoChannel = %q", got)
	}
	if got := protocol.ErrBadChannel.Error(); got != "Channel id is not correct." {
		t.Errorf("ErrBadChannel = %q", got)
	}
}

// TestParseChannelsRoundTrip: what SignChannel makes, ParseChannels accepts,
// with every algorithm.
func TestParseChannelsRoundTrip(t *testing.T) {
	for _, algo := range []string{"sha1", "sha256", "sha512", "md5"} {
		s := newSigner(t, "k3y", algo)
		var entries []string
		var want []protocol.Channel
		for i := range 10 {
			ch := protocol.Channel{ID: chanID(2 * i)}
			v := ch.ID
			if i%2 == 1 {
				ch.Public = chanID(2*i + 1)
				v += ":" + ch.Public
			}
			entries = append(entries, s.SignChannel(v))
			want = append(want, ch)
		}
		got, err := s.ParseChannels(strings.Join(entries, "/"))
		if err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", algo, got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{chanID(0), true},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", true},
		{"abcdefghijklmnopqrstuvwxyz6789AZ", true},
		{"", false},
		{chanID(0)[:31], false},
		{chanID(0) + "a", false},
		{strings.Repeat("g", 31) + "/", false},
		{strings.Repeat("a", 31) + ":", false},
		{strings.Repeat("a", 31) + "@", false},
		{strings.Repeat("a", 31) + "[", false},
		{strings.Repeat("a", 31) + "`", false},
		{strings.Repeat("a", 31) + "{", false},
		{strings.Repeat("a", 30) + "é", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestParseIDList(t *testing.T) {
	const key = "secret"
	keyed := newSigner(t, key, "sha256")
	open := newSigner(t, "", "sha256")
	a, b := chanID(0xa), chanID(0xb)
	sign := func(v string) string { return v + "." + refHMAC(sha256.New, key, v) }
	many := make([]string, 3*protocol.MaxChannels)
	for i := range many {
		many[i] = chanID(i)
	}

	tests := []struct {
		name    string
		signer  *protocol.Signer
		raw     string
		verify  bool
		want    []string
		wantErr error
	}{
		{"single", open, a, false, []string{a}, nil},
		{"several", open, a + "/" + b, false, []string{a, b}, nil},
		{"encoded slash", open, a + "%2F" + b, false, []string{a, b}, nil},
		{"empty entries", open, "/" + a + "//" + b + "/", false, []string{a, b}, nil},
		{"duplicates dropped", open, a + "/" + b + "/" + a, false, []string{a, b}, nil},
		{"signed duplicates dropped", keyed, sign(a) + "/" + sign(a), true, []string{a}, nil},
		{"signatures ignored when not verifying", keyed, a + ".junk/" + b, false, []string{a, b}, nil},
		{"verify without key accepts unsigned", open, a + "/" + b + ".junk", true, []string{a, b}, nil},
		{"verify signed", keyed, sign(a) + "/" + sign(b), true, []string{a, b}, nil},
		{"verify encoded", keyed, url.QueryEscape(sign(a) + "/" + sign(b)), true, []string{a, b}, nil},
		{"verify missing signature", keyed, sign(a) + "/" + b, true, nil, protocol.ErrBadChannel},
		{"verify wrong signature", keyed, a + "." + refHMAC(sha256.New, key, b), true, nil, protocol.ErrBadChannel},
		{"verify sha1 signature", keyed, a + "." + refHMAC(sha1.New, key, a), true, nil, protocol.ErrBadChannel},
		{"verify empty signature", keyed, a + ".", true, nil, protocol.ErrBadChannel},
		{"bad id", open, a[:31], false, nil, protocol.ErrBadChannel},
		{"bad id signed", keyed, sign(a + "0"), true, nil, protocol.ErrBadChannel},
		{"non-alnum", open, a[:31] + "-", false, nil, protocol.ErrBadChannel},
		{"pairs are not ids", open, a + ":" + b, false, nil, protocol.ErrBadChannel},
		{"many", open, strings.Join(many, "/"), false, many, nil},
		{"empty", open, "", false, nil, protocol.ErrNoChannel},
		{"empty verified", keyed, "", true, nil, protocol.ErrNoChannel},
		{"only slashes", open, "//", false, nil, protocol.ErrNoChannel},
		{"bad escape", open, a + "%", false, nil, protocol.ErrBadChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.ParseIDList(tt.raw, tt.verify)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseIDList(%q, %v) error = %v, want %v", tt.raw, tt.verify, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseIDList(%q, %v) = %v, want %v", tt.raw, tt.verify, got, tt.want)
			}
		})
	}
}

func TestUniqueIDs(t *testing.T) {
	long := make([]string, 0, 100)
	for i := range 100 {
		long = append(long, strconv.Itoa(i%40))
	}
	want := make([]string, 40)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{"b", "a", "b", "c", "a"}, []string{"b", "a", "c"}},
		{long, want},
	} {
		if got := protocol.UniqueIDs(slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("UniqueIDs(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
