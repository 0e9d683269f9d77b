package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
)

// A fleet's connections are more than one process may hold open (the
// descriptor limit is per process), so the bench runs its subscribers in
// worker processes: itself again, as `pushpull bench fleet-worker`. A
// worker reads a fleetSpec as one JSON line on stdin, opens its
// connections and reports a fleetReport of type "open"; then it reads a
// fleetFinish, waits for the deliveries that makes it expect and reports
// their count ("drained"), its connections still open, so that their
// closing is not measured; at the next line it closes them and reports
// everything, latencies included ("result"). When its stdin ends it
// exits. A worker that fails reports type "error".

// FleetWorkerArgs are the arguments that make the pushpull binary a fleet
// worker.
var FleetWorkerArgs = []string{"bench", "fleet-worker"}

// fleetSpec is what a worker is to open.
type fleetSpec struct {
	URLs     []string `json:"urls"`     // subscribe URL of each process
	Channels []string `json:"channels"` // CHANNEL_ID value of each channel, signed
	Clients  []string `json:"clients"`  // clientId of each channel; empty in the personal mode
	First    int      `json:"first"`    // the fleet's index of the worker's first connection
	Count    int      `json:"count"`
	Messages int      `json:"messages"` // the most messages the run publishes
	Sources  []string `json:"sources"`  // local addresses to dial from
}

// fleetChannel returns the channel of the fleet's connection i: the
// channels round-robin.
func fleetChannel(i, channels int) int { return i % channels }

// fleetServer returns the process of the fleet's connection i: each run of
// channels consecutive connections (one subscriber of each channel) goes
// to the next process, so every channel has subscribers on every process
// once there are channels*procs connections.
func fleetServer(i, channels, procs int) int { return i / channels % procs }

// fleetFinish tells a worker how many messages were published.
type fleetFinish struct {
	Sent    int   `json:"sent"`
	DrainMS int64 `json:"drain_ms"` // the longest wait for what is still due
}

// fleetReport is a line a worker writes to stdout.
type fleetReport struct {
	Type  string `json:"type"` // open, drained, result or error
	Error string `json:"error,omitempty"`

	// open
	Conns   int   `json:"conns,omitempty"`
	StartNS int64 `json:"start_ns,omitempty"` // unix ns the first dial began
	EndNS   int64 `json:"end_ns,omitempty"`   // and the last handshake ended

	// drained and result
	Expected   int64     `json:"expected,omitempty"`
	Delivered  int64     `json:"delivered,omitempty"`
	Duplicates int64     `json:"duplicates,omitempty"`
	Stray      int64     `json:"stray,omitempty"`
	Unparsed   int64     `json:"unparsed,omitempty"`
	Dropped    int64     `json:"dropped,omitempty"`
	DropError  string    `json:"drop_error,omitempty"`
	LastNS     int64     `json:"last_ns,omitempty"` // unix ns of the last first delivery
	Latency    Histogram `json:"latency"`
}

// RunFleetWorker is a fleet worker: it reads its spec from in and reports
// to out, as the comment above says.
func RunFleetWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	enc := json.NewEncoder(out)
	report := func(r fleetReport) error { return enc.Encode(r) }
	fail := func(err error) error {
		_ = report(fleetReport{Type: "error", Error: err.Error()})
		return err
	}
	lines := bufio.NewScanner(in)
	lines.Buffer(nil, 16<<20)
	var spec fleetSpec
	if err := readLine(lines, &spec); err != nil {
		return fail(fmt.Errorf("fleet worker: spec: %w", err))
	}
	if len(spec.URLs) == 0 || len(spec.Channels) == 0 || spec.Count <= 0 {
		return fail(errors.New("fleet worker: the spec names no servers, channels or connections"))
	}
	if limit, err := RaiseFileLimit(); err != nil {
		return fail(err)
	} else if limit < uint64(spec.Count)+100 {
		return fail(fmt.Errorf("fleet worker: open file limit %d is too low for %d connections", limit, spec.Count))
	}
	var sources []net.IP
	for _, s := range spec.Sources {
		ip := net.ParseIP(s)
		if ip == nil {
			return fail(fmt.Errorf("fleet worker: source address %q", s))
		}
		sources = append(sources, ip)
	}
	k := len(spec.Channels)
	ledger := newLedgerAt(spec.Count, spec.Messages, k, spec.First)
	start := time.Now()
	sw, err := OpenSwarm(ctx, SwarmOptions{
		URLs:    spec.URLs,
		Server:  func(j int) int { return fleetServer(spec.First+j, k, len(spec.URLs)) },
		Channel: func(j int) string { return spec.Channels[fleetChannel(spec.First+j, k)] },
		ClientID: func(j int) string {
			if len(spec.Clients) == 0 {
				return ""
			}
			return spec.Clients[fleetChannel(spec.First+j, k)]
		},
		Sources:     sources,
		Count:       spec.Count,
		Concurrency: 64,
		Ledger:      ledger,
		PerConn:     spec.Messages/k + 1,
	})
	if err != nil {
		return fail(err)
	}
	defer sw.Close()
	if err := report(fleetReport{Type: "open", Conns: spec.Count, StartNS: start.UnixNano(), EndNS: time.Now().UnixNano()}); err != nil {
		return err
	}
	var fin fleetFinish
	if err := readLine(lines, &fin); err != nil {
		return fail(fmt.Errorf("fleet worker: finish: %w", err))
	}
	ledger.Sent(fin.Sent)
	deadline := time.Now().Add(time.Duration(fin.DrainMS) * time.Millisecond)
	for ledger.Delivered() < ledger.Expected() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	counts := func(typ string) fleetReport {
		dropped, dropErr := sw.Dropped()
		r := fleetReport{
			Type:       typ,
			Expected:   ledger.Expected(),
			Delivered:  ledger.Delivered(),
			Duplicates: ledger.Duplicates(),
			Stray:      ledger.Stray(),
			Unparsed:   sw.Bad(),
			Dropped:    dropped,
			LastNS:     ledger.LastDelivery(),
		}
		if dropErr != nil {
			r.DropError = dropErr.Error()
		}
		return r
	}
	if err := report(counts("drained")); err != nil {
		return err
	}
	if !lines.Scan() {
		return lines.Err()
	}
	sw.Close() // the latencies are complete once the readers stopped
	r := counts("result")
	for _, ns := range sw.Latencies() {
		r.Latency.Add(ns)
	}
	if err := report(r); err != nil {
		return err
	}
	// Hold on until the parent is done with every worker.
	for lines.Scan() {
	}
	return nil
}

// readLine reads the next line of lines as JSON into v.
func readLine(lines *bufio.Scanner, v any) error {
	if !lines.Scan() {
		if err := lines.Err(); err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}
	return json.Unmarshal(lines.Bytes(), v)
}

// fleetWorker is the parent's end of one worker process.
type fleetWorker struct {
	idx     int
	spec    fleetSpec
	p       *spawn.Process
	stdin   *os.File
	reports chan fleetReport // closed when its stdout ends
}

// startFleetWorker starts exe as a worker and sends it spec.
func startFleetWorker(exe string, idx int, spec fleetSpec) (*fleetWorker, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(exe, FleetWorkerArgs...)
	cmd.Stdin, cmd.Stdout = inR, outW
	p, err := spawn.Start(fmt.Sprintf("fleet worker %d", idx), cmd)
	// The child has its ends now.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	w := &fleetWorker{idx: idx, spec: spec, p: p, stdin: inW, reports: make(chan fleetReport, 4)}
	go w.read(outR)
	if err := w.send(spec); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// read passes the worker's reports on until its stdout ends.
func (w *fleetWorker) read(out *os.File) {
	defer close(w.reports)
	defer out.Close()
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 64<<20)
	for lines.Scan() {
		var r fleetReport
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
			r = fleetReport{Type: "error", Error: fmt.Sprintf("unreadable report %.200q: %v", lines.Bytes(), err)}
		}
		w.reports <- r
	}
}

func (w *fleetWorker) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", w.p.Name, err)
	}
	return nil
}

// await returns the worker's next report, which must be of type want.
func (w *fleetWorker) await(ctx context.Context, want string) (fleetReport, error) {
	select {
	case r, ok := <-w.reports:
		switch {
		case !ok:
			<-w.p.Done()
			return r, fmt.Errorf("%s ended without a report: %w", w.p.Name, w.p.Exited())
		case r.Type == "error":
			return r, fmt.Errorf("%s: %s", w.p.Name, r.Error)
		case r.Type != want:
			return r, fmt.Errorf("%s reported %q, want %q", w.p.Name, r.Type, want)
		}
		return r, nil
	case <-ctx.Done():
		return fleetReport{}, ctx.Err()
	}
}

// stop ends the worker: its stdin closed, it closes its connections and
// exits.
func (w *fleetWorker) stop() {
	w.stdin.Close()
	select {
	case <-w.p.Done():
	case <-time.After(30 * time.Second):
	}
	_ = w.p.Stop(5 * time.Second)
}
