package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

func hostileFrame(bodies ...string) []byte {
	var b strings.Builder
	for i, body := range bodies {
		fmt.Fprintf(&b, `%s{"id":%d,"mid":"%026d","channel":"c","tag":"t","time":"now","text":%s}%s`,
			protocol.EnvelopeStart, i+1, i+1, body, protocol.EnvelopeEnd)
	}
	return []byte(b.String())
}

func numbered(n int64) string {
	return fmt.Sprintf(`{"module_id":"hostile","command":"n","params":{"n":%d}}`, n)
}

// The bystander's window over a case counts, of the messages accepted in
// it, those received, missing, repeated and out of order, the frames that
// were not UTF-8 and the poison messages that came repaired, and the
// longest wait between two receipts.
func TestBystanderWindow(t *testing.T) {
	b := newBystander()
	t0 := time.Now()
	b.got(hostileFrame(numbered(1)), t0) // before the case
	from := b.mark()
	from.at = t0.Add(10 * time.Millisecond)
	b.accepted = append(b.accepted, 2, 3, 4, 5, 6)
	b.counts.unaccepted++
	b.got(hostileFrame(numbered(2), numbered(4)), t0.Add(50*time.Millisecond))
	b.got(hostileFrame(numbered(3)), t0.Add(100*time.Millisecond)) // after 4
	b.got(hostileFrame(numbered(4)), t0.Add(400*time.Millisecond)) // again
	b.got([]byte(protocol.EnvelopeStart+`{"text":{"x":"`+"\xff\xfe"+`"}}`+protocol.EnvelopeEnd), t0.Add(450*time.Millisecond))
	b.got(hostileFrame(`{"module_id":"hostile","command":"poison","params":{"x":"`+"\ufffd\ufffd\ufffd"+`"}}`), t0.Add(460*time.Millisecond))
	b.got(hostileFrame(`{"module_id":"pull","command":"channel_expire","params":{}}`, numbered(6)), t0.Add(500*time.Millisecond))
	to := b.mark()
	to.at = t0.Add(550 * time.Millisecond)

	w := b.window(from, to)
	want := bystanderWindow{accepted: 5, unaccepted: 1, received: 4, missing: 1, dups: 1, backwards: 1,
		poisoned: 1, repaired: 1, gap: 300 * time.Millisecond}
	if w != want {
		t.Fatalf("window %+v, want %+v", w, want)
	}
	if b.caughtUp() != true || b.mid != fmt.Sprintf("%026d", 2) {
		t.Fatalf("caught up %v, resume mid %s", b.caughtUp(), b.mid)
	}
}

// A case in which the bystander receives nothing waits from its last
// receipt to the end of the case.
func TestBystanderWindowSilent(t *testing.T) {
	b := newBystander()
	t0 := time.Now()
	b.got(hostileFrame(numbered(1)), t0)
	from := b.mark()
	from.at = t0.Add(time.Second)
	to := b.mark()
	to.at = t0.Add(3 * time.Second)
	if w := b.window(from, to); w.gap != 3*time.Second {
		t.Fatalf("gap %s, want 3s", w.gap)
	}
}

func TestAnswersText(t *testing.T) {
	if got := answersText(map[string]int64{"200": 5, "429": 50, "closed": 5}); got != "429:50 200:5 closed:5" {
		t.Fatalf("got %q", got)
	}
}
