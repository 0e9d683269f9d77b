package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/bench"
)

// pushpull bench --peer nchan runs each server in turn, pushpull then nginx
// with nchan, each started for its run, and tabulates both: a tiny fan-out,
// unpinned and then pinned (each server on one CPU, the bench on the
// other, nginx with one worker), in which both deliver everything.
func TestBenchPeerNchan(t *testing.T) {
	if _, _, err := bench.FindNchan("", ""); err != nil {
		t.Skipf("nginx with nchan is not installed (scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "bench", "fanout", "--peer", "nchan", "--runs", "2", "--pin", "both",
		"--subs", "20", "--channels", "2", "--messages", "20", "--rate", "500", "--expiry", "60", "--quiet", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench --peer nchan: %v\n%s%s", err, out, stderr.Bytes())
	}
	var cs []bench.Comparison
	if err := json.Unmarshal(out, &cs); err != nil {
		t.Fatalf("bench printed %s: %v", out, err)
	}
	if len(cs) != 2 || cs[0].Pinned || !cs[1].Pinned {
		t.Fatalf("want an unpinned and a pinned comparison; got %s", out)
	}
	for _, c := range cs {
		if len(c.Errors) != 0 || len(c.PushpullRuns) != 2 || len(c.PeerRuns) != 2 || c.Peer != "nchan" {
			t.Fatalf("pinned=%v: %+v", c.Pinned, c)
		}
		if c.Pinned && c.PeerWorkers != 1 || c.PeerWorkers < 1 {
			t.Errorf("pinned=%v: nginx ran %d workers", c.Pinned, c.PeerWorkers)
		}
		rows := map[string]bench.CompareRow{}
		for _, r := range c.Rows {
			rows[r.Figure] = r
		}
		// 20 subscribers on 2 channels, 20 messages in turn: 200 deliveries.
		if d := rows["delivered"]; d.Pushpull.Min != 200 || d.Peer.Min != 200 || d.Ratio != 1 {
			t.Errorf("pinned=%v: delivered %+v", c.Pinned, d)
		}
		if l := rows["lost"]; l.Pushpull.Max != 0 || l.Peer.Max != 0 {
			t.Errorf("pinned=%v: lost %+v", c.Pinned, l)
		}
		if p := rows["latency p50 (ms)"]; p.Pushpull.Median <= 0 || p.Peer.Median <= 0 || p.Ratio <= 0 {
			t.Errorf("pinned=%v: p50 %+v", c.Pinned, p)
		}
	}
}
