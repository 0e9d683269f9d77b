package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Envelope is one message as a text-mode client receives it.
type Envelope struct {
	ID      uint64
	MID     string
	Channel string
	Tag     string
	Time    string
	Text    json.RawMessage
}

const (
	envStart = "#!NGINXNMS!#"
	envEnd   = "#!NGINXNME!#"
)

var envelopeKeys = []string{"id", "mid", "channel", "tag", "time", "text"}

// parseEnvelopes splits a text-mode body or frame into its envelopes. It
// fails the test unless the data is exactly a run of
// #!NGINXNMS!#{"id","mid","channel","tag","time","text"}#!NGINXNME!#
// with the keys in that order, each on one line.
func parseEnvelopes(t testing.TB, data string) []Envelope {
	t.Helper()
	var out []Envelope
	rest := data
	for rest != "" {
		if !strings.HasPrefix(rest, envStart) {
			t.Fatalf("envelope does not start with %s at %q (in %q)", envStart, rest, data)
		}
		end := strings.Index(rest, envEnd)
		if end < 0 {
			t.Fatalf("envelope without %s in %q", envEnd, data)
		}
		obj := rest[len(envStart):end]
		rest = rest[end+len(envEnd):]
		if strings.ContainsAny(obj, "\r\n\u2028\u2029") {
			t.Fatalf("envelope spans lines: %q", obj)
		}
		out = append(out, parseEnvelopeObject(t, []byte(obj)))
	}
	if len(out) == 0 {
		t.Fatalf("no envelope in %q", data)
	}
	return out
}

// parseEnvelopeObject decodes one envelope object, checking its keys, their
// order and the form of each field.
func parseEnvelopeObject(t testing.TB, obj []byte) Envelope {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		t.Fatalf("envelope is not a JSON object: %v: %s", err, obj)
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(keys, ",") != strings.Join(envelopeKeys, ",") {
		t.Fatalf("envelope keys %v; want %v: %s", keys, envelopeKeys, obj)
	}
	var e Envelope
	if err := json.Unmarshal(fields["id"], &e.ID); err != nil {
		t.Fatalf("envelope id %s is not an integer: %s", fields["id"], obj)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"mid", &e.MID}, {"channel", &e.Channel}, {"tag", &e.Tag}, {"time", &e.Time}} {
		if err := json.Unmarshal(fields[f.name], f.dst); err != nil {
			t.Fatalf("envelope %s %s is not a string: %s", f.name, fields[f.name], obj)
		}
	}
	e.Text = fields["text"]
	if !validMID(e.MID) {
		t.Fatalf("envelope mid %q is not 26 digits: %s", e.MID, obj)
	}
	if n, _ := strconv.ParseUint(e.MID[10:], 10, 64); n != e.ID {
		t.Fatalf("envelope id %d is not the counter part of mid %s", e.ID, e.MID)
	}
	if _, err := time.Parse(http.TimeFormat, e.Time); err != nil {
		t.Fatalf("envelope time %q is not an HTTP date: %v", e.Time, err)
	}
	return e
}

func validMID(mid string) bool {
	if len(mid) != 26 {
		return false
	}
	for _, c := range mid {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// WSClient is a raw WebSocket subscriber that collects the data frames the
