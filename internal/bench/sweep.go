package bench

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// SweepPoint is one server's fan-out latency at one subscriber count,
// over its runs.
type SweepPoint struct {
	Subscribers int    `json:"subscribers"`
	Server      string `json:"server"` // pushpull or the peer
	P50         Spread `json:"p50_ms"`
	P90         Spread `json:"p90_ms"`
	P99         Spread `json:"p99_ms"`
	CPUPer1000  Spread `json:"server_cpu_ms_per_1000_deliveries"`
	Lost        int64  `json:"lost"` // over its runs
}

// Sweep is the fan-out scenario at several subscriber counts: delivery
// latency percentiles against subscribers, per server.
type Sweep struct {
	Setup  string       `json:"setup"`
	Pinned bool         `json:"pinned"`
	Points []SweepPoint `json:"points"`
	Errors []string     `json:"errors,omitempty"`
}

// FanoutSweep runs the fan-out scenario at each subscriber count, o.Runs
// times on each server: with peer, alternating with the peer (o.Peer or
// o.PeerTarget) as Compare does.
func FanoutSweep(ctx context.Context, o Options, subs []int, peer bool) *Sweep {
	o.Runs = cmp.Or(o.Runs, DefaultRuns)
	sw := &Sweep{Pinned: o.Pin}
	for _, n := range subs {
		if ctx.Err() != nil {
			break
		}
		run := o
		run.Subs = n
		if sw.Setup == "" {
			sw.Setup = strings.Replace(run.setup("fanout"), fmt.Sprintf("%d subscribers", n), "subscribers", 1)
		}
		var c *Comparison
		if peer {
			c = Compare(ctx, run, "fanout", o.Pin)
		} else {
			c = &Comparison{Peer: KindPushpull}
			for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
				res, err := run.runScenario(ctx, "fanout")
				if err != nil {
					c.Errors = append(c.Errors, fmt.Sprintf("pushpull run %d: %v", i+1, err))
					continue
				}
				c.PushpullRuns = append(c.PushpullRuns, res)
			}
		}
		for _, e := range c.Errors {
			sw.Errors = append(sw.Errors, fmt.Sprintf("%d subscribers: %s", n, e))
		}
		sw.Points = append(sw.Points, sweepPoint(n, KindPushpull, c.PushpullRuns))
		if peer {
			sw.Points = append(sw.Points, sweepPoint(n, c.Peer, c.PeerRuns))
		}
	}
	return sw
}

func sweepPoint(subs int, server string, runs []any) SweepPoint {
	p := SweepPoint{Subscribers: subs, Server: server}
	var p50, p90, p99, cpu []float64
	for _, r := range runs {
		d, ok := r.(*DeliveryResult)
		if !ok {
			continue
		}
		p50, p90, p99 = append(p50, d.Latency.P50), append(p90, d.Latency.P90), append(p99, d.Latency.P99)
		cpu = append(cpu, d.CPUPer1000)
		p.Lost += d.Lost
	}
	p.P50, p.P90, p.P99, p.CPUPer1000 = SpreadOf(p50), SpreadOf(p90), SpreadOf(p99), SpreadOf(cpu)
	return p
}

// WriteSweep prints a sweep as a table.
func WriteSweep(w io.Writer, s *Sweep) {
	if w == nil {
		return
	}
	pinning := "unpinned"
	if s.Pinned {
		pinning = "pinned"
	}
	fmt.Fprintf(w, "fan-out latency against subscribers (%s): %s\n", pinning, s.Setup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIBERS\tSERVER\tRUNS\tp50 ms\tp90 ms\tp99 ms\tCPU ms per 1,000\tLOST")
	for _, p := range s.Points {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", p.Subscribers, p.Server, p.P50.N, p.P50, p.P90, p.P99, p.CPUPer1000, p.Lost)
	}
	tw.Flush()
	for _, e := range s.Errors {
		fmt.Fprintf(w, "  not measured: %s\n", e)
	}
	fmt.Fprintln(w)
}

// PlotSweep draws the medians of a sweep as an SVG line chart: latency
// (ms, logarithmic) against subscribers (logarithmic), a line per server
// and percentile.
func PlotSweep(w io.Writer, s *Sweep) error {
	const (
		width, height = 760, 460
		left, right   = 70, 190
		top, bottom   = 40, 60
	)
	var xs []int
	lo, hi := math.Inf(1), math.Inf(-1)
	servers := []string{}
	for _, p := range s.Points {
		if p.P50.N == 0 {
			continue
		}
		if len(xs) == 0 || xs[len(xs)-1] != p.Subscribers {
			xs = append(xs, p.Subscribers)
		}
		if !slices.Contains(servers, p.Server) {
			servers = append(servers, p.Server)
		}
		for _, v := range []float64{p.P50.Median, p.P90.Median, p.P99.Median} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if len(xs) == 0 || math.IsInf(lo, 1) {
		return fmt.Errorf("bench: nothing to plot: no run finished")
	}
	ylo, yhi := math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if yhi <= ylo {
		yhi = ylo * 10
	}
	xlo, xhi := math.Log10(float64(xs[0])), math.Log10(float64(xs[len(xs)-1]))
	if xhi <= xlo {
		xlo, xhi = xlo-0.5, xhi+0.5
	}
	px := func(n int) float64 {
		return left + (math.Log10(float64(n))-xlo)/(xhi-xlo)*(width-left-right)
	}
	py := func(v float64) float64 {
		return height - bottom - (math.Log10(v)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo))*(height-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	title := "Fan-out delivery latency against subscribers"
	if s.Pinned {
		title += " (pinned)"
	}
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	// Axes and grid.
	for v := ylo; v <= yhi*1.0001; v *= 10 {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, width-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, num(v))
	}
	for _, n := range xs {
		x := px(n)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x, top, x, height-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, height-bottom+18, n)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, height-bottom, width-right, height-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, height-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers of one channel</text>`+"\n", (left+width-right)/2, height-16)
	fmt.Fprintf(&b, `<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">delivery latency (ms)</text>`+"\n", (top+height-bottom)/2, (top+height-bottom)/2)
	colors := []string{"#1f63b4", "#e07b00", "#2a9d3f", "#b4281f"}
	percentiles := []struct {
		name, dash string
		of         func(SweepPoint) float64
	}{
		{"p50", "", func(p SweepPoint) float64 { return p.P50.Median }},
		{"p90", ` stroke-dasharray="6 3"`, func(p SweepPoint) float64 { return p.P90.Median }},
		{"p99", ` stroke-dasharray="2 3"`, func(p SweepPoint) float64 { return p.P99.Median }},
	}
	ly := top + 10
	for si, server := range servers {
		color := colors[si%len(colors)]
		for _, pc := range percentiles {
			var pts, dots strings.Builder
			for _, p := range s.Points {
				v := pc.of(p)
				if p.Server != server || p.P50.N == 0 || v <= 0 {
					continue
				}
				x, y := px(p.Subscribers), py(v)
				fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
				fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", x, y, color)
			}
			if pts.Len() == 0 {
				continue
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.TrimSpace(pts.String()), color, pc.dash)
			b.WriteString(dots.String())
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", width-right+16, ly, width-right+46, ly, color, pc.dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s %s</text>`+"\n", width-right+52, ly+4, html.EscapeString(server), pc.name)
			ly += 18
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
