package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/wedge"
	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol"
)

// The chaos scenario is the delivery promise under faults: real servers,
// subscribers that resume by mid over WebSocket and long polling and drop
// their connections every few seconds, a publisher that numbers every
// message, and one fault per run. Each run reports how many messages were
// accepted (answered 200) and, over all subscribers, how many of those
// never arrived, arrived twice, or arrived after a later one.

// ChaosOptions tune the chaos scenario. Zero values take the defaults.
type ChaosOptions struct {
	Executable  string        // the pushpull binary; the running one when empty
	RedisServer string        // redis-server binary; from PATH when empty
	Subscribers int           // per transport (5 WebSocket and 5 long-polling)
	Phase       time.Duration // how long each run publishes (8 s)
	Drop        time.Duration // subscribers drop their connection about this often (2 s)
	Faults      []string      // which runs; all of ChaosFaults when empty
	Log         io.Writer     // progress; nil for none
}

// ChaosFaults are the runs of the chaos scenario: the setup and the fault.
var ChaosFaults = []string{
	"memory/drops", "memory/sigterm", "memory/fast-restart",
	"redis/drops", "redis/kill9", "redis/redis-kill9", "redis/process-killed", "redis/wedged-pubsub",
}

// ChaosRow is one run's outcome.
type ChaosRow struct {
	Run        string `json:"run"`
	Accepted   int64  `json:"accepted"`   // publishes answered 200
	Delivered  int64  `json:"delivered"`  // accepted messages that reached a subscriber, counted once per subscriber
	Missing    int64  `json:"missing"`    // accepted messages a subscriber never got
	Duplicated int64  `json:"duplicated"` // messages a subscriber got again
	Backwards  int64  `json:"backwards"`  // messages a subscriber got after a later one
	Error      string `json:"error,omitempty"`
}

// Chaos runs the chaos scenario.
func Chaos(ctx context.Context, o ChaosOptions) []ChaosRow {
	if o.Subscribers <= 0 {
		o.Subscribers = 5
	}
	if o.Phase <= 0 {
		o.Phase = 8 * time.Second
	}
	if o.Drop <= 0 {
		o.Drop = 2 * time.Second
	}
	faults := o.Faults
	if len(faults) == 0 {
		faults = ChaosFaults
	}
	var rows []ChaosRow
	for _, run := range faults {
		row, err := o.run(ctx, run)
		row.Run = run
		if err != nil {
			row.Error = err.Error()
		}
		rows = append(rows, row)
		if o.Log != nil {
			fmt.Fprintf(o.Log, "bench: chaos %s: %+v\n", run, row)
		}
	}
	return rows
}

// WriteChaos prints the rows as a table.
func WriteChaos(w io.Writer, rows []ChaosRow) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "%-22s %9s %10s %8s %11s %10s\n", "run", "accepted", "delivered", "missing", "duplicated", "backwards")
	for _, r := range rows {
		fmt.Fprintf(w, "%-22s %9d %10d %8d %11d %10d", r.Run, r.Accepted, r.Delivered, r.Missing, r.Duplicated, r.Backwards)
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s", r.Error)
		}
		fmt.Fprintln(w)
	}
}

func (o *ChaosOptions) run(ctx context.Context, run string) (ChaosRow, error) {
	setup, fault, _ := strings.Cut(run, "/")
	c, err := o.startCluster(ctx, setup)
	if err != nil {
		return ChaosRow{}, err
	}
	defer c.stop()
	ch := randomChannel()
	led := newChaosLedger()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 2 * o.Subscribers {
		s := led.subscriber()
		urls := c.subURLs(i)
		wg.Go(func() {
			if i%2 == 0 {
				s.websocket(rctx, urls, ch, o.Drop)
			} else {
				s.longPoll(rctx, urls, ch, o.Drop)
			}
		})
	}
	pubCtx, stopPub := context.WithCancel(rctx)
	var pubWG sync.WaitGroup
	pubWG.Go(func() { led.publish(pubCtx, c.pubURL(), ch) })

	faultErr := make(chan error, 1)
	go func() {
		t := time.NewTimer(o.Phase / 2)
		defer t.Stop()
		select {
		case <-t.C:
			faultErr <- c.inject(ctx, fault)
		case <-rctx.Done():
			faultErr <- rctx.Err()
		}
	}()
	end := time.NewTimer(o.Phase)
	select {
	case <-end.C:
	case <-ctx.Done():
	}
	stopPub()
	pubWG.Wait()
	ferr := <-faultErr
	// Let every subscriber catch up with the last accepted message.
	deadline := time.Now().Add(30 * time.Second)
	for !led.caughtUp() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	return led.row(), ferr
}

func randomChannel() string {
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
}

// chaosLedger keeps what was accepted and what each subscriber got.
type chaosLedger struct {
	mu       sync.Mutex
	accepted []int64 // numbers answered 200, in publish order
	subs     []*chaosSubscriber
}

func newChaosLedger() *chaosLedger { return &chaosLedger{} }

func (l *chaosLedger) subscriber() *chaosSubscriber {
	s := &chaosSubscriber{seen: make(map[int64]bool), mid: "00000000000000000000000000"}
	l.mu.Lock()
	l.subs = append(l.subs, s)
	l.mu.Unlock()
	return s
}

// publish numbers messages from 1 until ctx ends. A publish that is not
// answered 200 is not accepted (it may still have been stored).
func (l *chaosLedger) publish(ctx context.Context, pubURL, ch string) {
	client := &http.Client{Timeout: 5 * time.Second}
	for n := int64(1); ctx.Err() == nil; n++ {
		body := fmt.Sprintf(`{"module_id":"chaos","command":"n","params":{"n":%d}}`, n)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pubURL+"?CHANNEL_ID="+ch, strings.NewReader(body))
		req.Header.Set("Message-Expiry", "86400") // kept for resuming clients, as the Bitrix module asks
		resp, err := client.Do(req)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // the server is restarting
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			l.mu.Lock()
			l.accepted = append(l.accepted, n)
			l.mu.Unlock()
		}
	}
}

func (l *chaosLedger) caughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.accepted) == 0 {
		return true
	}
	last := l.accepted[len(l.accepted)-1]
	for _, s := range l.subs {
		if !s.has(last) {
			return false
		}
	}
	return true
}

func (l *chaosLedger) row() ChaosRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := ChaosRow{Accepted: int64(len(l.accepted))}
	for _, s := range l.subs {
		s.mu.Lock()
		for _, n := range l.accepted {
			if s.seen[n] {
				r.Delivered++
			} else {
				r.Missing++
			}
		}
		r.Duplicated += s.dups
		r.Backwards += s.backwards
		s.mu.Unlock()
	}
	return r
}

// chaosSubscriber is one client resuming by mid.
type chaosSubscriber struct {
	mu        sync.Mutex
	seen      map[int64]bool
	last      int64  // highest number received
	mid       string // the mid of the last numbered message received
	dups      int64
	backwards int64
}

func (s *chaosSubscriber) has(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[n]
}

func (s *chaosSubscriber) resumeMID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mid
}

// got records the envelopes of a frame or a long-poll answer.
func (s *chaosSubscriber) got(data []byte) {
	for _, part := range strings.Split(string(data), protocol.EnvelopeStart) {
		part = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), protocol.EnvelopeEnd))
		if part == "" {
			continue
		}
		var e struct {
			MID  string `json:"mid"`
			Text struct {
				Params struct {
					N int64 `json:"n"`
				} `json:"params"`
			} `json:"text"`
		}
		if json.Unmarshal([]byte(part), &e) != nil || e.Text.Params.N == 0 {
			continue // a server command (server_restart) or not a chaos message
		}
		s.mu.Lock()
		n := e.Text.Params.N
		switch {
		case s.seen[n]:
			s.dups++
		case n < s.last:
			s.backwards++
		}
		s.seen[n] = true
		if n > s.last {
			s.last, s.mid = n, e.MID
		}
		s.mu.Unlock()
	}
}

// websocket keeps a WebSocket to one of urls, reconnecting with its last
// mid, and drops it every drop or so.
func (s *chaosSubscriber) websocket(ctx context.Context, urls []string, ch string, drop time.Duration) {
	for i := 0; ctx.Err() == nil; i++ {
		u := "ws://" + urls[i%len(urls)] + "/bitrix/subws/?CHANNEL_ID=" + ch + "&mid=" + s.resumeMID()
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, br, _, err := ws.Dialer{}.Dial(dctx, u)
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		rd := wsclient.Stream(conn, br)
		// Read until the drop comes (the deadline) or the server closes.
		_ = conn.SetReadDeadline(time.Now().Add(time.Duration(float64(drop) * (0.5 + rand.Float64()))))
		for ctx.Err() == nil {
			msgs, err := wsutil.ReadServerMessage(rd, nil)
			if err != nil {
				break
			}
			for _, m := range msgs {
				if m.OpCode == ws.OpText {
					s.got(m.Payload)
				}
			}
		}
		conn.Close()
	}
}

// longPoll polls one of urls with its last mid, abandoning a held request
// now and then as a client dropping its connection does.
func (s *chaosSubscriber) longPoll(ctx context.Context, urls []string, ch string, drop time.Duration) {
	client := &http.Client{}
	for i := 0; ctx.Err() == nil; i++ {
		u := "http://" + urls[i%len(urls)] + "/bitrix/sub/?CHANNEL_ID=" + ch + "&mid=" + s.resumeMID()
		pctx, cancel := context.WithTimeout(ctx, time.Duration(float64(drop)*(0.5+rand.Float64())))
		req, _ := http.NewRequestWithContext(pctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() == nil && pctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			s.got(body)
			i-- // stay on the same process while it answers
		}
	}
}

// chaosCluster is the servers of one run: one pushpull process on the
// memory store with a snapshot, or two on a Redis with appendfsync always.
type chaosCluster struct {
	exe, dir string
	redisBin string
	redis    *spawn.Process
	redisArg []string
	procs    []*chaosProc
	proxy    *wedge.Proxy // between the last process and Redis
}

type chaosProc struct {
	config string
	sub    string // host:port of its subscribe server
	pub    string
	p      *spawn.Process
}

func (o *ChaosOptions) startCluster(ctx context.Context, setup string) (*chaosCluster, error) {
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "pushpull-chaos-")
	if err != nil {
		return nil, err
	}
	c := &chaosCluster{exe: exe, dir: dir, redisBin: o.RedisServer}
	if c.redisBin == "" {
		c.redisBin = "redis-server"
	}
	storages := []map[string]any{{"type": "memory", "snapshot": filepath.Join(dir, "history.snapshot")}}
	if setup == "redis" {
		redisPort, err := c.startRedis(ctx)
		if err != nil {
			c.stop()
			return nil, err
		}
		// The second process reaches Redis through a proxy that can
		// wedge its pub/sub connection.
		if c.proxy, err = wedge.Start("127.0.0.1:" + strconv.Itoa(redisPort)); err != nil {
			c.stop()
			return nil, err
		}
		storages = []map[string]any{
			{"type": "redis", "host": "127.0.0.1", "port": redisPort},
			{"type": "redis", "host": "127.0.0.1", "port": port(c.proxy.Addr())},
		}
	} else if setup != "memory" {
		c.stop()
		return nil, fmt.Errorf("unknown setup %q", setup)
	}
	for i, storage := range storages {
		p := &chaosProc{config: filepath.Join(dir, "config"+strconv.Itoa(i)+".json")}
		if err := writeChaosConfig(p.config, storage, 0, 0); err != nil {
			c.stop()
			return nil, err
		}
		if err := c.start(ctx, p); err != nil {
			c.stop()
			return nil, err
		}
		// Restarts come back on the same ports, where the clients are.
		if err := writeChaosConfig(p.config, storage, port(p.sub), port(p.pub)); err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	return c, nil
}

func port(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	n, _ := strconv.Atoi(addr[i+1:])
	return n
}

func writeChaosConfig(file string, storage map[string]any, sub, pub int) error {
	cfg := map[string]any{
		"servers": []map[string]any{
			{"name": "chaos-sub", "hostname": "127.0.0.1", "port": sub, "routes": map[string]any{"sub": []string{"/bitrix/sub/", "/bitrix/subws/"}}},
			{"name": "chaos-pub", "hostname": "127.0.0.1", "port": pub, "routes": map[string]any{"pub": []string{"/bitrix/pub/"}}},
		},
		"storage":         storage,
		"polling":         map[string]any{"timeout": 2},
		"log":             map[string]string{"level": "info"},
		"shutdownTimeout": 5,
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

func (c *chaosCluster) start(ctx context.Context, p *chaosProc) error {
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	proc, ls, err := spawn.Serve(wait, 2, "pushpull serve", exec.Command(c.exe, "serve", "--config", p.config))
	if err != nil {
		return err
	}
	p.p, p.sub, p.pub = proc, ls[0].Addr, ls[1].Addr
	return nil
}

func (c *chaosCluster) startRedis(ctx context.Context) (int, error) {
	ports, err := spawn.FreePorts(1)
	if err != nil {
		return 0, err
	}
	c.redisArg = []string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--dir", c.dir}
	return ports[0], c.restartRedis(ctx)
}

func (c *chaosCluster) restartRedis(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if c.redis, err = spawn.Start("redis-server", exec.Command(c.redisBin, c.redisArg...)); err != nil {
		return err
	}
	return c.redis.WaitLine(wait, "Ready to accept connections")
}

// subURLs are the subscribe addresses subscriber i tries, its own first.
func (c *chaosCluster) subURLs(i int) []string {
	var out []string
	for k := range c.procs {
		out = append(out, c.procs[(i+k)%len(c.procs)].sub)
	}
	return out
}

func (c *chaosCluster) pubURL() string { return "http://" + c.procs[0].pub + "/bitrix/pub/" }

// inject applies fault to the running cluster.
func (c *chaosCluster) inject(ctx context.Context, fault string) error {
	last := c.procs[len(c.procs)-1]
	switch fault {
	case "drops":
		return nil
	case "sigterm":
		if err := last.p.Stop(10 * time.Second); err != nil {
			return err
		}
		return c.start(ctx, last)
	case "fast-restart":
		for range 2 {
			if err := last.p.Stop(10 * time.Second); err != nil {
				return err
			}
			if err := c.start(ctx, last); err != nil {
				return err
			}
		}
		return nil
	case "kill9":
		_ = last.p.Signal(syscall.SIGKILL)
		<-last.p.Done()
		return c.start(ctx, last)
	case "redis-kill9":
		if c.redis == nil {
			return errors.New("redis-kill9 needs the redis setup")
		}
		_ = c.redis.Signal(syscall.SIGKILL)
		<-c.redis.Done()
		return c.restartRedis(ctx)
	case "wedged-pubsub":
		if c.proxy == nil {
			return errors.New("wedged-pubsub needs the redis setup")
		}
		c.proxy.Wedge()
		// The process's probes must find it and rebuild it.
		wait, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := last.p.WaitLine(wait, "a probe did not come back"); err != nil {
			return fmt.Errorf("the wedged subscription was not detected: %w", err)
		}
		return nil
	case "process-killed":
		if len(c.procs) < 2 {
			return errors.New("process-killed needs two processes")
		}
		_ = last.p.Signal(syscall.SIGKILL)
		<-last.p.Done()
		c.procs = c.procs[:len(c.procs)-1] // its clients move to the others
		return nil
	}
	return fmt.Errorf("unknown fault %q", fault)
}

func (c *chaosCluster) stop() {
	for _, p := range c.procs {
		if p.p != nil {
			_ = p.p.Stop(5 * time.Second)
		}
	}
	if c.proxy != nil {
		c.proxy.Close()
	}
	if c.redis != nil {
		_ = c.redis.Stop(5 * time.Second)
	}
	os.RemoveAll(c.dir)
}
