package bench

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol/pb"
)

// DeliveryResult is the outcome of a publish-and-deliver scenario.
type DeliveryResult struct {
	Scenario    string `json:"scenario"`
	Server      string `json:"server"` // pushpull or nchan
	Storage     string `json:"storage"`
	Subscribers int    `json:"subscribers"`
	Channels    int    `json:"channels"`          // the subscribers' channels: 1 in a fan-out, one each in a unicast
	Messages    int    `json:"messages"`          // published, failed publishes included
	Workers     int    `json:"workers,omitempty"` // nchan: nginx worker processes

	PublishRate   float64 `json:"publish_rate"` // publishes per second achieved
	PublishErrors int64   `json:"publish_errors"`
	PublishError  string  `json:"publish_error,omitempty"` // the first one

	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"` // distinct (subscriber, message) pairs received
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	Stray      int64 `json:"stray"`    // messages a subscriber was not sent
	Unparsed   int64 `json:"unparsed"` // envelopes without a bench tick
	Dropped    int64 `json:"dropped"`  // subscribers the server disconnected

	Latency          Latency `json:"latency"`
	Seconds          float64 `json:"seconds"` // first publish to last delivery
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	ServerCPUMillis  float64 `json:"server_cpu_ms"`
	CPUPer1000       float64 `json:"server_cpu_ms_per_1000_deliveries"`
	RedisCPUMillis   float64 `json:"redis_cpu_ms,omitempty"` // the Redis the bench started
	ClientCPUMillis  float64 `json:"client_cpu_ms"`
	// CPU used by every other process on the machine meanwhile (a Redis
	// the bench started among them): a large figure means the run
	// competed for the cores and its latencies are not the server's alone.
	OtherCPUMillis float64 `json:"other_cpu_ms"`
	OtherCPUShare  float64 `json:"other_cpu_share"` // of the machine's CPU time over the run
}

// Fanout subscribes Subs connections to one channel (to Channels channels,
// round-robin) and publishes Messages at Rate per second, one publish at a
// time, each to one channel in turn.
func Fanout(ctx context.Context, o Options) (*DeliveryResult, error) {
	return o.fanout(ctx, o.Redis)
}

func (o *Options) fanout(ctx context.Context, redis bool) (*DeliveryResult, error) {
	subs := cmp.Or(o.Subs, DefaultSubs)
	msgs := cmp.Or(o.Messages, DefaultFanoutMsgs)
	rate := cmp.Or(o.Rate, DefaultFanoutRate)
	groups := min(max(o.Channels, 1), subs)
	return o.deliver(ctx, "fanout", redis, subs, msgs, groups, func(ctx context.Context, newPub func() (*Publisher, error), channels []string) (publishStats, int) {
		interval := time.Duration(float64(time.Second) / rate)
		var st publishStats
		p, err := newPub()
		if err != nil {
			st.fail(err)
			return st, 0
		}
		defer p.Close()
		var body []byte
		start := time.Now()
		for i := 0; i < msgs && ctx.Err() == nil; i++ {
			// Keep to the schedule: a slow publish is followed by an
			// immediate one, not a full interval later.
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				if sleep(ctx, d) != nil {
					break
				}
			}
			body = AppendTickBody(body[:0], int64(i), time.Now().UnixNano())
			if st.record(p.Publish(channels[i%len(channels)], body)) {
				break
			}
		}
		return st, msgs
	})
}

// Unicast subscribes Subs connections, each to its own channel, and
// publishes Messages round-robin over them from Concurrency connections as
// fast as the server answers; with Duration, for that long instead, at
// most Messages when given.
func Unicast(ctx context.Context, o Options) (*DeliveryResult, error) {
	return o.unicast(ctx, o.Redis)
}

// maxTimedMessages bounds a unicast that publishes for a time: its ledger
// holds a bit per message.
const maxTimedMessages = 50_000_000

func (o *Options) unicast(ctx context.Context, redis bool) (*DeliveryResult, error) {
	subs := cmp.Or(o.Subs, DefaultSubs)
	msgs := cmp.Or(o.Messages, DefaultUnicastMsgs)
	if o.Duration > 0 && o.Messages == 0 {
		msgs = maxTimedMessages
	}
	conc := cmp.Or(o.Concurrency, DefaultConcurrency)
	// A RequestBatch is pushpull's (protocol 4); nchan takes one message
	// per publish.
	batch := max(o.Batch, 1)
	if o.onPeer {
		batch = 1
	}
	return o.deliver(ctx, "unicast", redis, subs, msgs, subs, func(ctx context.Context, newPub func() (*Publisher, error), channels []string) (publishStats, int) {
		var (
			next atomic.Int64
			stop atomic.Bool
			wg   sync.WaitGroup
			mu   sync.Mutex
			all  publishStats
		)
		var deadline time.Time
		if o.Duration > 0 {
			deadline = time.Now().Add(o.Duration)
		}
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st publishStats
				defer func() {
					mu.Lock()
					all.merge(st)
					mu.Unlock()
				}()
				p, err := newPub()
				if err != nil {
					st.fail(err)
					return
				}
				defer p.Close()
				var body []byte
				for ctx.Err() == nil && !stop.Load() {
					if !deadline.IsZero() && time.Now().After(deadline) {
						stop.Store(true) // the others too
						return
					}
					n := int64(batch)
					i := next.Add(n) - n
					if i >= int64(msgs) {
						return
					}
					var err error
					if batch > 1 {
						body, err = appendBatch(body[:0], channels, i, min(i+n, int64(msgs)))
						if err == nil {
							err = p.PublishBatch(body)
						}
					} else {
						body = AppendTickBody(body[:0], i, time.Now().UnixNano())
						err = p.Publish(channels[i%int64(len(channels))], body)
					}
					if st.record(err) {
						stop.Store(true) // the others too
						return
					}
				}
			}()
		}
		wg.Wait()
		if deadline.IsZero() {
			return all, msgs
		}
		// Every sequence number claimed was published (or failed).
		return all, int(min(next.Load(), int64(msgs)))
	})
}

// publishStats counts publish failures.
type publishStats struct {
	errors  int64
	run     int // consecutive failures
	first   error
	aborted bool
}

func (s *publishStats) fail(err error) {
	s.errors++
	s.aborted = true
	if s.first == nil {
		s.first = err
	}
}

// record accounts for one publish and reports whether to give up: after a
// hundred failures in a row the server is not going to recover mid-run.
func (s *publishStats) record(err error) (stop bool) {
	if err == nil {
		s.run = 0
		return false
	}
	s.errors++
	s.run++
	if s.first == nil {
		s.first = err
	}
	s.aborted = s.run >= 100
	return s.aborted
}

func (s *publishStats) merge(o publishStats) {
	s.errors += o.errors
	s.aborted = s.aborted || o.aborted
	if s.first == nil {
		s.first = o.first
	}
}

// deliver runs one scenario: subscribers on groups channels, then
// publish, then a drain wait for what is still in flight, measuring the
// server's CPU across the publishing and the drain. publish returns how
// many messages it published (seq 0 to n-1), failures included.
func (o *Options) deliver(ctx context.Context, scenario string, redis bool, subs, msgs, groups int,
	publish func(ctx context.Context, newPub func() (*Publisher, error), channels []string) (publishStats, int)) (*DeliveryResult, error) {
	s, err := o.open(ctx, redis, max(subs, 1)+o.Concurrency)
	if err != nil {
		return nil, err
	}
	defer s.close()
	nch := groups
	channels, err := o.channelsFor(s.Target, nch)
	if err != nil {
		return nil, err
	}
	ledger := NewGroupLedger(subs, msgs, groups)
	perConn := msgs/groups + 1
	if o.Duration > 0 && o.Messages == 0 {
		perConn = 16 // grows as needed
	}
	o.logf("%s: opening %d subscribers on %s", scenario, subs, s.kind())
	swo := SwarmOptions{
		URL:         s.SubURL,
		Channel:     func(i int) string { return channels[i%nch] },
		Count:       subs,
		Concurrency: 64,
		Ledger:      ledger,
		PerConn:     perConn,
		Kind:        s.Kind,
	}
	longPoll := o.Transport == TransportLongPoll
	var sw subscriberSet
	if longPoll {
		if o.Expiry <= 0 {
			return nil, fmt.Errorf("%s: long-polling subscribers need --expiry: what is published between two polls must be kept", scenario)
		}
		ps, err := OpenPollSwarm(ctx, swo)
		if err != nil {
			return nil, err
		}
		sw = ps
	} else {
		ws, err := OpenSwarm(ctx, swo)
		if err != nil {
			return nil, err
		}
		sw = ws
	}
	defer sw.Close()
	if _, err := s.waitSubscribed(ctx, subs, longPoll); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("%d messages", msgs)
	if o.Duration > 0 && scenario == "unicast" {
		what = "for " + o.Duration.String()
	}
	o.logf("%s: publishing %s to %d subscribers", scenario, what, subs)

	cpu, err := startCPU(s.procs(), s.RedisPID)
	if err != nil {
		return nil, err
	}
	newPub := func() (*Publisher, error) {
		p, err := NewPublisher(s.PubURL)
		if err == nil {
			p.Expiry, p.Created = o.Expiry, s.nchan()
		}
		return p, err
	}
	t0 := time.Now()
	st, sent := publish(ctx, newPub, channels)
	published := time.Since(t0)
	ledger.Sent(sent)
	drainEnd := time.Now().Add(cmp.Or(o.Drain, 5*time.Second))
	for ledger.Delivered() < ledger.Expected() && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	use, err := cpu.stop()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.alive(); err != nil {
		return nil, err
	}
	dropped, dropErr := sw.Dropped()
	sw.Close()

	r := &DeliveryResult{
		Scenario:        scenario,
		Server:          s.kind(),
		Storage:         s.storage(),
		Subscribers:     subs,
		Channels:        groups,
		Messages:        sent,
		PublishRate:     float64(sent-int(st.errors)) / published.Seconds(),
		PublishErrors:   st.errors,
		Expected:        ledger.Expected(),
		Delivered:       ledger.Delivered(),
		Duplicates:      ledger.Duplicates(),
		Stray:           ledger.Stray(),
		Unparsed:        sw.Bad(),
		Dropped:         dropped,
		Latency:         Summarize(sw.Latencies()),
		ServerCPUMillis: use.Server,
		ClientCPUMillis: use.Bench,
		RedisCPUMillis:  use.Helper,
		OtherCPUMillis:  use.Others,
		OtherCPUShare:   use.OthersShare,
	}
	if s.nchan() {
		r.Workers = s.procs().workers()
	}
	r.Lost = r.Expected - r.Delivered
	if st.first != nil {
		r.PublishError = st.first.Error()
	}
	if last := ledger.LastDelivery(); last > 0 {
		r.Seconds = time.Unix(0, last).Sub(t0).Seconds()
		r.DeliveriesPerSec = float64(r.Delivered) / r.Seconds
	}
	if r.Delivered > 0 {
		r.CPUPer1000 = r.ServerCPUMillis * 1000 / float64(r.Delivered)
	}
	if st.aborted {
		return r, fmt.Errorf("%s: publishing stopped after %d failures: %v", scenario, st.errors, st.first)
	}
	if dropped > 0 {
		o.logf("%s: the server dropped %d subscribers (first: %v)", scenario, dropped, dropErr)
	}
	return r, nil
}

// appendBatch appends a protocol-4 RequestBatch with messages from to to-1,
// each to one channel round-robin, as the Bitrix backend sends them.
func appendBatch(dst []byte, channels []string, from, to int64) ([]byte, error) {
	in := make([]*pb.IncomingMessage, 0, to-from)
	now := time.Now().UnixNano()
	for i := from; i < to; i++ {
		id, err := hex.DecodeString(channels[i%int64(len(channels))])
		if err != nil {
			return nil, fmt.Errorf("batch publish needs hex channel ids: %w", err)
		}
		in = append(in, &pb.IncomingMessage{
			Receivers: []*pb.Receiver{{Id: id, IsPrivate: proto.Bool(true)}},
			Body:      proto.String(string(AppendTickBody(nil, i, now))),
		})
	}
	req := &pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: in},
	}}}}
	return proto.MarshalOptions{}.MarshalAppend(dst, req)
}
