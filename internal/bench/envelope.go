package bench

import (
	"bytes"
	"math"
	"strconv"

	"github.com/pushpull/pushpull/protocol"
)

// Tick is what the bench reads back from one delivered message: the
// sequence number and the send time it published in the body's params.
type Tick struct {
	Seq  int64
	Sent int64 // unix nanoseconds
}

// AppendTickBody appends the body the bench publishes:
// {"module_id":"bench","command":"tick","params":{"seq":N,"t":T}}.
func AppendTickBody(dst []byte, seq, sent int64) []byte {
	dst = append(dst, `{"module_id":"bench","command":"tick","params":{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, sent, 10)
	return append(dst, "}}"...)
}

var (
	envStart = []byte(protocol.EnvelopeStart)
	envEnd   = []byte(protocol.EnvelopeEnd)
	keyText  = []byte(`"text":`)
	keySeq   = []byte(`"seq":`)
	keySent  = []byte(`"t":`)
)

// AppendTicks appends the ticks of every text-mode envelope in frame
// (#!NGINXNMS!#{...,"text":{...}}#!NGINXNME!#, any number of them) to dst.
// It reads only what it needs, without decoding the JSON, since it runs
// once per delivered message on the machine being measured. Envelopes that
// carry no tick, and text outside envelopes, are counted in bad.
func AppendTicks(dst []Tick, frame []byte) (ticks []Tick, bad int) {
	for len(frame) > 0 {
		i := bytes.Index(frame, envStart)
		if i < 0 {
			if len(bytes.TrimSpace(frame)) > 0 {
				bad++
			}
			break
		}
		if len(bytes.TrimSpace(frame[:i])) > 0 {
			bad++
		}
		frame = frame[i+len(envStart):]
		j := bytes.Index(frame, envEnd)
		if j < 0 {
			bad++ // unterminated
			break
		}
		t, ok := parseTick(frame[:j])
		if ok {
			dst = append(dst, t)
		} else {
			bad++
		}
		frame = frame[j+len(envEnd):]
	}
	return dst, bad
}

// AppendBodyTick appends the tick of a frame that is one published body as
// it was posted (nchan sends each message's body alone in a frame, with no
// envelope). A frame without one is counted in bad.
func AppendBodyTick(dst []Tick, frame []byte) (ticks []Tick, bad int) {
	seq, ok1 := intAfter(frame, keySeq)
	sent, ok2 := intAfter(frame, keySent)
	if !ok1 || !ok2 {
		return dst, 1
	}
	return append(dst, Tick{Seq: seq, Sent: sent}), 0
}

// tickParser reads the ticks of one delivered frame.
type tickParser func(dst []Tick, frame []byte) ([]Tick, int)

// parserFor returns how the subscribers of a kind of server read their
// frames.
func parserFor(kind string) tickParser {
	if kind == KindNchan {
		return AppendBodyTick
	}
	return AppendTicks
}

// parseTick finds params.seq and params.t in the "text" of one envelope
// object. The envelope's own fields come before "text" and none of them is
// named "seq" or "t", so a search after "text" finds the bench's values.
func parseTick(obj []byte) (Tick, bool) {
	i := bytes.Index(obj, keyText)
	if i < 0 {
		return Tick{}, false
	}
	text := obj[i+len(keyText):]
	seq, ok1 := intAfter(text, keySeq)
	sent, ok2 := intAfter(text, keySent)
	return Tick{Seq: seq, Sent: sent}, ok1 && ok2
}

// intAfter parses the JSON integer that follows key in b.
func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
