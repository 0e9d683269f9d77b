package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// The fleet scenario is a deployment on one machine: several pushpull
// processes in Redis mode on one Redis, each with its own subscribe port,
// a publisher-mode process taking the publishes, and more WebSocket
// connections than one process may hold, opened by worker processes (see
// fleet_worker.go) and spread over the subscriber processes so that every
// channel has subscribers on every process: each message then crosses
// Redis's pub/sub to all of them.

// FleetOptions configure the fleet scenario. Zero values take the
// defaults.
type FleetOptions struct {
	Executable  string   // the pushpull binary, for the servers and the workers; the running one when empty
	RedisServer string   // redis-server binary; from PATH when empty
	RedisAddrs  []string // a running Redis, or a Redis Cluster's seeds; empty: the bench starts a redis-server
	// RedisTags is the servers' storage.tags: "installation" gives each
	// installation of the shared mode its own hash tag, so that on a
	// Redis Cluster the installations spread over the masters.
	RedisTags string
	Procs     int     // subscriber processes (6)
	Conns     int     // WebSocket connections (100,000)
	Workers   int     // worker processes holding them (one per FleetWorkerConns)
	Channels  int     // channels, the connections round-robin over them (100)
	Messages  int     // messages published, each to one channel in turn (200)
	Rate      float64 // publishes per second (100)
	// Installations, above 0, runs the servers in the shared mode with
	// that many clientIds (security.clients), the channels spread over
	// them round-robin.
	Installations int
	// PingInterval, above 0, is the servers' websocket.pingInterval (30 s
	// unless given). Each process pings all its connections at once every
	// interval: a run that should not meet that burst sets it longer than
	// the run.
	PingInterval time.Duration
	// Expiry, above 0, is sent with every publish as Message-Expiry: the
	// messages are then stored, and a process whose Redis subscription
	// was interrupted replays them; without it they are transient.
	Expiry int
	Key    string        // security key of the personal mode; random when empty
	Drain  time.Duration // the longest wait for deliveries after the last publish (10 s)
	Settle time.Duration // the longest wait for the servers' memory to settle after connecting (60 s)
	Log    io.Writer     // progress; nil for none
}

// Fleet defaults.
const (
	DefaultFleetProcs    = 6
	DefaultFleetConns    = 100000
	DefaultFleetChannels = 100
	DefaultFleetMessages = 200
	DefaultFleetRate     = 20 // 20,000 deliveries a second at the default 1,000 subscribers a channel
	// FleetWorkerConns is how many connections a worker holds at most
	// unless --workers says otherwise.
	FleetWorkerConns = 18000
	// fleetFDSpare is the descriptors a process keeps beside its
	// connections: listeners, Redis, epoll, pipes, logs.
	fleetFDSpare = 1000
)

func (o *FleetOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench: "+format+"\n", args...)
	}
}

// FleetResult is what the fleet scenario measured.
type FleetResult struct {
	Scenario      string         `json:"scenario"` // fleet
	Redis         string         `json:"redis"`    // the bench's redis-server, or the addresses given
	Procs         int            `json:"procs"`
	Workers       int            `json:"workers"`
	Connections   int            `json:"connections"`
	Channels      int            `json:"channels"`
	Installations int            `json:"installations,omitempty"`
	PingSeconds   float64        `json:"ping_interval_seconds"` // the servers' websocket.pingInterval
	Expiry        int            `json:"expiry,omitempty"`      // Message-Expiry of the publishes
	PerProcess    []FleetProcess `json:"per_process"`

	ConnectSeconds float64 `json:"connect_seconds"` // first dial to last handshake, over all workers
	ConnectRate    float64 `json:"connects_per_second"`
	// The subscriber processes' CPU from before the first dial until
	// every process counted its connections, per connection.
	ConnectCPUMillis  float64 `json:"connect_server_cpu_ms"`
	ConnectCPUPerConn float64 `json:"connect_server_cpu_us_per_connection"`

	RSSBefore    int64   `json:"rss_before_bytes"` // the subscriber processes', summed
	RSSAfter     int64   `json:"rss_after_bytes"`
	BytesPerConn float64 `json:"bytes_per_connection"`
	Settled      bool    `json:"settled"` // false: the RSS was still moving when the wait ended
	// KernelPerConn is the kernel's socket memory the connections added,
	// halved: over loopback the machine holds both ends of each.
	KernelPerConn float64 `json:"kernel_bytes_per_connection,omitempty"`

	Messages      int     `json:"messages"` // published, failed publishes included
	PublishRate   float64 `json:"publish_rate"`
	PublishErrors int64   `json:"publish_errors"`
	PublishError  string  `json:"publish_error,omitempty"`

	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	Stray      int64 `json:"stray"`
	Unparsed   int64 `json:"unparsed"`
	Dropped    int64 `json:"dropped"` // connections the servers ended
	// Warnings are the warnings and errors the processes logged.
	Warnings []string `json:"warnings,omitempty"`

	// Latency is from publish to receipt, over every delivery of every
	// worker, read from merged histograms (within 0.8%; max exact).
	Latency          Latency `json:"latency"`
	Seconds          float64 `json:"seconds"` // first publish to last delivery
	DeliveriesPerSec float64 `json:"deliveries_per_second"`

	// CPU over the publishing and the drain, in ms.
	// ServerCPUMillis, PublisherCPUMillis and RedisCPUMillis are all they
	// spent, the per-delivery and per-publish figures derived from them
	// too; their IdleMillis is what they spend at rest (pings,
	// statistics, probes, online keys) over as long, measured while the
	// servers' memory settled. RedisPerPub and RedisPerDelivery are net
	// of Redis's.
	ServerCPUMillis     float64 `json:"server_cpu_ms"` // the subscriber processes, summed
	ServerIdleMillis    float64 `json:"server_idle_cpu_ms"`
	CPUPer1000          float64 `json:"server_cpu_ms_per_1000_deliveries"`
	PublisherCPUMillis  float64 `json:"publisher_cpu_ms"`
	PublisherIdleMillis float64 `json:"publisher_idle_cpu_ms"`
	PublisherPerPub     float64 `json:"publisher_cpu_us_per_publish"`
	RedisCPUMillis      float64 `json:"redis_cpu_ms"` // INFO cpu, summed over the addresses
	RedisIdleMillis     float64 `json:"redis_idle_cpu_ms"`
	RedisPerPub         float64 `json:"redis_cpu_us_per_publish"`
	RedisPerDelivery    float64 `json:"redis_cpu_us_per_delivery"`
	WorkerCPUMillis     float64 `json:"worker_cpu_ms"` // the load generator's processes
	OtherCPUMillis      float64 `json:"other_cpu_ms"`
	OtherCPUShare       float64 `json:"other_cpu_share"`
}

// FleetProcess is one subscriber process of the fleet.
type FleetProcess struct {
	PID         int   `json:"pid"`
	Connections int   `json:"connections"` // sent to it
	WebSockets  int64 `json:"websockets"`  // as its stat route counted them
	RSSBefore   int64 `json:"rss_before_bytes"`
	RSSAfter    int64 `json:"rss_after_bytes"`
}

func (o FleetOptions) withDefaults() FleetOptions {
	o.Procs = cmp.Or(o.Procs, DefaultFleetProcs)
	o.Conns = cmp.Or(o.Conns, DefaultFleetConns)
	o.Channels = cmp.Or(o.Channels, DefaultFleetChannels)
	o.Messages = cmp.Or(o.Messages, DefaultFleetMessages)
	o.Rate = cmp.Or(o.Rate, DefaultFleetRate)
	o.Workers = cmp.Or(o.Workers, (o.Conns+FleetWorkerConns-1)/FleetWorkerConns)
	o.Drain = cmp.Or(o.Drain, 10*time.Second)
	o.Settle = cmp.Or(o.Settle, time.Minute)
	return o
}

// fleetPlan is how the connections are spread.
type fleetPlan struct {
	perProc []int    // connections of each subscriber process
	workers [][2]int // each worker's first connection and count
}

// planFleet spreads o.Conns over the processes (fleetServer) and, in
// contiguous runs, over the workers, and checks that none of them needs
// more descriptors than limit.
func planFleet(o FleetOptions, limit uint64) (fleetPlan, error) {
	var p fleetPlan
	if o.Procs < 1 || o.Conns < 1 || o.Channels < 1 || o.Workers < 1 || o.Messages < 1 || o.Rate <= 0 || o.Installations < 0 {
		return p, errors.New("fleet: processes, connections, channels, workers, messages and rate must be positive")
	}
	if o.Workers > o.Conns {
		return p, fmt.Errorf("fleet: %d workers for %d connections", o.Workers, o.Conns)
	}
	if o.Workers > 250 {
		return p, errors.New("fleet: at most 250 workers (each dials from its own 250 loopback addresses)")
	}
	room := int64(limit) - fleetFDSpare
	p.perProc = make([]int, o.Procs)
	for i := range o.Conns {
		p.perProc[fleetServer(i, o.Channels, o.Procs)]++
	}
	for s, n := range p.perProc {
		if int64(n) > room {
			return p, fmt.Errorf("fleet: process %d would hold %d connections, over the open file limit %d less %d: use more processes", s, n, limit, fleetFDSpare)
		}
		if n == 0 {
			return p, fmt.Errorf("fleet: process %d would get no connections", s)
		}
	}
	first := 0
	for w := range o.Workers {
		n := o.Conns / o.Workers
		if w < o.Conns%o.Workers {
			n++
		}
		if int64(n) > room {
			return p, fmt.Errorf("fleet: a worker would hold %d connections, over the open file limit %d less %d: use more workers", n, limit, fleetFDSpare)
		}
		p.workers = append(p.workers, [2]int{first, n})
		first += n
	}
	return p, nil
}

// workerSources are the loopback addresses worker w dials from:
// 127.0.<w+1>.1 to .250, each with its own ephemeral ports, so that no
// source and destination pair runs out of them.
func workerSources(w int) []string {
	out := make([]string, 250)
	for i := range out {
		out[i] = net.IPv4(127, 0, byte(w+1), byte(i+1)).String()
	}
	return out
}

// fleetChannels returns the CHANNEL_ID value of each channel, signed with
// its tenant's key, and its clientId in the shared mode.
func fleetChannels(n int, t fleetTenants) (signed, clients []string, err error) {
	for k := range n {
		key := t.key
		if len(t.clients) > 0 {
			c := t.clients[k%len(t.clients)]
			clients = append(clients, c)
			key = t.keys[c]
		}
		sg, err := protocol.NewSigner(key, "sha1")
		if err != nil {
			return nil, nil, err
		}
		signed = append(signed, sg.SignChannel(newChannelID()))
	}
	return signed, clients, nil
}

// Fleet runs the fleet scenario.
func Fleet(ctx context.Context, o FleetOptions) (*FleetResult, error) {
	o = o.withDefaults()
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	plan, err := planFleet(o, limit)
	if err != nil {
		return nil, err
	}
	exe := o.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	tenants := newFleetTenants(cmp.Or(o.Key, "fleet-"+newChannelID()), o.Installations)
	signed, clients, err := fleetChannels(o.Channels, tenants)
	if err != nil {
		return nil, err
	}
	o.logf("fleet: starting %d pushpull processes and a publisher on Redis", o.Procs)
	f, err := startFleetServers(ctx, exe, o.RedisServer, o.RedisAddrs, o.RedisTags, o.Procs, tenants, o.PingInterval, o.logf)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	res := &FleetResult{
		Scenario: "fleet", Procs: o.Procs, Workers: o.Workers, Connections: o.Conns,
		Channels: o.Channels, Installations: o.Installations, Redis: "redis-server started by the bench",
		PingSeconds: 30, Expiry: o.Expiry,
	}
	if o.PingInterval > 0 {
		res.PingSeconds = o.PingInterval.Seconds()
	}
	if f.redis == nil {
		res.Redis = strings.Join(o.RedisAddrs, ",")
	}
	if o.RedisTags != "" {
		res.Redis += ", tags " + o.RedisTags
	}
	servers := procs{list: f.subPIDs()}
	before, _, err := settle(ctx, servers, min(5*time.Second, o.Settle), 3*time.Second)
	if err != nil {
		return nil, err
	}
	res.RSSBefore = before.RSS
	for i, s := range f.subs {
		st, _ := ReadStatus(s.pid())
		res.PerProcess = append(res.PerProcess, FleetProcess{PID: s.pid(), Connections: plan.perProc[i], RSSBefore: st.RSS})
	}
	kernelBefore, kerr := KernelMemory()
	cpuBefore, err := servers.cpuTicks()
	if err != nil {
		return nil, err
	}

	o.logf("fleet: %d connections over %d processes from %d workers", o.Conns, o.Procs, o.Workers)
	urls := make([]string, len(f.subs))
	for i, s := range f.subs {
		urls[i] = s.subURL
	}
	workers, err := startWorkers(ctx, exe, plan, fleetSpec{URLs: urls, Channels: signed, Clients: clients, Messages: o.Messages})
	defer stopWorkers(workers)
	if err != nil {
		return nil, err
	}
	opens, err := awaitAll(ctx, workers, "open")
	if err != nil {
		return nil, err
	}
	var startNS, endNS int64
	for _, r := range opens {
		if startNS == 0 || r.StartNS < startNS {
			startNS = r.StartNS
		}
		endNS = max(endNS, r.EndNS)
	}
	res.ConnectSeconds = float64(endNS-startNS) / 1e9
	res.ConnectRate = float64(o.Conns) / res.ConnectSeconds
	if err := waitFleetSubscribed(ctx, f, res.PerProcess); err != nil {
		return nil, err
	}
	cpuAfter, err := servers.cpuTicks()
	if err != nil {
		return nil, err
	}
	res.ConnectCPUMillis = TicksToMillis(cpuAfter - cpuBefore)
	res.ConnectCPUPerConn = res.ConnectCPUMillis * 1000 / float64(o.Conns)
	o.logf("fleet: %d connections open in %.1fs (%.0f/s); waiting for the servers' memory to settle", o.Conns, res.ConnectSeconds, res.ConnectRate)

	// What the fleet spends at rest, read while the memory settles.
	idle, err := startFleetMeter(ctx, f, workers)
	if err != nil {
		return nil, err
	}
	after, settled, err := settle(ctx, servers, o.Settle, 10*time.Second)
	if err != nil {
		return nil, err
	}
	rest, err := idle.stop(ctx)
	if err != nil {
		return nil, err
	}
	res.RSSAfter, res.Settled = after.RSS, settled
	res.BytesPerConn = float64(after.RSS-before.RSS) / float64(o.Conns)
	for i, s := range f.subs {
		st, _ := ReadStatus(s.pid())
		res.PerProcess[i].RSSAfter = st.RSS
	}
	if kernelAfter, err := KernelMemory(); err == nil && kerr == nil {
		res.KernelPerConn = float64(kernelAfter-kernelBefore) / float64(2*o.Conns)
	}

	o.logf("fleet: publishing %d messages at %.0f/s to %d channels", o.Messages, o.Rate, o.Channels)
	m, err := startFleetMeter(ctx, f, workers)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	st, sent := publishFleet(ctx, f.pub.pubURL, signed, clients, o.Messages, o.Rate, o.Expiry)
	published := time.Since(t0)
	for _, w := range workers {
		if err := w.send(fleetFinish{Sent: sent, DrainMS: o.Drain.Milliseconds()}); err != nil {
			return nil, err
		}
	}
	if _, err := awaitAll(ctx, workers, "drained"); err != nil {
		return nil, err
	}
	use, err := m.stop(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.alive(); err != nil {
		return nil, err
	}
	for _, w := range workers {
		if err := w.send(struct{}{}); err != nil {
			return nil, err
		}
	}
	results, err := awaitAll(ctx, workers, "result")
	if err != nil {
		return nil, err
	}
	res.Warnings = f.warnings()

	var hist Histogram
	var last int64
	for _, r := range results {
		res.Expected += r.Expected
		res.Delivered += r.Delivered
		res.Duplicates += r.Duplicates
		res.Stray += r.Stray
		res.Unparsed += r.Unparsed
		res.Dropped += r.Dropped
		last = max(last, r.LastNS)
		hist.Merge(r.Latency)
		if r.DropError != "" {
			o.logf("fleet: a worker's connections were dropped (first: %s)", r.DropError)
		}
	}
	// Each worker counted its own share; the whole run must expect as
	// many.
	whole := NewGroupLedger(o.Conns, o.Messages, o.Channels)
	whole.Sent(sent)
	if want := whole.Expected(); res.Expected != want {
		return res, fmt.Errorf("fleet: the workers expected %d deliveries, the run %d", res.Expected, want)
	}
	res.Lost = res.Expected - res.Delivered
	res.Latency = hist.Latency()
	res.Messages = sent
	res.PublishRate = float64(sent-int(st.errors)) / published.Seconds()
	res.PublishErrors = st.errors
	if st.first != nil {
		res.PublishError = st.first.Error()
	}
	if last > 0 {
		res.Seconds = time.Unix(0, last).Sub(t0).Seconds()
		res.DeliveriesPerSec = float64(res.Delivered) / res.Seconds
	}
	res.ServerCPUMillis, res.PublisherCPUMillis, res.RedisCPUMillis = use.servers, use.publisher, use.redis
	res.WorkerCPUMillis, res.OtherCPUMillis, res.OtherCPUShare = use.workers, use.others, use.othersShare
	if rest.wall > 0 {
		// At rest over as long as the publishing and the drain took.
		scale := use.wall / rest.wall
		res.ServerIdleMillis = rest.servers * scale
		res.PublisherIdleMillis = rest.publisher * scale
		res.RedisIdleMillis = rest.redis * scale
	}
	if res.Delivered > 0 {
		res.CPUPer1000 = res.ServerCPUMillis * 1000 / float64(res.Delivered)
		res.RedisPerDelivery = max(0, res.RedisCPUMillis-res.RedisIdleMillis) * 1000 / float64(res.Delivered)
	}
	if ok := sent - int(st.errors); ok > 0 {
		res.PublisherPerPub = res.PublisherCPUMillis * 1000 / float64(ok)
		res.RedisPerPub = max(0, res.RedisCPUMillis-res.RedisIdleMillis) * 1000 / float64(ok)
	}
	if st.aborted {
		return res, fmt.Errorf("fleet: publishing stopped after %d failures: %v", st.errors, st.first)
	}
	return res, nil
}

// startWorkers starts a worker for each of plan's runs of connections,
// all at once, so that they connect together.
func startWorkers(ctx context.Context, exe string, plan fleetPlan, spec fleetSpec) ([]*fleetWorker, error) {
	var workers []*fleetWorker
	for i, run := range plan.workers {
		s := spec
		s.First, s.Count, s.Sources = run[0], run[1], workerSources(i)
		w, err := startFleetWorker(exe, i, s)
		if err != nil {
			return workers, err
		}
		workers = append(workers, w)
		if ctx.Err() != nil {
			return workers, ctx.Err()
		}
	}
	return workers, nil
}

// stopWorkers stops the workers together: each closes its connections.
func stopWorkers(workers []*fleetWorker) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.stop)
	}
	wg.Wait()
}

// awaitAll returns every worker's next report, which must be of type want.
func awaitAll(ctx context.Context, workers []*fleetWorker, want string) ([]fleetReport, error) {
	out := make([]fleetReport, len(workers))
	for i, w := range workers {
		r, err := w.await(ctx, want)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// waitFleetSubscribed waits until each subscriber process's stat route
// counts the connections sent to it, and records the counts.
func waitFleetSubscribed(ctx context.Context, f *fleetServers, per []FleetProcess) error {
	deadline := time.Now().Add(60 * time.Second)
	for i, s := range f.subs {
		for {
			n, err := processWebSockets(ctx, s.statURL, s.pid())
			if err != nil {
				return err
			}
			per[i].WebSockets = n
			if n >= int64(per[i].Connections) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("fleet: process %d counts %d WebSockets, want %d", s.pid(), n, per[i].Connections)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	// Joining the hub may follow the count by a moment.
	return sleep(ctx, 200*time.Millisecond)
}

// processWebSockets reads one process's own WebSocket count from its stat
// route, which lists every process of the Redis.
func processWebSockets(ctx context.Context, statURL string, pid int) (int64, error) {
	var procs []struct {
		PID        int   `json:"pid"`
		WebSockets int64 `json:"websockets"`
	}
	if err := getJSON(ctx, statURL, &procs); err != nil {
		return 0, err
	}
	for _, p := range procs {
		if p.PID == pid {
			return p.WebSockets, nil
		}
	}
	return 0, fmt.Errorf("%s does not list process %d", statURL, pid)
}

// publishFleet publishes msgs messages at rate, message i to channel i %
// len(channels), one request at a time, with expiry (0: none), and returns how many it published
// (seq 0 to sent-1), failures included.
func publishFleet(ctx context.Context, pubURL string, channels, clients []string, msgs int, rate float64, expiry int) (st publishStats, sent int) {
	p, err := NewPublisher(pubURL)
	if err != nil {
		st.fail(err)
		return st, 0
	}
	p.Expiry = expiry
	defer p.Close()
	interval := time.Duration(float64(time.Second) / rate)
	var body []byte
	start := time.Now()
	for i := 0; i < msgs && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if sleep(ctx, d) != nil {
				break
			}
		}
		k := i % len(channels)
		body = AppendTickBody(body[:0], int64(i), time.Now().UnixNano())
		if len(clients) > 0 {
			err = p.PublishClient(clients[k], channels[k], body)
		} else {
			err = p.Publish(channels[k], body)
		}
		sent++
		if st.record(err) {
			break
		}
	}
	return st, sent
}

// getJSON decodes the JSON answer of a GET of u into v.
func getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// fleetMeter measures the CPU of every part of a fleet over an interval.
type fleetMeter struct {
	f                                    *fleetServers
	servers, workers                     procs
	srv, pub, wrk, self, all, redisTicks int64
	redis                                float64
	start                                time.Time
}

// fleetUse is what a fleetMeter measured, in ms.
type fleetUse struct {
	servers, publisher, redis, workers, others float64
	othersShare                                float64
	wall                                       float64
}

func startFleetMeter(ctx context.Context, f *fleetServers, workers []*fleetWorker) (*fleetMeter, error) {
	m := &fleetMeter{f: f, servers: procs{list: f.subPIDs()}}
	for _, w := range workers {
		m.workers.list = append(m.workers.list, w.p.Pid())
	}
	var err error
	if m.redis, err = redisCPUSum(ctx, f.redisAddrs); err != nil {
		return nil, err
	}
	if m.srv, m.pub, m.wrk, m.redisTicks, err = m.ticks(); err != nil {
		return nil, err
	}
	m.self, _ = ReadCPUTicks(os.Getpid())
	m.all, _ = ReadSystemBusy()
	m.start = time.Now()
	return m, nil
}

// ticks reads the subscriber processes', the publisher's, the workers'
// and a started Redis's CPU.
func (m *fleetMeter) ticks() (srv, pub, wrk, redis int64, err error) {
	if srv, err = m.servers.cpuTicks(); err != nil {
		return
	}
	if pub, err = ReadCPUTicks(m.f.pub.pid()); err != nil {
		return
	}
	if wrk, err = m.workers.cpuTicks(); err != nil {
		return
	}
	if m.f.redis != nil {
		redis, _ = ReadCPUTicks(m.f.redis.Pid())
	}
	return
}

func (m *fleetMeter) stop(ctx context.Context) (fleetUse, error) {
	srv, pub, wrk, redisTicks, err := m.ticks()
	if err != nil {
		return fleetUse{}, err
	}
	redis, err := redisCPUSum(ctx, m.f.redisAddrs)
	if err != nil {
		return fleetUse{}, err
	}
	self, _ := ReadCPUTicks(os.Getpid())
	all, _ := ReadSystemBusy()
	wall := time.Since(m.start)
	u := fleetUse{
		servers:   TicksToMillis(srv - m.srv),
		publisher: TicksToMillis(pub - m.pub),
		workers:   TicksToMillis(wrk - m.wrk),
		redis:     redis - m.redis,
		wall:      float64(wall.Milliseconds()),
	}
	if m.all > 0 && all > 0 {
		mine := u.servers + u.publisher + u.workers + TicksToMillis(self-m.self) + TicksToMillis(redisTicks-m.redisTicks)
		u.others = max(0, TicksToMillis(all-m.all)-mine)
		u.othersShare = u.others / (float64(wall.Milliseconds()+1) * float64(runtime.NumCPU()))
	}
	return u, nil
}
