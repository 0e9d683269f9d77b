package protocol_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/protocol"
)

const fuzzKey = "fuzz-key"

// signedBy reports whether entry, one "/"-separated part of a CHANNEL_ID, is
// value followed by "." and its signature under fuzzKey, checked with
// crypto/hmac directly rather than through Signer.
func signedBy(entry, value string) bool {
	rest, ok := strings.CutPrefix(entry, value+".")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(rest)
	if err != nil {
		return false
	}
	m := hmac.New(sha1.New, []byte(fuzzKey))
	m.Write([]byte(value))
	return hmac.Equal(m.Sum(nil), sig)
}

// entries splits raw as a CHANNEL_ID value, decoding it first as the parsers
// do when it holds escapes.
func entries(raw string) []string {
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	return strings.Split(raw, "/")
}

func FuzzParseChannels(f *testing.F) {
	keyed := newSigner(f, fuzzKey, "sha1")
	a, b := chanID(0xa), chanID(0xb)
	for _, seed := range []string{
		"", "/", a, a + "/" + b, a + "%2F" + b, a + "%3A" + b, a + ":" + b,
		keyed.SignChannel(a), keyed.SignChannel(a) + "/" + keyed.SignChannel(a+":"+b),
		url.QueryEscape(keyed.SignChannel(a+":"+b) + "/" + keyed.SignChannel(b)),
		a + ".x.y", a[:31], a + "0", "%", "%zz", "a:b:c", a + "/" + a,
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	open := newSigner(f, "", "sha1")
	f.Fuzz(func(t *testing.T, raw string, withKey bool) {
		s := open
		if withKey {
			s = keyed
		}
		got, err := s.ParseChannels(raw)
		if err != nil {
			if got != nil || !errors.Is(err, protocol.ErrBadChannel) && !errors.Is(err, protocol.ErrNoChannel) {
				t.Fatalf("ParseChannels(%q) = %v, %v", raw, got, err)
			}
			return
		}
		if len(got) == 0 || len(got) > protocol.MaxChannels {
			t.Fatalf("ParseChannels(%q) accepted %d channels", raw, len(got))
		}
		parts := entries(raw)
		seen := make(map[string]bool)
		for _, c := range got {
			if !protocol.ValidID(c.ID) || c.Public != "" && !protocol.ValidID(c.Public) {
				t.Fatalf("ParseChannels(%q) accepted %+v", raw, c)
			}
			if seen[c.ID] {
				t.Fatalf("ParseChannels(%q) returned %s twice", raw, c.ID)
			}
			seen[c.ID] = true
			value := c.ID
			if c.Public != "" {
				value += ":" + c.Public
			}
			found := false
			for _, e := range parts {
				if withKey {
					found = found || signedBy(e, value)
				} else {
					found = found || e == value || strings.HasPrefix(e, value+".")
				}
			}
			if !found {
				t.Fatalf("ParseChannels(%q) accepted %q, which no entry carries (signed: %v)", raw, value, withKey)
			}
		}
		if withKey {
			// Every entry was checked, not just the ones kept.
			for _, e := range parts {
				if e == "" {
					continue
				}
				i := strings.LastIndexByte(e, '.')
				if i < 0 || !signedBy(e, e[:i]) {
					t.Fatalf("ParseChannels(%q) accepted the unsigned entry %q", raw, e)
				}
			}
		}
		// What was accepted, signed again, parses to the same list.
		again := make([]string, len(got))
		for i, c := range got {
			value := c.ID
			if c.Public != "" {
				value += ":" + c.Public
			}
			again[i] = s.SignChannel(value)
		}
		got2, err := s.ParseChannels(strings.Join(again, "/"))
		if err != nil || len(got2) != len(got) {
			t.Fatalf("re-parsing %v: %v, %v", got, got2, err)
		}
		for i := range got {
			if got2[i] != got[i] {
				t.Fatalf("re-parsing %v: %v", got, got2)
			}
		}
	})
}

func FuzzParseIDList(f *testing.F) {
	keyed := newSigner(f, fuzzKey, "sha1")
	a, b := chanID(0xa), chanID(0xb)
	for _, seed := range []string{
		"", "//", a, a + "/" + b, a + "%2F" + b, a + ".junk", keyed.SignChannel(a) + "/" + keyed.SignChannel(b),
		url.QueryEscape(keyed.SignChannel(a)), a + ":" + b, a + "/" + a, "%", a[:31],
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, verify bool) {
		got, err := keyed.ParseIDList(raw, verify)
		if err != nil {
			if got != nil || !errors.Is(err, protocol.ErrBadChannel) && !errors.Is(err, protocol.ErrNoChannel) {
				t.Fatalf("ParseIDList(%q, %v) = %v, %v", raw, verify, got, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseIDList(%q, %v) accepted nothing without an error", raw, verify)
		}
		parts := entries(raw)
		seen := make(map[string]bool)
		for _, id := range got {
			if !protocol.ValidID(id) || seen[id] {
				t.Fatalf("ParseIDList(%q, %v) = %v", raw, verify, got)
			}
			seen[id] = true
			found := false
			for _, e := range parts {
				if verify {
					found = found || signedBy(e, id)
				} else {
					found = found || e == id || strings.HasPrefix(e, id+".")
				}
			}
			if !found {
				t.Fatalf("ParseIDList(%q, %v) accepted %s, which no entry carries", raw, verify, id)
			}
		}
		for _, e := range parts {
			if e == "" {
				continue
			}
			id, _, _ := strings.Cut(e, ".")
			if !seen[id] {
				t.Fatalf("ParseIDList(%q, %v) = %v dropped the entry %q", raw, verify, got, e)
			}
			if verify && !signedBy(e, id) {
				t.Fatalf("ParseIDList(%q, true) accepted the unsigned entry %q", raw, e)
			}
		}
	})
}
