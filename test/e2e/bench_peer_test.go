package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
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

// Long-polling subscribers on both servers (pushpull resumes by mid, nchan
// by Last-Modified and Etag) get every message of a small unicast once.
func TestBenchPeerNchanLongPoll(t *testing.T) {
	if _, _, err := bench.FindNchan("", ""); err != nil {
		t.Skipf("nginx with nchan is not installed (scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "bench", "unicast", "--peer", "nchan", "--runs", "1", "--transport", "longpoll",
		"--subs", "30", "--concurrency", "2", "--messages", "300", "--expiry", "60", "--quiet", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench --transport longpoll: %v\n%s%s", err, out, stderr.Bytes())
	}
	var cs []bench.Comparison
	if err := json.Unmarshal(out, &cs); err != nil || len(cs) != 1 {
		t.Fatalf("bench printed %s: %v", out, err)
	}
	rows := map[string]bench.CompareRow{}
	for _, r := range cs[0].Rows {
		rows[r.Figure] = r
	}
	if d := rows["delivered"]; d.Pushpull.Min != 300 || d.Peer.Min != 300 {
		t.Errorf("delivered %+v; want all 300 on both", d)
	}
	if l := rows["lost"]; l.Pushpull.Max != 0 || l.Peer.Max != 0 {
		t.Errorf("lost %+v", l)
	}
}

// bench sweep runs the fan-out at each subscriber count on both servers
// and draws the latency plot.
func TestBenchSweepPlot(t *testing.T) {
	if _, _, err := bench.FindNchan("", ""); err != nil {
		t.Skipf("nginx with nchan is not installed (scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	plot := t.TempDir() + "/latency.svg"
	cmd := exec.CommandContext(ctx, binary, "bench", "sweep", "--peer", "nchan", "--runs", "1", "--sweep", "5,20",
		"--messages", "20", "--rate", "200", "--expiry", "60", "--quiet", "--json", "--plot", plot)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench sweep: %v\n%s%s", err, out, stderr.Bytes())
	}
	var sw bench.Sweep
	if err := json.Unmarshal(out, &sw); err != nil {
		t.Fatalf("bench printed %s: %v", out, err)
	}
	if len(sw.Points) != 4 {
		t.Fatalf("%d points, want 2 counts x 2 servers: %s", len(sw.Points), out)
	}
	for _, p := range sw.Points {
		if p.P50.N != 1 || p.P50.Median <= 0 || p.Lost != 0 {
			t.Errorf("%+v", p)
		}
	}
	svg, err := os.ReadFile(plot)
	if err != nil || !bytes.Contains(svg, []byte("<polyline")) {
		t.Fatalf("plot: %v\n%s", err, svg)
	}
}
