package bench

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

func envelope(seq, sent int64, channel string) []byte {
	m := &protocol.Message{
		ID:      uint64(seq) + 1,
		MID:     protocol.FormatMID(1700000000, uint64(seq)+1),
		Body:    AppendTickBody(nil, seq, sent),
		Created: time.Unix(1700000000, 0),
	}
	return format.AppendEnvelope(nil, m, channel)
}

func TestTickBodyIsJSON(t *testing.T) {
	var v struct {
		ModuleID string `json:"module_id"`
		Command  string `json:"command"`
		Params   struct {
			Seq int64 `json:"seq"`
			T   int64 `json:"t"`
		} `json:"params"`
	}
	if err := json.Unmarshal(AppendTickBody(nil, 42, 1754000000123456789), &v); err != nil {
		t.Fatal(err)
	}
	if v.ModuleID != "bench" || v.Command != "tick" || v.Params.Seq != 42 || v.Params.T != 1754000000123456789 {
		t.Fatalf("got %+v", v)
	}
}

func TestAppendTicks(t *testing.T) {
	const ch = "0123456789abcdef0123456789abcdef"
	var frame []byte
	frame = append(frame, envelope(0, 1754000000000000001, ch)...)
	frame = append(frame, envelope(7, 1754000000000000002, ch)...)
	frame = append(frame, envelope(499, 9, ch)...)
	ticks, bad := AppendTicks(nil, frame)
	want := []Tick{{0, 1754000000000000001}, {7, 1754000000000000002}, {499, 9}}
	if bad != 0 || !slices.Equal(ticks, want) {
		t.Fatalf("got %v (bad %d), want %v", ticks, bad, want)
	}
	// The destination is appended to, so a reused slice needs no allocation.
	ticks, _ = AppendTicks(ticks[:1], envelope(3, 4, ch))
	if !slices.Equal(ticks, []Tick{{0, 1754000000000000001}, {3, 4}}) {
		t.Fatalf("append: got %v", ticks)
	}
}

func TestAppendTicksSpacedJSON(t *testing.T) {
	// A server may re-encode the body; the values are still found.
	frame := []byte(protocol.EnvelopeStart + `{"id":1,"channel":"c","text": {"module_id": "bench", "params": {"t": 55, "seq": 12}}}` + protocol.EnvelopeEnd)
	ticks, bad := AppendTicks(nil, frame)
	if bad != 0 || !slices.Equal(ticks, []Tick{{12, 55}}) {
		t.Fatalf("got %v (bad %d)", ticks, bad)
	}
}

func TestAppendTicksBad(t *testing.T) {
	ch := "0123456789abcdef0123456789abcdef"
	good := envelope(1, 2, ch)
	for name, c := range map[string]struct {
		frame string
		ticks int
		bad   int
	}{
		"empty":              {"", 0, 0},
		"not an envelope":    {`{"text":{"params":{"seq":1,"t":2}}}`, 0, 1},
		"unterminated":       {string(good[:len(good)-3]), 0, 1},
		"other message":      {protocol.EnvelopeStart + `{"text":{"module_id":"im","params":{}}}` + protocol.EnvelopeEnd, 0, 1},
		"no text":            {protocol.EnvelopeStart + `{"seq":1,"t":2}` + protocol.EnvelopeEnd, 0, 1},
		"junk before":        {"junk" + string(good), 1, 1},
		"junk after":         {string(good) + "junk", 1, 1},
		"line break between": {string(good) + "\n" + string(good), 2, 0},
		"not a number":       {protocol.EnvelopeStart + `{"text":{"params":{"seq":"1","t":2}}}` + protocol.EnvelopeEnd, 0, 1},
		"overflow":           {protocol.EnvelopeStart + `{"text":{"params":{"seq":1,"t":99999999999999999999}}}` + protocol.EnvelopeEnd, 0, 1},
	} {
		ticks, bad := AppendTicks(nil, []byte(c.frame))
		if len(ticks) != c.ticks || bad != c.bad {
			t.Errorf("%s: got %d ticks and %d bad, want %d and %d", name, len(ticks), bad, c.ticks, c.bad)
		}
	}
}

func TestIntAfter(t *testing.T) {
	for in, want := range map[string]int64{
		`"seq":0`:                    0,
		`"seq": 17,`:                 17,
		`"seq":-3}`:                  -3,
		`"seq":9223372036854775807}`: 9223372036854775807,
	} {
		got, ok := intAfter([]byte(in), keySeq)
		if !ok || got != want {
			t.Errorf("%s: got %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{`"seq":`, `"seq":-`, `"seq":x`, `"seq":9223372036854775808`, `"sequence":1`} {
		if got, ok := intAfter([]byte(in), keySeq); ok {
			t.Errorf("%s: got %d, want no number", in, got)
		}
	}
}

func FuzzAppendTicks(f *testing.F) {
	f.Add([]byte(envelope(5, 1754000000000000000, "0123456789abcdef0123456789abcdef")), int64(5), int64(6))
	f.Add([]byte(protocol.EnvelopeStart+`{"text":`+protocol.EnvelopeEnd), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, frame []byte, seq, sent int64) {
		// Any frame: no panic, and the counts add up.
		ticks, bad := AppendTicks(nil, frame)
		if bad < 0 || len(ticks) > len(frame)/len(envStart) {
			t.Fatalf("%d ticks, %d bad from %d bytes", len(ticks), bad, len(frame))
		}
		// A frame the bench itself caused reads back exactly.
		got, bad := AppendTicks(nil, envelope(seq, sent, "c"))
		if bad != 0 || len(got) != 1 || got[0] != (Tick{seq, sent}) {
			t.Fatalf("seq %d t %d: got %v (bad %d)", seq, sent, got, bad)
		}
	})
}

// nchan delivers the body as it was posted, one message a frame: its tick
// reads back whole, and anything else counts as unparsed.
func TestAppendBodyTick(t *testing.T) {
	ticks, bad := AppendBodyTick(nil, AppendTickBody(nil, 7, 1754000000000000001))
	if bad != 0 || !slices.Equal(ticks, []Tick{{7, 1754000000000000001}}) {
		t.Fatalf("got %v, bad %d", ticks, bad)
	}
	ticks, bad = AppendBodyTick(ticks, []byte(`{"module_id":"bench","command":"tick","params":{"seq": 8, "t": -1}}`))
	if bad != 0 || !slices.Equal(ticks, []Tick{{7, 1754000000000000001}, {8, -1}}) {
		t.Fatalf("spaced JSON: got %v, bad %d", ticks, bad)
	}
	for _, frame := range []string{"", "hello", `{"params":{"seq":1}}`, `{"params":{"t":1}}`, `{"seq":x,"t":1}`} {
		if got, bad := AppendBodyTick(nil, []byte(frame)); bad != 1 || len(got) != 0 {
			t.Errorf("%q: got %v, bad %d; want one unparsed", frame, got, bad)
		}
	}
	// A pushpull frame is not one body: its envelope's fields come first,
	// and they hold no "seq" or "t", but the body's do parse. The parser
	// is chosen by the server's kind, so each reads its own frames.
	if p := parserFor(KindNchan); p == nil {
		t.Fatal("no parser for nchan")
	}
	env := envelope(3, 4, "c")
	if got, bad := parserFor(KindPushpull)(nil, env); bad != 0 || !slices.Equal(got, []Tick{{3, 4}}) {
		t.Fatalf("pushpull envelope: got %v, bad %d", got, bad)
	}
	if got, bad := parserFor("")(nil, AppendTickBody(nil, 1, 2)); bad != 1 || len(got) != 0 {
		t.Fatalf("a bare body read as a pushpull frame: got %v, bad %d", got, bad)
	}
}

func FuzzAppendBodyTick(f *testing.F) {
	f.Add(AppendTickBody(nil, 5, 1754000000000000000), int64(5), int64(6))
	f.Add([]byte(`"seq":"t":`), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, frame []byte, seq, sent int64) {
		ticks, bad := AppendBodyTick(nil, frame)
		if len(ticks)+bad != 1 {
			t.Fatalf("%d ticks, %d bad from one frame", len(ticks), bad)
		}
		got, bad := AppendBodyTick(nil, AppendTickBody(nil, seq, sent))
		if bad != 0 || len(got) != 1 || got[0] != (Tick{seq, sent}) {
			t.Fatalf("seq %d t %d: got %v (bad %d)", seq, sent, got, bad)
		}
	})
}
