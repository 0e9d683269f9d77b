package e2e

import (
	"net/http"
	"strconv"
	"strings"
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

// A flood of large publishes leaves the memory store within its budget
// (the oldest messages go) and a bystander on another channel receives as
// before.
func TestStoreFloodIsBounded(t *testing.T) {
	const budget = 2 << 20
	srv := startServer(t, map[string]any{
		"storage": map[string]any{"maxBytes": budget},
		"servers": []any{map[string]any{"name": "all", "routes": map[string]any{
			"sub": []any{"/bitrix/sub/", "/bitrix/subws/"}, "pub": "/bitrix/pub/", "metrics": "/metrics",
		}}},
	})
	bystander := newChannelID(t)
	_, wsURL := subQuery(srv, bystander, "")
	c := mustDialWS(t, wsURL)
	waitOnline(t, srv, bystander, true)
	flood := newChannelID(t)
	big := `{"module_id":"x","command":"flood","params":{"pad":"` + strings.Repeat("p", 60<<10) + `"}}`
	for range 200 { // 12 MB in all
		publish(t, srv, []string{flood}, big)
	}
	publish(t, srv, []string{bystander}, command("test", "still-here", 1))
	if env := c.NextEnvelopes(t, 1); !strings.Contains(string(env[0].Text), "still-here") {
		t.Fatalf("the bystander got %s", env[0].Text)
	}
	metrics := request(t, http.MethodGet, strings.TrimSuffix(srv.PubURL, "/bitrix/pub/")+"/metrics", "", nil).Body
	var kept, evicted float64
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "pushpull_store_bytes "); ok {
			kept, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "pushpull_store_evicted_total "); ok {
			evicted, _ = strconv.ParseFloat(v, 64)
		}
	}
	if kept == 0 || kept > budget || evicted == 0 {
		t.Fatalf("store keeps %v bytes with %v evicted; want within the %d-byte budget, the oldest evicted", kept, evicted, budget)
	}
}
