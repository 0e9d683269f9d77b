package bench

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/protocol"
)

// The hostile scenario is the promise that hostile clients cannot hurt
// others or grow the server's memory without bound. One server runs with a
// modest store bound; a bystander subscribes to a channel of its own and a
// backend publisher numbers a message to it every 50 ms for the whole run.
// Meanwhile, one after another, each hostile case attacks for a phase
// while the server's resident memory is sampled every 100 ms. Each case
// reports what the attack sent and how the server refused it, what the
// bystander received of the messages accepted meanwhile (missing,
// duplicated, out of order, frames that were not UTF-8, the longest wait
// between two), and the memory before, at the peak and after, against the
// store's bound.

// HostileOptions tune the hostile scenario. Zero values take the defaults.
type HostileOptions struct {
	Executable string        // the pushpull binary; the running one when empty
	Phase      time.Duration // how long each case attacks (8 s)
	Conns      int           // slow-body and trickled-frame connections (1000)
	Attackers  int           // store-flood clients (16)
	Followers  int           // follow-flood connections (20)
	Cases      []string      // which cases; all of HostileCases when empty
	Log        io.Writer     // progress; nil for none
}

// HostileCases are the attacks of the hostile scenario, in the order they run.
var HostileCases = []string{"poison-body", "store-flood", "follow-flood", "slow-body", "trickled-frame"}

// The server's bounds in the hostile scenario.
const (
	hostileStoreBytes   = 64 << 20 // storage.maxBytes
	hostileChannelBytes = 4 << 20  // storage.maxChannelBytes
	hostileTimeout      = 5 * time.Second
	hostileFollowCap    = 1000 // users one connection may follow (the server's constant)
)

// HostileResult is the scenario's outcome: the bounds the server ran with
// and one row per case.
type HostileResult struct {
	StoreBoundMB     float64      `json:"storeBoundMB"`     // storage.maxBytes
	ChannelBoundMB   float64      `json:"channelBoundMB"`   // storage.maxChannelBytes
	RequestTimeoutS  float64      `json:"requestTimeoutS"`  // limits.requestTimeout
	BystanderPublish int64        `json:"bystanderPublish"` // numbered messages the backend published to the bystander
	Rows             []HostileRow `json:"rows"`
	Error            string       `json:"error,omitempty"` // the scenario could not run, or the server died
}

// HostileRow is one case's outcome.
type HostileRow struct {
	Case string `json:"case"`
	// The attack: requests (or connections) sent, how many met the
	// expected refusal (Code), and every outcome by HTTP status, JSON-RPC
	// error code or WebSocket close code ("ok" a JSON-RPC success,
	// "closed" a connection ended without an answer, "open" one still
	// unanswered when the case gave up, "dial" one that never opened).
	Sent    int64            `json:"sent"`
	Refused int64            `json:"refused"`
	Code    string           `json:"code"`
	Answers map[string]int64 `json:"answers"`
	Limit   string           `json:"limit"` // the server's bound this attack meets

	// The bystander over the case.
	Accepted     int64   `json:"accepted"`   // numbered messages the backend published and the server accepted (200)
	Unaccepted   int64   `json:"unaccepted"` // numbered messages the server did not accept
	Received     int64   `json:"received"`   // accepted messages the bystander got
	Missing      int64   `json:"missing"`
	Duplicated   int64   `json:"duplicated"`
	Backwards    int64   `json:"backwards"`  // received after a later one
	Poisoned     int64   `json:"poisoned"`   // frames that were not UTF-8
	Repaired     int64   `json:"repaired"`   // poison messages that reached it repaired
	Reconnects   int64   `json:"reconnects"` // times the server closed its connection
	LongestGapMS float64 `json:"longestGapMs"`

	// The server's memory: resident set before, at the peak and after the
	// case, and the peak of what its store holds (pushpull_store_bytes).
	RSSBeforeMB float64 `json:"rssBeforeMB"`
	RSSPeakMB   float64 `json:"rssPeakMB"`
	RSSAfterMB  float64 `json:"rssAfterMB"`
	StorePeakMB float64 `json:"storePeakMB"`
	BoundMB     float64 `json:"boundMB"` // storage.maxBytes

	Error string `json:"error,omitempty"`
}

// Hurt reports whether the bystander was hurt in this case, or the case
// did not run.
func (r HostileRow) Hurt() bool {
	return r.Error != "" || r.Missing+r.Duplicated+r.Backwards+r.Poisoned+r.Unaccepted > 0
}

// Hostile runs the hostile scenario.
func Hostile(ctx context.Context, o HostileOptions) *HostileResult {
	if o.Phase <= 0 {
		o.Phase = 8 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = 1000
	}
	if o.Attackers <= 0 {
		o.Attackers = 16
	}
	if o.Followers <= 0 {
		o.Followers = 20
	}
	cases := o.Cases
	if len(cases) == 0 {
		cases = HostileCases
	}
	res := &HostileResult{
		StoreBoundMB:    mb(hostileStoreBytes),
		ChannelBoundMB:  mb(hostileChannelBytes),
		RequestTimeoutS: hostileTimeout.Seconds(),
	}
	for _, c := range cases {
		if !slices.Contains(HostileCases, c) {
			res.Error = fmt.Sprintf("unknown case %q (want %s)", c, strings.Join(HostileCases, ", "))
			return res
		}
	}
	// Both ends of every attack connection live on this machine: this
	// process holds one descriptor per connection, the server another.
	if limit, err := RaiseFileLimit(); err == nil && uint64(o.Conns)+512 > limit {
		o.Conns = max(int(limit)-512, 1)
		o.logf("bench: hostile: the open file limit is %d: %d connections per case", limit, o.Conns)
	}

	h, err := o.start(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer h.stop()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { h.meter.run(rctx, h.server.Pid(), h.metricsURL) })
	wg.Go(func() { h.by.listen(rctx, h.subURL, h.bySigned) })
	wg.Go(func() { h.by.publish(rctx, h.pubURL, h.byID) })
	defer wg.Wait()
	defer cancel()
	if err := waitFor(ctx, 15*time.Second, h.by.receiving); err != nil {
		res.Error = "the bystander received nothing: " + err.Error()
		return res
	}

	for _, c := range cases {
		row := h.runCase(ctx, c)
		o.logf("bench: hostile %s: %+v", c, row)
		if err := h.server.Exited(); err != nil {
			row.Error = "the server died: " + err.Error()
			res.Error = row.Error
		}
		res.Rows = append(res.Rows, row)
		if res.Error != "" || ctx.Err() != nil {
			break
		}
	}
	res.BystanderPublish = h.by.published.Load()
	return res
}

func (o *HostileOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Failed reports whether the bystander was hurt in any case, a case did
// not run, or the server died.
func (r *HostileResult) Failed() bool {
	if r.Error != "" || len(r.Rows) == 0 {
		return true
	}
	for _, row := range r.Rows {
		if row.Hurt() {
			return true
		}
	}
	return false
}

// WriteHostile prints the result as a table.
func WriteHostile(w io.Writer, r *HostileResult) {
	if w == nil || len(r.Rows) == 0 {
		return
	}
	fmt.Fprintf(w, "bounds: store %.0f MB (storage.maxBytes), channel %.0f MB (storage.maxChannelBytes), request %.0f s (limits.requestTimeout)\n",
		r.StoreBoundMB, r.ChannelBoundMB, r.RequestTimeoutS)
	fmt.Fprintf(w, "%-14s %8s %15s  %-28s %-17s | %5s %4s %4s %4s %4s %6s %6s %6s | %10s %8s %9s | %10s %11s\n",
		"case", "sent", "refused", "answers", "limit",
		"recv", "miss", "dup", "back", "poi", "rep", "reconn", "gap ms",
		"rss before", "rss peak", "rss after", "store peak", "store bound")
	for _, x := range r.Rows {
		fmt.Fprintf(w, "%-14s %8d %15s  %-28s %-17s | %5d %4d %4d %4d %4d %6d %6d %6.0f | %7.1f MB %5.1f MB %6.1f MB | %7.1f MB %8.0f MB",
			x.Case, x.Sent, fmt.Sprintf("%d %s", x.Refused, x.Code), answersText(x.Answers), x.Limit,
			x.Received, x.Missing, x.Duplicated, x.Backwards, x.Poisoned, x.Repaired, x.Reconnects, x.LongestGapMS,
			x.RSSBeforeMB, x.RSSPeakMB, x.RSSAfterMB, x.StorePeakMB, x.BoundMB)
		if x.Unaccepted > 0 {
			fmt.Fprintf(w, "  %d bystander publishes not accepted", x.Unaccepted)
		}
		if x.Error != "" {
			fmt.Fprintf(w, "  error: %s", x.Error)
		}
		fmt.Fprintln(w)
	}
}

// answersText lists outcomes, the most frequent first: "429:5120 200:260".
func answersText(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// hostileRun is the server of a run, its bystander and its memory meter.
type hostileRun struct {
	o          *HostileOptions
	dir        string
	server     *spawn.Process
	signer     *protocol.Signer
	sub, pub   string // host:port of the subscribe and publish servers
	subURL     string // ws://sub/bitrix/subws/
	pubURL     string // http://pub/bitrix/pub/
	metricsURL string
	by         *bystander
	byID       string // the bystander's channel
	bySigned   string // its CHANNEL_ID
	meter      *memMeter
}

func (o *HostileOptions) start(ctx context.Context) (*hostileRun, error) {
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "pushpull-hostile-")
	if err != nil {
		return nil, err
	}
	h := &hostileRun{o: o, dir: dir, meter: &memMeter{}}
	key := fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
	if h.signer, err = protocol.NewSigner(key, "sha1"); err != nil {
		h.stop()
		return nil, err
	}
	file := filepath.Join(dir, "config.json")
	if err := writeHostileConfig(file, key); err != nil {
		h.stop()
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, ls, err := spawn.Serve(wait, 2, "pushpull serve", exec.Command(exe, "serve", "--config", file))
	if err != nil {
		h.stop()
		return nil, err
	}
	h.server = p
	for _, l := range ls {
		switch l.Server {
		case "hostile-sub":
			h.sub = l.Addr
		case "hostile-pub":
			h.pub = l.Addr
		}
	}
	if h.sub == "" || h.pub == "" {
		h.stop()
		return nil, fmt.Errorf("the server reported listening on %+v", ls)
	}
	h.subURL = "ws://" + h.sub + "/bitrix/subws/"
	h.pubURL = "http://" + h.pub + "/bitrix/pub/"
	h.metricsURL = "http://" + h.pub + "/metrics"
	h.byID = newChannelID()
	h.bySigned = h.signer.SignChannel(h.byID)
	h.by = newBystander()
	return h, nil
}

// writeHostileConfig writes the server's config: the bounds the cases
// meet, a key so channels are signed, servers on port 0.
func writeHostileConfig(file, key string) error {
	cfg := map[string]any{
		"servers": []map[string]any{
			{"name": "hostile-sub", "hostname": "127.0.0.1", "port": 0, "routes": map[string]any{
				"sub": []string{"/bitrix/sub/", "/bitrix/subws/"}, "rest": []string{"/bitrix/rest/"}}},
			{"name": "hostile-pub", "hostname": "127.0.0.1", "port": 0, "routes": map[string]any{
				"pub": []string{"/bitrix/pub/"}, "stat": []string{"/server-stat/"}, "metrics": []string{"/metrics"}}},
		},
		"security":        map[string]any{"key": key},
		"storage":         map[string]any{"type": "memory", "maxBytes": hostileStoreBytes, "maxChannelBytes": hostileChannelBytes},
		"limits":          map[string]any{"requestTimeout": hostileTimeout.Seconds()},
		"log":             map[string]string{"level": "info"},
		"shutdownTimeout": 2,
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

func (h *hostileRun) stop() {
	if h.server != nil {
		_ = h.server.Stop(5 * time.Second)
	}
	os.RemoveAll(h.dir)
}

// attack is what one case's attack sent and how it was answered.
type attack struct {
	mu      sync.Mutex
	sent    atomic.Int64
	answers map[string]int64
}

func newAttack() *attack { return &attack{answers: map[string]int64{}} }

func (a *attack) answer(outcome string) {
	a.mu.Lock()
	a.answers[outcome]++
	a.mu.Unlock()
}

func (a *attack) snapshot() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.answers)
}

// runCase runs one attack for a phase and measures the bystander and the
// server's memory over it.
func (h *hostileRun) runCase(ctx context.Context, name string) HostileRow {
	row := HostileRow{Case: name, BoundMB: mb(hostileStoreBytes)}
	before, _ := ReadStatus(h.server.Pid())
	h.meter.reset(before.RSS)
	from := h.by.mark()
	until := time.Now().Add(h.o.Phase)
	a := newAttack()
	var err error
	switch name {
	case "poison-body":
		row.Code, row.Limit = "repaired", "bodies made UTF-8"
		err = h.poisonBody(ctx, until, a)
	case "store-flood":
		row.Code, row.Limit = "429", fmt.Sprintf("store %.0f MB", mb(hostileStoreBytes))
		err = h.storeFlood(ctx, until, a)
	case "follow-flood":
		row.Code, row.Limit = strconv.Itoa(codeInvalidParams), fmt.Sprintf("%d users/conn", hostileFollowCap)
		err = h.followFlood(ctx, until, a)
	case "slow-body":
		row.Code, row.Limit = "408", fmt.Sprintf("body in %.0f s", hostileTimeout.Seconds())
		err = h.slowBody(ctx, until, a)
	case "trickled-frame":
		row.Code, row.Limit = strconv.Itoa(protocol.ClosePolicy), fmt.Sprintf("message in %.0f s", hostileTimeout.Seconds())
		err = h.trickledFrame(ctx, until, a)
	}
	if err != nil {
		row.Error = err.Error()
	}
	// The bystander gets what was accepted up to now before the case is
	// closed.
	if werr := waitFor(ctx, 15*time.Second, h.by.caughtUp); werr != nil && row.Error == "" {
		row.Error = "the bystander did not catch up: " + werr.Error()
	}
	if name == "poison-body" {
		// The last poison messages may follow the last numbered one.
		// Only the count reported waits on them: those the channel's
		// bound dropped before a reconnect fetched them never come.
		poison := a.snapshot()["200"]
		_ = waitFor(ctx, 2*time.Second, func() bool { return h.by.repairedSince(from) >= poison })
	}
	to := h.by.mark()
	w := h.by.window(from, to)
	row.Accepted, row.Unaccepted, row.Received, row.Missing = w.accepted, w.unaccepted, w.received, w.missing
	row.Duplicated, row.Backwards, row.Poisoned = w.dups, w.backwards, w.poisoned
	row.Repaired, row.Reconnects = w.repaired, w.reconnects
	row.LongestGapMS = float64(w.gap.Microseconds()) / 1000

	row.Sent, row.Answers = a.sent.Load(), a.snapshot()
	if name == "poison-body" {
		row.Refused = row.Repaired
	} else {
		row.Refused = row.Answers[row.Code]
	}
	after, _ := ReadStatus(h.server.Pid())
	rssPeak, storePeak := h.meter.peaks(after.RSS)
	row.RSSBeforeMB, row.RSSPeakMB, row.RSSAfterMB = mb(before.RSS), mb(rssPeak), mb(after.RSS)
	row.StorePeakMB = mb(storePeak)
	return row
}

// waitFor polls cond every 20 ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// memMeter samples the server's resident set every 100 ms and its store's
// size every 250 ms, keeping the peaks since the last reset.
type memMeter struct {
	mu        sync.Mutex
	rssPeak   int64
	storePeak int64
}

func (m *memMeter) run(ctx context.Context, pid int, metricsURL string) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		client := &http.Client{Timeout: 2 * time.Second}
		for sleep(ctx, 250*time.Millisecond) == nil {
			if b, err := storeBytes(ctx, client, metricsURL); err == nil {
				m.mu.Lock()
				m.storePeak = max(m.storePeak, b)
				m.mu.Unlock()
			}
		}
	})
	for sleep(ctx, 100*time.Millisecond) == nil {
		if st, err := ReadStatus(pid); err == nil {
			m.mu.Lock()
			m.rssPeak = max(m.rssPeak, st.RSS)
			m.mu.Unlock()
		}
	}
}

func (m *memMeter) reset(rss int64) {
	m.mu.Lock()
	m.rssPeak, m.storePeak = rss, 0
	m.mu.Unlock()
}

func (m *memMeter) peaks(rss int64) (rssPeak, storePeak int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.rssPeak, rss), m.storePeak
}

// storeBytes reads pushpull_store_bytes from the metrics route.
func storeBytes(ctx context.Context, client *http.Client, metricsURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pushpull_store_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no pushpull_store_bytes in the metrics")
}

// publicID returns a random public id and its receiver signature, as
// clients name public channels in a RequestBatch.
func (h *hostileRun) publicID() (id, sig []byte) {
	pub := newChannelID()
	id, _ = hex.DecodeString(pub)
	sig, _ = hex.DecodeString(h.signer.Sign("public:" + pub))
	return id, sig
}
