package e2e

import (
	"testing"
	"unicode/utf8"
)

// A body that is not UTF-8 reaches subscribers repaired: every text frame
// is UTF-8 (a browser or Node's ws fails the connection otherwise, and the
// client resuming into the same frame would never get past it), and the
// messages after it arrive.
func TestPoisonBodyIsRepaired(t *testing.T) {
	srv := startP3(t, "", 1)
	ch := newChannelID(t)
	_, wsURL := subQuery(srv, ch, "")
	c := mustDialWS(t, wsURL)
	waitOnline(t, srv, ch, true)
	publish(t, srv, []string{ch}, "{\"module_id\":\"im\",\"command\":\"x\",\"params\":{\"x\":\"\xff\xfe\xc3\"}}")
	publish(t, srv, []string{ch}, command("test", "after", 2))
	for i := 0; i < 2; i++ {
		f := c.Next(t)
		if !utf8.Valid(f.Data) {
			t.Fatalf("frame %d is not UTF-8: %q", i, f.Data)
		}
		if i == 0 {
			env := parseEnvelopes(t, string(f.Data))
			if len(env) != 1 || string(env[0].Text) != "{\"module_id\":\"im\",\"command\":\"x\",\"params\":{\"x\":\"\ufffd\ufffd\ufffd\"}}" {
				t.Fatalf("poison message arrived as %s", f.Data)
			}
		}
	}
}
