package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/app"
	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// childEnv makes the test binary play the pushpull binary the fleet
// starts: `serve --config FILE`, or a fleet worker.
const childEnv = "PUSHPULL_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := child(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "pushpull:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch {
	case len(args) > 0 && args[0] == "serve":
		return childServe(ctx, args[1:])
	case slices.Equal(args, FleetWorkerArgs):
		return RunFleetWorker(ctx, os.Stdin, os.Stdout)
	}
	return fmt.Errorf("test child: unknown command %q", args)
}

// childServe runs a server as `pushpull serve` does, logging the
// listening lines and the ready line the bench reads.
func childServe(ctx context.Context, args []string) error {
	setup, err := config.ParseServe(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	cfg := setup.Processes[0].Config
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	for i, addr := range a.Addrs() {
		log.Info("listening", "server", cfg.Servers[i].Name, "addr", addr.String(), "tls", false)
	}
	go func() {
		if a.WaitReady(ctx, nil) == nil {
			log.Info("ready")
		}
	}()
	return a.Run(ctx)
}

// A small fleet on a real Redis: two processes and two workers, in the
// personal mode on a Redis the bench starts, in the shared mode on one
// given by address, and with installation tags on a Redis Cluster given
// by its seeds. Every delivery arrives once, and every process holds its
// share of the connections.
func TestFleetScenario(t *testing.T) {
	redistest.Binary(t, "redis-server")
	t.Setenv(childEnv, "1")
	given := redistest.Start(t)
	cluster := redistest.StartCluster(t, 3, 0)
	for _, c := range []struct {
		name          string
		addrs         []string
		installations int
		expiry        int
		tags          string
	}{
		{"spawned redis", nil, 0, 0, ""},
		{"shared mode, kept messages", []string{"127.0.0.1:" + strconv.Itoa(given.Port)}, 3, 60, ""},
		{"cluster, installation tags", cluster.Seeds(), 6, 0, "installation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var log strings.Builder
			o := FleetOptions{
				RedisAddrs: c.addrs, Installations: c.installations, RedisTags: c.tags,
				Procs: 2, Conns: 300, Workers: 2, Channels: 10, Messages: 20, Rate: 500, Expiry: c.expiry,
				Drain: 20 * time.Second, Settle: time.Millisecond, Log: &log,
			}
			r, err := Fleet(ctx, o)
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			// 20 messages on 10 channels of 30 subscribers: 600 deliveries.
			if r.Expected != 600 || r.Delivered != 600 || r.Lost != 0 || r.Duplicates != 0 || r.Stray != 0 || r.Unparsed != 0 || r.Dropped != 0 || r.PublishErrors != 0 {
				t.Fatalf("got %+v", r)
			}
			if r.Latency.Samples != 600 || r.Latency.Max < r.Latency.P50 || r.ConnectRate <= 0 {
				t.Fatalf("got %+v", r)
			}
			if len(r.Warnings) > 0 {
				t.Errorf("the processes warned: %q", r.Warnings)
			}
			if len(r.PerProcess) != 2 {
				t.Fatalf("%d processes reported", len(r.PerProcess))
			}
			for i, p := range r.PerProcess {
				if p.Connections != 150 || p.WebSockets != 150 || p.RSSAfter <= 0 {
					t.Errorf("process %d: %+v; want 150 connections", i, p)
				}
			}
			var out strings.Builder
			WriteFleet(&out, r)
			t.Log("\n" + out.String())
			if !strings.Contains(out.String(), "600 of 600, lost 0, duplicated 0") {
				t.Errorf("report:\n%s", out.String())
			}
		})
	}
}

// The plan refuses a process or a worker with more connections than its
// descriptors allow, and spreads every channel over every process.
func TestPlanFleet(t *testing.T) {
	o := FleetOptions{Conns: 100000}.withDefaults()
	p, err := planFleet(o, 20000)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.workers) != 6 || p.workers[5][0]+p.workers[5][1] != 100000 {
		t.Fatalf("workers %v", p.workers)
	}
	for s, n := range p.perProc {
		if n < 16600 || n > 16733 { // within 0.4% of 16,667
			t.Errorf("process %d: %d connections", s, n)
		}
	}
	for ch := range 3 {
		seen := map[int]bool{}
		for i := ch; i < o.Conns; i += o.Channels {
			seen[fleetServer(i, o.Channels, o.Procs)] = true
		}
		if len(seen) != o.Procs {
			t.Errorf("channel %d on %d processes", ch, len(seen))
		}
	}
	for _, bad := range []FleetOptions{
		{Conns: 100000, Procs: 5}, // 20,000 a process
		{Conns: 100000, Workers: 5},
		{Conns: 3, Procs: 4}, // a process without connections
	} {
		if _, err := planFleet(bad.withDefaults(), 20000); err == nil {
			t.Errorf("%+v: planned", bad)
		}
	}
}
