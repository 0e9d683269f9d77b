package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/bench"
)

const benchUsage = `usage: pushpull bench idle|fanout|unicast|sweep|all|chaos|hostile|fleet [flags]

Measures a pushpull server on this machine: memory per idle WebSocket
(idle), delivery latency to many subscribers of one channel (fanout), and
server CPU per delivered message (unicast). chaos runs servers through
faults (restarts, kill -9, Redis killed, a process killed among two) while
subscribers resume by mid and drop their connections, and reports accepted,
missing, duplicated and backwards deliveries per fault. hostile attacks one
server (bodies that are not UTF-8, a flood of large client publishes,
connections following too many users, request bodies and WebSocket frames
trickled a byte a second) while a bystander subscribes and its backend
publishes to it, and reports per attack how it was refused, what the
bystander missed, and the server's memory peak against its store bound.
By default each scenario starts its own server (this executable, "serve") on
free loopback ports; with --pid, --sub and --pub it measures a running one
instead. sweep runs the fan-out at each of --sweep's subscriber counts and
prints (and with --plot draws, as SVG) latency percentiles against them.

fleet runs a deployment on this machine: --procs pushpull processes (6) in
Redis mode on one Redis (a redis-server it starts, or --redis-addr), each with
its own subscribe port, and a publisher-mode process; --conns WebSockets
(100,000) opened by worker processes (this executable again, at most 18,000
connections each) from many loopback source addresses and spread so that
every one of --channels channels (100) has subscribers on every process;
--messages (200) at --rate (20/s), each to one channel in turn. It reports
connect rate, the servers' memory per connection, delivery latency, lost and
duplicated deliveries, and the CPU of the servers, the publisher and Redis.

With --peer nchan, idle, fanout, unicast and all measure nginx with the nchan
module beside pushpull: the bench starts nginx itself (Debian's nginx and
libnginx-mod-nchan) with a configuration of its own on free loopback ports,
or takes a running one with --peer-pid, --peer-sub and --peer-pub. Each
scenario runs --runs times on each server, alternating, and prints per figure
each server's median and range and the ratio of the medians. --pin runs the
server on CPU 0 and the bench on CPU 1 (--pin both: unpinned, then pinned).

flags:
`

// runBench runs `pushpull bench SCENARIO [flags]`.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	var (
		o        bench.Options
		jsonOut  bool
		quiet    bool
		scenario string
	)
	fs.BoolVar(&o.Spawn, "spawn", true, "start the server (and redis-server with --redis) for each scenario, and stop it after")
	fs.BoolVar(&o.Redis, "redis", false, "spawned server stores in a Redis the bench starts (redis-server from PATH)")
	fs.IntVar(&o.Target.PID, "pid", 0, "pid of a running server to measure (implies --spawn=false)")
	fs.StringVar(&o.Target.SubURL, "sub", "", "subscribe URL of a running server, e.g. ws://127.0.0.1:8893/bitrix/subws/")
	fs.StringVar(&o.Target.PubURL, "pub", "", "publish URL of a running server, e.g. http://127.0.0.1:8895/bitrix/pub/")
	fs.StringVar(&o.Target.StatURL, "stat", "", "stat URL of a running server (default: /server-stat/ on the publish host)")
	fs.StringVar(&o.Key, "key", "", "security key: channel ids are signed with HMAC-SHA1")
	fs.IntVar(&o.Conns, "conns", bench.DefaultConns, "idle: WebSocket connections; hostile: slow-body and trickled-frame connections, 1000 unless given; fleet: 100,000 unless given")
	fs.IntVar(&o.Subs, "subs", bench.DefaultSubs, "fanout, unicast: subscribers")
	fs.IntVar(&o.Messages, "messages", 0, fmt.Sprintf("messages to publish (default fanout %d, unicast %d, fleet %d)", bench.DefaultFanoutMsgs, bench.DefaultUnicastMsgs, bench.DefaultFleetMessages))
	fs.Float64Var(&o.Rate, "rate", bench.DefaultFanoutRate, "fanout, fleet: publishes per second (fleet: 20 unless given)")
	fs.IntVar(&o.Concurrency, "concurrency", bench.DefaultConcurrency, "unicast: concurrent keep-alive publishers")
	fs.StringVar(&o.Mode, "mode", "text", "idle: the connections' protocol: text (version 3), binary (4) or jsonrpc (5)")
	fs.IntVar(&o.Batch, "batch", 1, "unicast: messages per publish request; above 1 they go as one protocol-4 RequestBatch (binaryMode=true), as the Bitrix backend sends them")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "how long to wait for deliveries after the last publish (fleet: 10s unless given)")
	fs.DurationVar(&o.Settle, "settle", 60*time.Second, "idle: longest wait for the server's memory to settle")
	fs.IntVar(&o.Channels, "channels", 1, "fanout: the subscribers' channels, round-robin; each message goes to one, in turn (fleet: 100 unless given)")
	fs.StringVar(&o.Transport, "transport", bench.TransportWebSocket, "fanout, unicast: how subscribers receive: websocket or longpoll (needs --expiry)")
	fs.DurationVar(&o.Duration, "duration", 0, "unicast: publish for this long instead of a count of --messages")
	fs.IntVar(&o.Expiry, "expiry", 0, "Message-Expiry of each publish, in seconds: pushpull keeps the messages for clients that come back (0: delivered only to those connected); a started nchan keeps them as long, up to 10,000 per channel")
	fs.StringVar(&o.Peer, "peer", "", "also measure this server, side by side: nchan (nginx with the nchan module, started by the bench)")
	fs.StringVar(&o.PeerTarget.SubURL, "peer-sub", "", "subscribe URL of a running nchan, e.g. ws://127.0.0.1:8080/sub/ (the channel goes in ?CHANNEL_ID=)")
	fs.StringVar(&o.PeerTarget.PubURL, "peer-pub", "", "publish URL of a running nchan, e.g. http://127.0.0.1:8081/pub/ (the channel goes in ?CHANNEL_ID=)")
	fs.IntVar(&o.PeerTarget.PID, "peer-pid", 0, "pid of a running nchan's nginx master: its CPU and memory and its workers' are measured")
	fs.StringVar(&o.PeerTarget.StatURL, "peer-stat", "", "nchan_stub_status URL of a running nchan, to wait for its subscribers (default: wait a second)")
	fs.StringVar(&o.Nginx, "nginx", "", "nginx binary for --peer nchan (default: nginx from PATH or /usr/sbin/nginx)")
	fs.StringVar(&o.Module, "nchan-module", "", "nchan module for --peer nchan (default: where Debian's libnginx-mod-nchan puts it)")
	fs.IntVar(&o.Runs, "runs", bench.DefaultRuns, "with --peer: runs of each server, alternating")
	pin := pinFlag{}
	fs.Var(&pin, "pin", "run a started server on CPU 0 and the bench on CPU 1; --pin both: unpinned, then pinned (with --peer)")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	sweepSubs := "100,300,1000,3000"
	fs.StringVar(&sweepSubs, "sweep", sweepSubs, "sweep: the subscriber counts, comma-separated")
	var plot string
	fs.StringVar(&plot, "plot", "", "sweep: also write the latency plot to this SVG file")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	var chaos bench.ChaosOptions
	var faults string
	fs.StringVar(&faults, "faults", "", "chaos: comma-separated runs (default all: "+strings.Join(bench.ChaosFaults, ",")+")")
	fs.DurationVar(&chaos.Phase, "phase", 8*time.Second, "chaos: how long each run publishes; hostile: how long each case attacks")
	var hostile bench.HostileOptions
	var cases string
	fs.StringVar(&cases, "cases", "", "hostile: comma-separated cases (default all: "+strings.Join(bench.HostileCases, ",")+")")
	fs.IntVar(&hostile.Attackers, "attackers", 16, "hostile: store-flood clients")
	fs.IntVar(&hostile.Followers, "followers", 20, "hostile: follow-flood connections")

	var fleet bench.FleetOptions
	fs.IntVar(&fleet.Procs, "procs", bench.DefaultFleetProcs, "fleet: subscriber processes")
	fs.IntVar(&fleet.Workers, "workers", 0, fmt.Sprintf("fleet: load-generating worker processes (default one per %d connections)", bench.FleetWorkerConns))
	fs.IntVar(&fleet.Installations, "installations", 0, "fleet: run the servers in the shared mode with this many clientIds (security.clients), the channels spread over them")
	fs.DurationVar(&fleet.PingInterval, "ping-interval", 0, "fleet: the servers' websocket.pingInterval (default the server's 30s); each process pings all its connections at once every interval, so a run longer than it meets that burst")
	fs.StringVar(&fleet.RedisTags, "redis-tags", "", "fleet: the servers' storage.tags: installation gives each of --installations its own hash tag, spread over a Redis Cluster's masters")
	var redisAddrs string
	fs.StringVar(&redisAddrs, "redis-addr", "", "fleet: a running Redis, host:port, or a Redis Cluster's seeds, comma-separated (default: start a redis-server)")

	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		scenario, args = args[0], args[1:]
	}
	if scenario == "fleet-worker" {
		// This executable run by a fleet as one of its workers.
		return bench.RunFleetWorker(ctx, os.Stdin, stdout)
	}
	args = joinPinArg(args)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if scenario == "" && fs.NArg() > 0 {
		scenario = fs.Arg(0)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if o.Target.PID != 0 && !explicit["spawn"] {
		o.Spawn = false
	}
	if !o.Spawn {
		if o.Redis {
			return errors.New("bench: --redis starts its own Redis; it needs --spawn")
		}
		if o.Target.StatURL == "" && o.Target.PubURL != "" {
			o.Target.StatURL = statURLFor(o.Target.PubURL)
		}
	}
	if !quiet {
		o.Log = os.Stderr
	}
	if _, err := bench.RaiseFileLimit(); err != nil {
		return fmt.Errorf("bench: raise the open file limit: %w", err)
	}
	peer := o.Peer != "" || o.PeerTarget.PID != 0 || o.PeerTarget.SubURL != "" || o.PeerTarget.PubURL != ""
	if err := checkPeerFlags(&o, peer, pin, explicit); err != nil {
		return err
	}
	o.Pin = pin.on && !pin.both
	if o.Transport != bench.TransportWebSocket && o.Transport != bench.TransportLongPoll {
		return fmt.Errorf("bench: --transport is websocket or longpoll, not %q", o.Transport)
	}
	if scenario == "sweep" {
		return runSweep(ctx, o, sweepSubs, plot, peer, jsonOut, stdout)
	}
	if peer {
		return runCompare(ctx, o, scenario, pin, jsonOut, stdout)
	}

	var (
		result any
		err    error
	)
	text := stdout
	if jsonOut {
		text = nil
	}
	switch scenario {
	case "idle":
		var r *bench.IdleResult
		if r, err = bench.Idle(ctx, o); r != nil {
			result = r
			bench.WriteIdle(text, r)
		}
	case "fanout":
		var r *bench.DeliveryResult
		if r, err = bench.Fanout(ctx, o); r != nil {
			result = r
			bench.WriteDelivery(text, r)
		}
	case "unicast":
		var r *bench.DeliveryResult
		if r, err = bench.Unicast(ctx, o); r != nil {
			result = r
			bench.WriteDelivery(text, r)
		}
	case "chaos":
		chaos.Executable = o.Executable
		if faults != "" {
			chaos.Faults = strings.Split(faults, ",")
		}
		if !quiet {
			chaos.Log = os.Stderr
		}
		rows := bench.Chaos(ctx, chaos)
		result = rows
		bench.WriteChaos(text, rows)
		for _, r := range rows {
			if r.Error != "" || r.Missing+r.Duplicated+r.Backwards > 0 {
				err = errors.New("a run lost, repeated or reordered messages, or did not finish")
			}
		}
	case "hostile":
		hostile.Executable, hostile.Phase = o.Executable, chaos.Phase
		if explicit["conns"] {
			hostile.Conns = o.Conns
		}
		if cases != "" {
			hostile.Cases = strings.Split(cases, ",")
		}
		if !quiet {
			hostile.Log = os.Stderr
		}
		r := bench.Hostile(ctx, hostile)
		result = r
		bench.WriteHostile(text, r)
		switch {
		case r.Error != "":
			err = errors.New(r.Error)
		case r.Failed():
			err = errors.New("the bystander was hurt (missed, repeated, reordered or poisoned messages, or publishes refused), or a case did not finish")
		}
	case "fleet":
		fleet.Executable, fleet.Key, fleet.Log = o.Executable, o.Key, o.Log
		fleet.Settle = o.Settle
		if explicit["rate"] {
			fleet.Rate = o.Rate
		}
		if explicit["conns"] {
			fleet.Conns = o.Conns
		}
		if explicit["channels"] {
			fleet.Channels = o.Channels
		}
		if explicit["drain"] {
			fleet.Drain = o.Drain
		}
		fleet.Expiry = o.Expiry
		fleet.Messages = o.Messages
		if redisAddrs != "" {
			fleet.RedisAddrs = strings.Split(redisAddrs, ",")
		}
		var r *bench.FleetResult
		if r, err = bench.Fleet(ctx, fleet); r != nil {
			result = r
			bench.WriteFleet(text, r)
			if err == nil && r.Lost+r.Duplicates > 0 {
				err = fmt.Errorf("%d deliveries lost, %d duplicated", r.Lost, r.Duplicates)
			}
		}
	case "all":
		rep := bench.All(ctx, o, text)
		result = rep
		if text != nil {
			bench.WriteSummary(text, rep)
		}
		if len(rep.Errors) > 0 {
			err = fmt.Errorf("%d scenario(s) did not finish", len(rep.Errors))
		}
	case "":
		fs.Usage()
		return errors.New("bench: name a scenario: idle, fanout, unicast, sweep, all, chaos, hostile or fleet")
	default:
		fs.Usage()
		return fmt.Errorf("bench: unknown scenario %q", scenario)
	}
	if jsonOut && result != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(result); jerr != nil && err == nil {
			err = jerr
		}
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", scenario, err)
	}
	return nil
}

// pinFlag is --pin: a bool flag ("--pin") that also takes "both".
type pinFlag struct{ on, both bool }

func (p *pinFlag) String() string {
	switch {
	case p == nil || !p.on:
		return "off"
	case p.both:
		return "both"
	}
	return "on"
}

func (p *pinFlag) Set(v string) error {
	switch strings.ToLower(v) {
	case "true", "on", "1":
		*p = pinFlag{on: true}
	case "false", "off", "0":
		*p = pinFlag{}
	case "both":
		*p = pinFlag{on: true, both: true}
	default:
		return fmt.Errorf("want on, off or both")
	}
	return nil
}

func (p *pinFlag) IsBoolFlag() bool { return true }

// joinPinArg turns "--pin both" (or on, off) into "--pin=both": a bool flag
// takes no separate value.
func joinPinArg(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--pin" || a == "-pin") && i+1 < len(args) {
			switch args[i+1] {
			case "both", "on", "off":
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		if a == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, a)
	}
	return out
}

// checkPeerFlags refuses the combinations the side-by-side runs cannot do.
func checkPeerFlags(o *bench.Options, peer bool, pin pinFlag, explicit map[string]bool) error {
	if o.Peer != "" && o.Peer != bench.KindNchan {
		return fmt.Errorf("bench: --peer %q: the peer it can run is %s", o.Peer, bench.KindNchan)
	}
	if t := o.PeerTarget; t.PID != 0 || t.SubURL != "" || t.PubURL != "" {
		o.PeerTarget.Kind = bench.KindNchan // the one peer there is
	}
	if pin.on && !o.Spawn {
		return errors.New("bench: --pin runs the servers the bench starts; it needs --spawn")
	}
	if pin.on && runtime.NumCPU() < 2 {
		return errors.New("bench: --pin needs two CPUs")
	}
	if !peer {
		if pin.both {
			return errors.New("bench: --pin both compares a server with another: it needs --peer")
		}
		if explicit["runs"] {
			return errors.New("bench: --runs alternates pushpull and a peer: it needs --peer")
		}
		return nil
	}
	if o.Redis {
		return errors.New("bench: --peer compares pushpull's memory store with nchan's; leave out --redis")
	}
	if o.Runs < 1 {
		return errors.New("bench: --runs must be at least 1")
	}
	return nil
}

// runCompare runs the side-by-side scenarios and prints their tables.
func runCompare(ctx context.Context, o bench.Options, scenario string, pin pinFlag, jsonOut bool, stdout io.Writer) error {
	var scenarios []string
	switch scenario {
	case "idle", "fanout", "unicast":
		scenarios = []string{scenario}
	case "all":
		scenarios = bench.CompareScenarios
	case "":
		return errors.New("bench: name a scenario: idle, fanout, unicast or all")
	default:
		return fmt.Errorf("bench: --peer runs idle, fanout, unicast or all, not %q", scenario)
	}
	pins := []bool{pin.on}
	if pin.both {
		pins = []bool{false, true}
	}
	text := stdout
	if jsonOut {
		text = nil
	}
	var all []*bench.Comparison
	failed := 0
	for _, pinned := range pins {
		for _, sc := range scenarios {
			c := bench.Compare(ctx, o, sc, pinned)
			all = append(all, c)
			bench.WriteComparison(text, c)
			if len(c.Errors) > 0 {
				failed++
			}
		}
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("bench %s: %d comparison(s) had runs that did not finish", scenario, failed)
	}
	return nil
}

// statURLFor guesses the stat route of a server from its publish URL: the
// stock /server-stat/ on the same host and port.
func statURLFor(pubURL string) string {
	u, err := url.Parse(pubURL)
	if err != nil {
		return ""
	}
	u.Path, u.RawPath, u.RawQuery = "/server-stat/", "", ""
	return u.String()
}

// runSweep runs `pushpull bench sweep`.
func runSweep(ctx context.Context, o bench.Options, list, plot string, peer, jsonOut bool, stdout io.Writer) error {
	var subs []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bench: --sweep wants positive subscriber counts, comma-separated; got %q", list)
		}
		subs = append(subs, n)
	}
	sw := bench.FanoutSweep(ctx, o, subs, peer)
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sw); err != nil {
			return err
		}
	} else {
		bench.WriteSweep(stdout, sw)
	}
	if plot != "" {
		f, err := os.Create(plot)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := bench.PlotSweep(f, sw); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if len(sw.Errors) > 0 {
		return fmt.Errorf("bench sweep: %d run(s) did not finish", len(sw.Errors))
	}
	return nil
}
