package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Targets the server is held to (2 cores, one process, loopback).
const (
	TargetBytesPerConn   = 1536 // idle WebSocket, at 19,000 connections
	TargetCPUPer1000     = 15.0 // ms of server CPU per 1,000 unicast deliveries
	TargetFanoutP99      = 5.0  // ms, 1,000 subscribers, history on
	TargetRedisP50Excess = 1.0  // ms over the memory store's fan-out p50

	// BusyMachine is the share of the machine's CPU other processes may
	// take during a run before the bench warns that it measured them too.
	BusyMachine = 0.10
)

// Report is what `bench all` measured.
type Report struct {
	Idle         *IdleResult       `json:"idle,omitempty"`
	Fanout       *DeliveryResult   `json:"fanout,omitempty"`
	Unicast      *DeliveryResult   `json:"unicast,omitempty"`
	FanoutMemory *DeliveryResult   `json:"fanout_memory,omitempty"` // the baseline of a Redis run
	Errors       map[string]string `json:"errors,omitempty"`        // scenario -> why it did not finish
	Checks       []Check           `json:"checks"`
}

// Check is one figure against its target.
type Check struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Limit    float64 `json:"limit"`
	Measured string  `json:"measured"`
	Target   string  `json:"target"`
	Pass     bool    `json:"pass"`
	Note     string  `json:"note,omitempty"`
}

// busyNote warns that a run shared the machine with other work.
func busyNote(r *DeliveryResult) string {
	if r.OtherCPUShare > BusyMachine {
		return fmt.Sprintf("other processes took %.0f%% of the CPU", 100*r.OtherCPUShare)
	}
	return ""
}

// All runs idle, fanout and unicast, each against a fresh server when
// spawning, writing each scenario's figures to w as it finishes. With Redis
// (and spawning) it first runs the fan-out on the memory store as the
// baseline of the Redis latency target. A scenario that fails is reported
// and the others still run.
func All(ctx context.Context, o Options, w io.Writer) *Report {
	rep := &Report{Errors: map[string]string{}}
	fail := func(name string, err error) {
		rep.Errors[name] = err.Error()
		if w != nil {
			fmt.Fprintf(w, "%s: %v\n\n", name, err)
		}
	}
	if o.Redis && o.Spawn {
		r, err := o.fanout(ctx, false)
		if err != nil {
			fail("fanout_memory", err)
		} else {
			rep.FanoutMemory = r
			WriteDelivery(w, r)
		}
	}
	if r, err := Idle(ctx, o); err != nil {
		fail("idle", err)
	} else {
		rep.Idle = r
		WriteIdle(w, r)
	}
	if r, err := o.fanout(ctx, o.Redis); err != nil {
		fail("fanout", err)
	} else {
		rep.Fanout = r
		WriteDelivery(w, r)
	}
	if r, err := o.unicast(ctx, o.Redis); err != nil {
		fail("unicast", err)
	} else {
		rep.Unicast = r
		WriteDelivery(w, r)
	}
	rep.Checks = rep.check()
	return rep
}

func (rep *Report) check() []Check {
	var cs []Check
	if r := rep.Idle; r != nil {
		cs = append(cs, Check{
			Name:     fmt.Sprintf("idle: server memory per WebSocket (%d conns, %s)", r.Connections, r.Storage),
			Value:    r.BytesPerConn,
			Limit:    TargetBytesPerConn,
			Measured: fmt.Sprintf("%.0f B", r.BytesPerConn),
			Target:   "<= 1536 B",
			Pass:     r.BytesPerConn <= TargetBytesPerConn && r.Dropped == 0,
		})
	}
	if r := rep.Unicast; r != nil {
		cs = append(cs, Check{
			Name:     fmt.Sprintf("unicast: server CPU per 1,000 deliveries (%s)", r.Storage),
			Value:    r.CPUPer1000,
			Limit:    TargetCPUPer1000,
			Measured: fmt.Sprintf("%.2f ms", r.CPUPer1000),
			Target:   "<= 15 ms",
			Pass:     r.CPUPer1000 <= TargetCPUPer1000 && r.Delivered > 0,
			Note:     busyNote(r),
		})
	}
	if r := rep.Fanout; r != nil {
		cs = append(cs, Check{
			Name:     fmt.Sprintf("fanout: p99 latency (%d subs, %s)", r.Subscribers, r.Storage),
			Value:    r.Latency.P99,
			Limit:    TargetFanoutP99,
			Measured: fmt.Sprintf("%.2f ms", r.Latency.P99),
			Target:   "<= 5 ms",
			Pass:     r.Latency.P99 <= TargetFanoutP99 && r.Delivered > 0,
			Note:     busyNote(r),
		}, Check{
			Name:     fmt.Sprintf("fanout: lost of %d (%s)", r.Expected, r.Storage),
			Value:    float64(r.Lost),
			Measured: fmt.Sprint(r.Lost),
			Target:   "0",
			Pass:     r.Lost == 0,
		})
		if b := rep.FanoutMemory; b != nil {
			d := r.Latency.P50 - b.Latency.P50
			cs = append(cs, Check{
				Name:     fmt.Sprintf("fanout: p50 %s - p50 memory", r.Storage),
				Value:    d,
				Limit:    TargetRedisP50Excess,
				Measured: fmt.Sprintf("%+.2f ms (%.2f vs %.2f)", d, r.Latency.P50, b.Latency.P50),
				Target:   "<= +1 ms",
				Pass:     d <= TargetRedisP50Excess,
				Note:     cmp.Or(busyNote(r), busyNote(b)),
			})
		}
	}
	return cs
}

// WriteSummary writes the checks as a table.
func WriteSummary(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tMEASURED\tTARGET\tRESULT\tNOTE")
	for _, c := range rep.Checks {
		res := "ok"
		if !c.Pass {
			res = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Measured, c.Target, res, c.Note)
	}
	for _, name := range []string{"fanout_memory", "idle", "fanout", "unicast"} {
		if e, ok := rep.Errors[name]; ok {
			fmt.Fprintf(tw, "%s\tnot measured\t\t%s\n", name, firstLine(e))
		}
	}
	tw.Flush()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// serverLabel names the server of a result: pushpull's store, or the peer
// and its workers.
func serverLabel(server, storage string, workers int) string {
	switch server {
	case "", KindPushpull:
		return storage + " store"
	case KindNchan:
		if workers > 0 {
			return "nchan, " + nginxWorkers(workers)
		}
	}
	return server
}

// WriteIdle writes an idle result for people.
func WriteIdle(w io.Writer, r *IdleResult) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "idle (%s): %d WebSocket connections, opened in %.1fs", serverLabel(r.Server, r.Storage, r.Workers), r.Connections, r.ConnectSeconds)
	if r.ServerWebSockets >= 0 {
		fmt.Fprintf(w, "; server counts %d", r.ServerWebSockets)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  server RSS %s -> %s: %.0f bytes (%.2f KiB) per connection; %d threads\n",
		mib(r.RSSBefore), mib(r.RSSAfter), r.BytesPerConn, r.BytesPerConn/1024, r.Threads)
	if r.KernelPerConn > 0 {
		fmt.Fprintf(w, "  kernel socket memory (socket, inode, file, dentry, epoll objects, TCP buffers; half of both loopback ends): %.0f bytes per connection\n", r.KernelPerConn)
	}
	if r.PSSAfter > 0 {
		fmt.Fprintf(w, "  proportional set size (shared pages counted once) %s -> %s: %.0f bytes per connection\n",
			mib(r.PSSBefore), mib(r.PSSAfter), r.PSSPerConn)
	}
	if !r.Settled {
		fmt.Fprintln(w, "  (RSS was still moving when the wait ended)")
	}
	if r.Dropped > 0 {
		fmt.Fprintf(w, "  the server dropped %d connections\n", r.Dropped)
	}
	fmt.Fprintln(w)
}

// WriteDelivery writes a fanout or unicast result for people.
func WriteDelivery(w io.Writer, r *DeliveryResult) {
	if w == nil {
		return
	}
	subs := fmt.Sprintf("%d subscribers", r.Subscribers)
	if r.Channels > 1 && r.Channels < r.Subscribers {
		subs += fmt.Sprintf(" on %d channels", r.Channels)
	}
	fmt.Fprintf(w, "%s (%s): %s, %d messages, %.0f publishes/s\n",
		r.Scenario, serverLabel(r.Server, r.Storage, r.Workers), subs, r.Messages, r.PublishRate)
	fmt.Fprintf(w, "  delivered %d of %d, lost %d, duplicates %d", r.Delivered, r.Expected, r.Lost, r.Duplicates)
	if r.Stray > 0 || r.Unparsed > 0 || r.Dropped > 0 {
		fmt.Fprintf(w, ", stray %d, unparsed %d, subscribers dropped %d", r.Stray, r.Unparsed, r.Dropped)
	}
	fmt.Fprintln(w)
	if r.PublishErrors > 0 {
		fmt.Fprintf(w, "  publish errors %d (first: %s)\n", r.PublishErrors, r.PublishError)
	}
	l := r.Latency
	fmt.Fprintf(w, "  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", l.P50, l.P90, l.P99, l.Max)
	fmt.Fprintf(w, "  %.0f deliveries/s over %.2fs; server CPU %.0f ms = %.2f ms per 1,000 deliveries\n",
		r.DeliveriesPerSec, r.Seconds, r.ServerCPUMillis, r.CPUPer1000)
	fmt.Fprintf(w, "  CPU meanwhile: bench %.0f ms", r.ClientCPUMillis)
	if r.Storage == "redis" {
		fmt.Fprintf(w, ", redis-server %.0f ms", r.RedisCPUMillis)
	}
	fmt.Fprintf(w, ", other processes %.0f ms\n", r.OtherCPUMillis)
	if r.OtherCPUShare > BusyMachine {
		fmt.Fprintf(w, "  WARNING: other processes used %.0f%% of the machine's CPU during the run; latencies are not the server's alone\n",
			100*r.OtherCPUShare)
	}
	fmt.Fprintln(w)
}

func nginxWorkers(n int) string {
	if n == 1 {
		return "1 nginx worker"
	}
	return fmt.Sprintf("%d nginx workers", n)
}
