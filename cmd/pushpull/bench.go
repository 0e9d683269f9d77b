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
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/bench"
)

const benchUsage = `usage: pushpull bench idle|fanout|unicast|all|chaos|hostile [flags]

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
instead.

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
	fs.IntVar(&o.Conns, "conns", bench.DefaultConns, "idle: WebSocket connections; hostile: slow-body and trickled-frame connections, 1000 unless given")
	fs.IntVar(&o.Subs, "subs", bench.DefaultSubs, "fanout, unicast: subscribers")
	fs.IntVar(&o.Messages, "messages", 0, fmt.Sprintf("messages to publish (default fanout %d, unicast %d)", bench.DefaultFanoutMsgs, bench.DefaultUnicastMsgs))
	fs.Float64Var(&o.Rate, "rate", bench.DefaultFanoutRate, "fanout: publishes per second")
	fs.IntVar(&o.Concurrency, "concurrency", bench.DefaultConcurrency, "unicast: concurrent keep-alive publishers")
	fs.StringVar(&o.Mode, "mode", "text", "idle: the connections' protocol: text (version 3), binary (4) or jsonrpc (5)")
	fs.IntVar(&o.Batch, "batch", 1, "unicast: messages per publish request; above 1 they go as one protocol-4 RequestBatch (binaryMode=true), as the Bitrix backend sends them")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "how long to wait for deliveries after the last publish")
	fs.DurationVar(&o.Settle, "settle", 60*time.Second, "idle: longest wait for the server's memory to settle")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON")
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

	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		scenario, args = args[0], args[1:]
	}
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
		return errors.New("bench: name a scenario: idle, fanout, unicast, all, chaos or hostile")
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
