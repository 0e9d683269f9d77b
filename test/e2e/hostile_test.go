package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushpull/pushpull/internal/bench"
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

// pushpull bench hostile runs each attack on one server while a bystander
// subscribes and its backend publishes to it: the bystander gets every
// accepted message once and in order, never a frame that is not UTF-8,
// and each attack meets the refusal it should: poison bodies arrive
// repaired, a flood of large client publishes gets 429 past the rate and
// the store stays within storage.maxBytes, following users past the cap
// gets -32602, and request bodies and WebSocket frames trickled a byte a
// second get 408 and close 1008 once limits.requestTimeout has passed.
func TestHostileScenario(t *testing.T) {
	const followers = 4
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "bench", "hostile", "--quiet", "--json", "--phase", "2s",
		"--conns", "100", "--attackers", "4", "--followers", strconv.Itoa(followers))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench hostile: %v\n%s%s", err, out, stderr.Bytes())
	}
	var r bench.HostileResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench hostile printed %s: %v", out, err)
	}
	if r.Error != "" || len(r.Rows) != len(bench.HostileCases) {
		t.Fatalf("want a row per case, no error; got %+v", r)
	}
	// The outcomes each attack may meet; the first is the refusal.
	want := map[string][]string{
		"poison-body":    {"repaired", "200"},
		"store-flood":    {"429", "200"},
		"follow-flood":   {"-32602", "ok"},
		"slow-body":      {"408", "closed"},
		"trickled-frame": {"1008", "closed"},
	}
	for _, row := range r.Rows {
		if row.Error != "" || row.Accepted == 0 || row.Received != row.Accepted || row.Unaccepted != 0 ||
			row.Missing != 0 || row.Duplicated != 0 || row.Backwards != 0 || row.Poisoned != 0 {
			t.Errorf("%s: the bystander was hurt: %+v", row.Case, row)
		}
		outcomes := want[row.Case]
		if len(outcomes) == 0 || row.Code != outcomes[0] || row.Sent == 0 || row.Refused == 0 {
			t.Errorf("%s: want attacks refused with %v; got %d of %d refused with %s", row.Case, outcomes, row.Refused, row.Sent, row.Code)
		}
		for outcome := range row.Answers {
			if !slices.Contains(outcomes, outcome) {
				t.Errorf("%s: an attack was answered %q (answers %v; want only %v)", row.Case, outcome, row.Answers, outcomes)
			}
		}
		switch row.Case {
		case "poison-body":
			if row.Repaired == 0 || row.Answers["200"] != row.Sent {
				t.Errorf("poison-body: want every poison publish accepted and repaired; got %+v", row)
			}
		case "store-flood":
			if row.Answers["200"] == 0 || row.StorePeakMB == 0 || row.StorePeakMB > r.StoreBoundMB {
				t.Errorf("store-flood: want publishes accepted up to the rate and the store within its %v MB; got %+v", r.StoreBoundMB, row)
			}
		case "follow-flood":
			if row.Answers["ok"] != followers*1000 {
				t.Errorf("follow-flood: want each connection to follow exactly 1000 users; got %v", row.Answers)
			}
		}
	}
}
