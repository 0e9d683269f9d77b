package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
)

func TestNchanConfig(t *testing.T) {
	conf := nchanConfig("/tmp/d", "/m/ngx_nchan_module.so", 8001, 8002, NchanOptions{Conns: 10000, Expiry: 3600})
	for _, s := range []string{
		"load_module /m/ngx_nchan_module.so;\n",
		"daemon off;\n",
		"worker_processes auto;\n",
		"worker_connections 11024;\n",
		"pid /tmp/d/nginx.pid;\n",
		"error_log stderr warn;\n",
		"client_body_temp_path /tmp/d/client_body;\n",
		"listen 127.0.0.1:8001 reuseport;\n",
		"listen 127.0.0.1:8002 reuseport;\n",
		"location /sub/ {\n      nchan_subscriber websocket longpoll;\n",
		"nchan_channel_id $arg_CHANNEL_ID;\n",
		"location /pub/ {\n      nchan_publisher;\n",
		"location = /nchan-stat/ {\n      nchan_stub_status;\n",
		"nchan_message_buffer_length 10000;\n",
		"nchan_message_timeout 3600s;\n",
	} {
		if !strings.Contains(conf, s) {
			t.Errorf("config lacks %q:\n%s", s, conf)
		}
	}
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Errorf("unbalanced braces:\n%s", conf)
	}
	// No expiry keeps no messages, as pushpull keeps none published
	// without one; a pinned run has one worker.
	conf = nchanConfig("/d", "/m.so", 1, 2, NchanOptions{Workers: 1})
	for _, s := range []string{"worker_processes 1;\n", "nchan_message_buffer_length 0;\n", "worker_connections 1024;\n"} {
		if !strings.Contains(conf, s) {
			t.Errorf("config lacks %q:\n%s", s, conf)
		}
	}
}

func TestParseNchanSubscribers(t *testing.T) {
	status := "total published messages: 3\nstored messages: 0\nshared memory used: 16K\nchannels: 2\nsubscribers: 1500\nredis pending commands: 0\nnchan version: 1.3.6\n"
	if n, err := parseNchanSubscribers([]byte(status)); err != nil || n != 1500 {
		t.Fatalf("got %d, %v; want 1500", n, err)
	}
	for _, bad := range []string{"", "channels: 2\n", "subscribers: many\n", "subscribers: -1\n", "active subscribers 3\n"} {
		if n, err := parseNchanSubscribers([]byte(bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
}

func FuzzParseNchanSubscribers(f *testing.F) {
	f.Add([]byte("channels: 2\nsubscribers: 10\n"))
	f.Add([]byte("subscribers:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseNchanSubscribers(b); err == nil && n < 0 {
			t.Fatalf("negative count %d", n)
		}
	})
}

func TestFindNchanMissing(t *testing.T) {
	if _, _, err := FindNchan("/bin/true", filepath.Join(t.TempDir(), "none.so")); err == nil {
		t.Fatal("a module that is not there was found")
	}
}

// needNchan skips a test where nginx or its nchan module is not installed
// (scripts/test installs both).
func needNchan(t *testing.T) {
	t.Helper()
	if _, _, err := FindNchan("", ""); err != nil {
		t.Skipf("no nchan peer to run: %v", err)
	}
}

// A tiny side by side on a real nginx with nchan: pushpull's side is the
// fake server (the e2e tests run the real one), the peer the nginx the
// bench starts, fan-out, unicast and idle each on a fresh one.
func TestCompareNchan(t *testing.T) {
	needNchan(t)
	_, pp := newFakeServer(t, "")
	o := Options{Target: pp, Peer: KindNchan, Runs: 1, Subs: 20, Messages: 30, Rate: 1000, Channels: 2,
		Expiry: 60, Conns: 50, Settle: time.Millisecond, Concurrency: 2, Drain: 10 * time.Second}
	for _, sc := range CompareScenarios {
		c := Compare(context.Background(), o, sc, false)
		if len(c.Errors) != 0 || len(c.PeerRuns) != 1 || c.PeerWorkers < 1 {
			t.Fatalf("%s: %+v", sc, c)
		}
		switch r := c.PeerRuns[0].(type) {
		case *DeliveryResult:
			if r.Lost != 0 || r.Delivered == 0 || r.Unparsed != 0 || r.PublishErrors != 0 || r.Server != KindNchan || r.Workers < 1 {
				t.Fatalf("%s on nchan: %+v", sc, r)
			}
		case *IdleResult:
			if r.ServerWebSockets != 50 || r.Dropped != 0 || r.RSSAfter <= 0 || r.Workers < 1 {
				t.Fatalf("idle on nchan: %+v", r)
			}
		}
	}
}

// The nginx the bench starts is its own: a foreground child whose
// processes (master and workers) all go at the stop, with its directory.
func TestSpawnNchanStops(t *testing.T) {
	needNchan(t)
	sp, err := SpawnNchan(context.Background(), NchanOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	pids := sp.procs().pids()
	if len(pids) != 3 {
		sp.Stop()
		t.Fatalf("nginx runs %d processes, want a master and 2 workers", len(pids))
	}
	sp.Stop()
	for _, pid := range pids {
		// A worker may take a moment to go after its master.
		testutil.WaitFor(t, "nginx process gone", func() bool {
			_, err := ReadStatus(pid)
			return err != nil
		})
	}
	if _, err := os.Stat(sp.dir); !os.IsNotExist(err) {
		t.Errorf("its directory %s is left: %v", sp.dir, err)
	}
}
