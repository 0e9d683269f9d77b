package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// DefaultRuns is how many times Compare runs each server.
const DefaultRuns = 3

// Comparison is one scenario measured on pushpull and on a peer server in
// alternating runs (pushpull, peer, pushpull, peer, ...), each on a fresh
// server when the bench starts them, so that a change in the machine's
// load falls on both alike.
type Comparison struct {
	Scenario string `json:"scenario"`
	Setup    string `json:"setup"` // what the runs did, in words
	Peer     string `json:"peer"`
	Pinned   bool   `json:"pinned"` // servers on CPU 0, the bench on CPU 1
	Runs     int    `json:"runs"`   // of each server
	// PeerWorkers is how many nginx workers the peer ran (0 unknown).
	PeerWorkers int          `json:"peer_workers,omitempty"`
	Rows        []CompareRow `json:"rows"`
	// Each run's result, *DeliveryResult or *IdleResult, in run order.
	PushpullRuns []any    `json:"pushpull_runs"`
	PeerRuns     []any    `json:"peer_runs"`
	Errors       []string `json:"errors,omitempty"` // runs that did not finish
}

// CompareRow is one figure of both servers over their runs.
type CompareRow struct {
	Figure   string `json:"figure"`
	Pushpull Spread `json:"pushpull"`
	Peer     Spread `json:"peer"`
	// Ratio is the pushpull median over the peer's: below 1 pushpull
	// spends less (or, for a rate, achieves less). 0 when either has no
	// runs, the peer's median is 0, or the figure is context (losses,
	// the other processes' share of the CPU).
	Ratio float64 `json:"ratio"`
}

// Spread is a figure's median and range over runs.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"runs"`
}

// SpreadOf returns the median (the mean of the middle two for an even
// count), minimum and maximum of values.
func SpreadOf(values []float64) Spread {
	if len(values) == 0 {
		return Spread{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Spread{Median: med, Min: v[0], Max: v[n-1], N: n}
}

// ratio is a/b for CompareRow.Ratio.
func ratio(a, b Spread) float64 {
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return 0
	}
	return a.Median / b.Median
}

// figure is one named number of a run. A context figure (losses, what
// else ran) is shown without a ratio: it says how far the others hold.
type figure struct {
	name    string
	value   float64
	context bool
}

// figuresOf returns the figures a result is compared by, in table order.
func figuresOf(res any) []figure {
	switch r := res.(type) {
	case *DeliveryResult:
		return []figure{
			{"latency p50 (ms)", r.Latency.P50, false},
			{"latency p99 (ms)", r.Latency.P99, false},
			{"server CPU per 1,000 deliveries (ms)", r.CPUPer1000, false},
			{"server CPU (ms)", r.ServerCPUMillis, false},
			{"deliveries per second", r.DeliveriesPerSec, false},
			{"delivered", float64(r.Delivered), false},
			{"lost", float64(r.Lost), true},
			{"other processes' CPU share (%)", 100 * r.OtherCPUShare, true},
		}
	case *IdleResult:
		return []figure{
			{"RSS per connection (bytes)", r.BytesPerConn, false},
			{"PSS per connection (bytes)", r.PSSPerConn, false},
			{"kernel socket memory per connection (bytes)", r.KernelPerConn, false},
			{"RSS before (MiB)", float64(r.RSSBefore) / (1 << 20), false},
			{"RSS after (MiB)", float64(r.RSSAfter) / (1 << 20), false},
			{"dropped", float64(r.Dropped), true},
		}
	}
	return nil
}

// compareRows builds the table from each server's results.
func compareRows(pushpull, peer []any) []CompareRow {
	var names []string
	values := map[string][2][]float64{}
	context := map[string]bool{}
	for side, results := range [2][]any{pushpull, peer} {
		for _, res := range results {
			for _, f := range figuresOf(res) {
				v, ok := values[f.name]
				if !ok {
					names = append(names, f.name)
					context[f.name] = f.context
				}
				v[side] = append(v[side], f.value)
				values[f.name] = v
			}
		}
	}
	rows := make([]CompareRow, 0, len(names))
	for _, name := range names {
		v := values[name]
		row := CompareRow{Figure: name, Pushpull: SpreadOf(v[0]), Peer: SpreadOf(v[1])}
		if !context[name] {
			row.Ratio = ratio(row.Pushpull, row.Peer)
		}
		rows = append(rows, row)
	}
	return rows
}

// CompareScenarios are the scenarios Compare runs.
var CompareScenarios = []string{"idle", "fanout", "unicast"}

// Compare runs scenario (idle, fanout or unicast) o.Runs times on pushpull
// and as often on the peer (o.Peer, or the running one in o.PeerTarget),
// alternating, pinned or not, and tabulates each figure. A run that fails
// is reported and left out; the others still run.
func Compare(ctx context.Context, o Options, scenario string, pinned bool) *Comparison {
	runs := cmp.Or(o.Runs, DefaultRuns)
	peer := o.Peer
	if peer == "" {
		peer = o.PeerTarget.kind()
	}
	c := &Comparison{Scenario: scenario, Peer: peer, Pinned: pinned, Runs: runs, Setup: o.setup(scenario)}
	pinning := "unpinned"
	if pinned {
		pinning = "pinned"
	}
	for i := 1; i <= runs && ctx.Err() == nil; i++ {
		for _, onPeer := range []bool{false, true} {
			name := KindPushpull
			if onPeer {
				name = peer
			}
			run := o
			run.onPeer, run.Pin = onPeer, pinned
			o.logf("compare %s (%s): run %d of %d on %s", scenario, pinning, i, runs, name)
			res, err := run.runScenario(ctx, scenario)
			if err != nil {
				c.Errors = append(c.Errors, fmt.Sprintf("%s run %d: %v", name, i, err))
				continue
			}
			o.logf("compare %s (%s): run %d on %s: %s", scenario, pinning, i, name, runSummary(res))
			if onPeer {
				c.PeerRuns = append(c.PeerRuns, res)
				if w := workersOf(res); w > 0 {
					c.PeerWorkers = w
				}
			} else {
				c.PushpullRuns = append(c.PushpullRuns, res)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		c.Errors = append(c.Errors, err.Error())
	}
	c.Rows = compareRows(c.PushpullRuns, c.PeerRuns)
	return c
}

func (o *Options) runScenario(ctx context.Context, scenario string) (any, error) {
	switch scenario {
	case "idle":
		return nonNil(Idle(ctx, *o))
	case "fanout":
		return nonNil(o.fanout(ctx, false))
	case "unicast":
		return nonNil(o.unicast(ctx, false))
	}
	return nil, fmt.Errorf("scenario %q: compare runs %s", scenario, strings.Join(CompareScenarios, ", "))
}

// nonNil drops a result that came with an error: a run that failed is
// not compared.
func nonNil[T any](r *T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return r, nil
}

func workersOf(res any) int {
	switch r := res.(type) {
	case *DeliveryResult:
		return r.Workers
	case *IdleResult:
		return r.Workers
	}
	return 0
}

// setup says in words what the runs of a scenario do.
func (o *Options) setup(scenario string) string {
	s := o.scenarioSetup(scenario)
	if o.Transport == TransportLongPoll && scenario != "idle" {
		s += ", subscribers long-polling"
	}
	if o.Expiry > 0 && scenario != "idle" {
		s += fmt.Sprintf(", kept %d s", o.Expiry)
	}
	return s
}

func (o *Options) scenarioSetup(scenario string) string {
	subs := cmp.Or(o.Subs, DefaultSubs)
	switch scenario {
	case "idle":
		s := fmt.Sprintf("%d idle WebSockets, a channel each", cmp.Or(o.Conns, DefaultConns))
		if o.Mode != "" && o.Mode != "text" {
			s += fmt.Sprintf(" (pushpull's in %s mode)", o.Mode)
		}
		return s
	case "fanout":
		ch := "one channel"
		if n := min(max(o.Channels, 1), subs); n > 1 {
			ch = fmt.Sprintf("%d channels", n)
		}
		return fmt.Sprintf("%d subscribers on %s, %d messages at %g/s",
			subs, ch, cmp.Or(o.Messages, DefaultFanoutMsgs), cmp.Or(o.Rate, DefaultFanoutRate))
	case "unicast":
		what := fmt.Sprintf("%d messages", cmp.Or(o.Messages, DefaultUnicastMsgs))
		if o.Duration > 0 {
			what = "for " + o.Duration.String()
		}
		s := fmt.Sprintf("%d subscribers on a channel each, %d publishers publishing %s",
			subs, cmp.Or(o.Concurrency, DefaultConcurrency), what)
		if o.Batch > 1 {
			s += fmt.Sprintf(", pushpull's in protocol-4 RequestBatches of %d (a peer's one per publish)", o.Batch)
		}
		return s
	}
	return ""
}

// runSummary is a run's main figures in a line, for the progress log.
func runSummary(res any) string {
	switch r := res.(type) {
	case *DeliveryResult:
		return fmt.Sprintf("p50 %.3f ms, p99 %.3f ms, %.2f ms CPU per 1,000 deliveries, %d delivered, %d lost, others took %.0f%% of the CPU",
			r.Latency.P50, r.Latency.P99, r.CPUPer1000, r.Delivered, r.Lost, 100*r.OtherCPUShare)
	case *IdleResult:
		return fmt.Sprintf("%.0f bytes (PSS %.0f) per connection, RSS %s -> %s", r.BytesPerConn, r.PSSPerConn, mib(r.RSSBefore), mib(r.RSSAfter))
	}
	return ""
}

// WriteComparison writes a comparison as a table: per figure the median
// and range of each server and the ratio of the medians.
func WriteComparison(w io.Writer, c *Comparison) {
	if w == nil {
		return
	}
	pinning := "unpinned"
	if c.Pinned {
		pinning = fmt.Sprintf("pinned: server on CPU %d, bench on CPU %d", serverCPU, benchCPU)
	}
	peer := c.Peer
	if c.PeerWorkers > 0 {
		peer += " (" + nginxWorkers(c.PeerWorkers) + ")"
	}
	fmt.Fprintf(w, "%s vs %s: %s", c.Scenario, peer, pinning)
	if c.Setup != "" {
		fmt.Fprintf(w, "; %s", c.Setup)
	}
	fmt.Fprintf(w, "; %d alternating runs each (pushpull %d, %s %d finished)\n",
		c.Runs, len(c.PushpullRuns), c.Peer, len(c.PeerRuns))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "FIGURE\tPUSHPULL median (min-max)\t%s median (min-max)\tPUSHPULL/%s\n",
		strings.ToUpper(c.Peer), strings.ToUpper(c.Peer))
	for _, r := range c.Rows {
		ratio := "-"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Figure, r.Pushpull, r.Peer, ratio)
	}
	tw.Flush()
	for _, e := range c.Errors {
		fmt.Fprintf(w, "  not measured: %s\n", errorSummary(e))
	}
	fmt.Fprintln(w)
}

// String is the median and range, e.g. "1.23 (1.10-1.40)".
func (s Spread) String() string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 || s.Min == s.Max {
		return num(s.Median)
	}
	return fmt.Sprintf("%s (%s-%s)", num(s.Median), num(s.Min), num(s.Max))
}

// num prints a figure with three significant digits or its whole part.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// errorSummary is an error's first line and, when it goes on (a server's
// output), its last: where a server says why it stopped.
func errorSummary(e string) string {
	lines := strings.Split(strings.TrimSpace(e), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	return strings.TrimSuffix(lines[0], ":") + ": " + strings.TrimSpace(lines[len(lines)-1])
}
