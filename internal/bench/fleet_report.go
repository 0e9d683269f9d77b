package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteFleet writes a fleet result for people: a table of its figures,
// then one of its processes.
func WriteFleet(w io.Writer, r *FleetResult) {
	if w == nil {
		return
	}
	mode := "personal mode"
	if r.Installations > 0 {
		mode = fmt.Sprintf("shared mode, %d installations", r.Installations)
	}
	if r.Expiry > 0 {
		mode += fmt.Sprintf(", messages kept %d s", r.Expiry)
	}
	fmt.Fprintf(w, "fleet: %d WebSocket connections over %d pushpull processes and a publisher on Redis (%s), from %d worker processes; %d channels, %s, pings every %.0f s\n",
		r.Connections, r.Procs, r.Redis, r.Workers, r.Channels, mode, r.PingSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("connect", "%.1f s, %.0f connections/s; servers' CPU %.0f ms = %.1f us per connection", r.ConnectSeconds, r.ConnectRate, r.ConnectCPUMillis, r.ConnectCPUPerConn)
	settled := ""
	if !r.Settled {
		settled = " (still moving when the wait ended)"
	}
	row("servers' RSS", "%s -> %s: %.0f bytes per connection%s", mib(r.RSSBefore), mib(r.RSSAfter), r.BytesPerConn, settled)
	if r.KernelPerConn > 0 {
		row("kernel socket memory", "%.0f bytes per connection (half of both loopback ends)", r.KernelPerConn)
	}
	row("published", "%d messages at %.0f/s, %d errors", r.Messages, r.PublishRate, r.PublishErrors)
	row("deliveries", "%d of %d, lost %d, duplicated %d, stray %d, unparsed %d, connections dropped %d",
		r.Delivered, r.Expected, r.Lost, r.Duplicates, r.Stray, r.Unparsed, r.Dropped)
	l := r.Latency
	row("latency", "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms", l.P50, l.P90, l.P99, l.Max)
	row("delivery rate", "%.0f deliveries/s over %.2f s", r.DeliveriesPerSec, r.Seconds)
	row("servers' CPU", "%.0f ms (%.0f ms of it at rest) = %.2f ms per 1,000 deliveries (%d processes summed)", r.ServerCPUMillis, r.ServerIdleMillis, r.CPUPer1000, r.Procs)
	row("publisher's CPU", "%.0f ms (%.0f ms of it at rest) = %.0f us per publish", r.PublisherCPUMillis, r.PublisherIdleMillis, r.PublisherPerPub)
	row("Redis CPU", "%.1f ms (%.1f ms of it at rest) = %.1f us per publish, %.3f us per delivery",
		r.RedisCPUMillis, r.RedisIdleMillis, r.RedisPerPub, r.RedisPerDelivery)
	row("workers' CPU", "%.0f ms; other processes %.0f ms (%.0f%% of the machine)", r.WorkerCPUMillis, r.OtherCPUMillis, 100*r.OtherCPUShare)
	tw.Flush()
	if r.PublishError != "" {
		fmt.Fprintf(w, "  first publish error: %s\n", r.PublishError)
	}
	if r.OtherCPUShare > BusyMachine {
		fmt.Fprintf(w, "  WARNING: other processes used %.0f%% of the machine's CPU during the run; latencies are not the fleet's alone\n", 100*r.OtherCPUShare)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "  the processes logged:")
		for _, l := range r.Warnings {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  process\tpid\tconnections\tcounted\tRSS before\tRSS after\t")
	for i, p := range r.PerProcess {
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%s\t%s\t\n", i, p.PID, p.Connections, p.WebSockets, mib(p.RSSBefore), mib(p.RSSAfter))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
