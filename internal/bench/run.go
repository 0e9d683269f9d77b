// Package bench is the load tool behind `pushpull bench`: it opens many
// WebSocket subscribers against a running or freshly started server,
// publishes through the publish route, and reports the server's memory per
// connection, CPU per delivered message and delivery latency, read from
// /proc and from the messages themselves.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// Options configure a bench run. Zero counts take the scenario defaults.
type Options struct {
	Spawn       bool   // start the server (and Redis) for each scenario
	Redis       bool   // spawned server uses a Redis store
	Executable  string // pushpull binary to spawn; the running one when empty
	Target      Target // the server to measure when not spawning
	Key         string // security key: channel ids are signed with it
	Conns       int    // idle: connections (19,000)
	Subs        int    // fanout, unicast: subscribers (1,000)
	Messages    int    // fanout: 500; unicast: 100,000
	Rate        float64
	Concurrency int           // unicast: concurrent publishers (8)
	Batch       int           // unicast: messages per publish request; above 1 as protocol-4 RequestBatch
	Mode        string        // idle: the connections' protocol: "text" (3), "binary" (4) or "jsonrpc" (5)
	Drain       time.Duration // how long to wait for late deliveries (5 s)
	Settle      time.Duration // idle: longest wait for the server's memory to settle (60 s)
	Log         io.Writer     // progress; nil for none

	Channels int // fanout: the subscribers' channels, round-robin (1)
	// Transport is how fanout and unicast subscribers receive:
	// TransportWebSocket (also when empty) or TransportLongPoll.
	Transport string
	Duration  time.Duration // unicast: publish for this long rather than a count of messages
	// Expiry, above 0, is sent with every publish as Message-Expiry, so
	// pushpull keeps the messages that long for clients that come back;
	// a spawned nchan then keeps them as long (nchan_message_timeout),
	// up to pushpull's 10,000 per channel. 0: neither keeps them.
	Expiry int
	// Pin runs a spawned server on CPU 0 and the bench on CPU 1; the
	// server then has one core, as GOMAXPROCS and nginx's workers say.
	Pin bool

	// Peer names a server to measure side by side with pushpull
	// (Compare): KindNchan, started by the bench, or the running one in
	// PeerTarget.
	Peer       string
	PeerTarget Target
	Nginx      string // nginx binary for the peer; found when empty
	Module     string // the nchan module; found when empty
	Runs       int    // Compare: runs of each server, alternating (3)

	onPeer bool // this run measures the peer
}

// Scenario defaults.
const (
	DefaultConns       = 19000
	DefaultSubs        = 1000
	DefaultFanoutMsgs  = 500
	DefaultFanoutRate  = 100
	DefaultUnicastMsgs = 100000
	DefaultConcurrency = 8
)

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench: "+format+"\n", args...)
	}
}

func (o *Options) signer() (*protocol.Signer, error) { return protocol.NewSigner(o.Key, "sha1") }

// session is one scenario's server: started for it, or the given one.
type session struct {
	Target
	spawned *Spawned
	unpin   func() // gives the bench back all its CPUs
}

// open returns the server a scenario measures: pushpull, or the peer when
// o.onPeer. conns is how many connections the scenario makes, which a
// spawned nginx must be configured to hold.
func (o *Options) open(ctx context.Context, redis bool, conns int) (s *session, err error) {
	if o.onPeer {
		return o.openPeer(ctx, conns)
	}
	if !o.Spawn {
		if o.Pin {
			return nil, fmt.Errorf("pinning needs a server the bench starts")
		}
		if o.Target.PID <= 0 || o.Target.SubURL == "" || o.Target.PubURL == "" {
			return nil, fmt.Errorf("without spawning, the server's pid, subscribe URL and publish URL are needed")
		}
		if _, err := ReadStatus(o.Target.PID); err != nil {
			return nil, fmt.Errorf("server process %d: %w", o.Target.PID, err)
		}
		return &session{Target: o.Target}, nil
	}
	storage := "memory"
	if redis {
		storage = "redis"
	}
	o.logf("starting pushpull serve (%s store)%s", storage, o.pinNote())
	sp, err := Spawn(ctx, SpawnOptions{Executable: o.Executable, Redis: redis, Key: o.Key, CPUs: o.serverCPUs()})
	if err != nil {
		return nil, err
	}
	s = &session{Target: sp.Target, spawned: sp}
	return s, o.pinBench(s)
}

// openPeer starts nginx with nchan, or checks the running peer given.
func (o *Options) openPeer(ctx context.Context, conns int) (*session, error) {
	if t := o.PeerTarget; t.PID != 0 || t.SubURL != "" || t.PubURL != "" {
		if o.Pin {
			return nil, fmt.Errorf("pinning needs a peer the bench starts")
		}
		if t.PID <= 0 || t.SubURL == "" || t.PubURL == "" {
			return nil, fmt.Errorf("a running peer needs its pid, subscribe URL and publish URL")
		}
		if _, err := ReadStatus(t.PID); err != nil {
			return nil, fmt.Errorf("peer process %d: %w", t.PID, err)
		}
		if t.Kind == "" {
			t.Kind = KindNchan
		}
		return &session{Target: t}, nil
	}
	if o.Peer != KindNchan {
		return nil, fmt.Errorf("peer %q: the bench starts only %s", o.Peer, KindNchan)
	}
	no := NchanOptions{Nginx: o.Nginx, Module: o.Module, Conns: conns, Expiry: o.Expiry, CPUs: o.serverCPUs()}
	if o.Pin {
		no.Workers = 1 // one core, as pushpull's GOMAXPROCS is then 1
	}
	o.logf("starting nginx with nchan%s", o.pinNote())
	sp, err := SpawnNchan(ctx, no)
	if err != nil {
		return nil, err
	}
	s := &session{Target: sp.Target, spawned: sp}
	return s, o.pinBench(s)
}

// The CPUs of a pinned run: the server's, and the bench's.
const (
	serverCPU = 0
	benchCPU  = 1
)

func (o *Options) serverCPUs() string {
	if !o.Pin {
		return ""
	}
	return strconv.Itoa(serverCPU)
}

func (o *Options) pinNote() string {
	if !o.Pin {
		return ""
	}
	return fmt.Sprintf(" on CPU %d, the bench on CPU %d", serverCPU, benchCPU)
}

// pinBench moves the bench to its CPU for a pinned run; s.close moves it
// back. On failure it stops the server s holds.
func (o *Options) pinBench(s *session) error {
	if !o.Pin {
		return nil
	}
	unpin, err := PinSelf(benchCPU)
	if err != nil {
		s.close()
		return fmt.Errorf("pin the bench to CPU %d: %w", benchCPU, err)
	}
	s.unpin = unpin
	return nil
}

func (s *session) close() {
	if s.unpin != nil {
		s.unpin()
		s.unpin = nil
	}
	if s.spawned != nil {
		s.spawned.Stop()
	}
}

// alive returns an error if a spawned server has died.
func (s *session) alive() error {
	if s.spawned != nil {
		return s.spawned.Alive()
	}
	return nil
}

// storage names the store for reports.
func (s *session) storage() string {
	if s.Storage == "" {
		return "external"
	}
	return s.Storage
}

// newChannelID returns a random channel id: 32 lowercase hex digits, as the
// PHP module makes them.
func newChannelID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serverSubscribers asks the stat route how many subscribers the server
// holds: pushpull's /server-stat/ (JSON, per process: its WebSockets, or
// with longPoll its held long polls), or nchan's stub status
// ("subscribers: N", which counts every kind).
func serverSubscribers(ctx context.Context, kind, statURL string, longPoll bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %s", statURL, resp.Status)
	}
	if kind == KindNchan {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", statURL, err)
		}
		return parseNchanSubscribers(b)
	}
	var procs []struct {
		WebSockets int64 `json:"websockets"`
		Pollings   int64 `json:"pollings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&procs); err != nil {
		return 0, fmt.Errorf("%s: %w", statURL, err)
	}
	var n int64
	for _, p := range procs {
		if longPoll {
			n += p.Pollings
		} else {
			n += p.WebSockets
		}
	}
	return n, nil
}

// waitSubscribed waits until the server counts at least n WebSockets (with
// polls, held long polls), so no message is published before every
// subscriber is registered. Without a stat route it waits a fixed second
// instead.
func (s *session) waitSubscribed(ctx context.Context, n int, longPoll bool) (int64, error) {
	if s.StatURL == "" {
		return -1, sleep(ctx, time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := serverSubscribers(ctx, s.Kind, s.StatURL, longPoll)
		if err != nil {
			// A server without the stat route: fall back to waiting.
			return -1, sleep(ctx, time.Second)
		}
		if got >= int64(n) {
			// The count rises as each upgrade completes; subscribing to
			// the hub may follow it by a moment.
			return got, sleep(ctx, 200*time.Millisecond)
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("the server counts %d subscribers, want %d", got, n)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return got, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// channelsFor returns the CHANNEL_ID values of n new channels on t: signed
// for pushpull when there is a key; nchan takes the ids as they are.
func (o *Options) channelsFor(t Target, n int) ([]string, error) {
	ids, signed, err := o.channels(n)
	if t.nchan() {
		return ids, err
	}
	return signed, err
}

// channels returns n channel ids and the CHANNEL_ID value for each: the id
// itself, or "<id>.<signature>" with a key.
func (o *Options) channels(n int) (ids, signed []string, err error) {
	sg, err := o.signer()
	if err != nil {
		return nil, nil, err
	}
	ids, signed = make([]string, n), make([]string, n)
	for i := range ids {
		ids[i] = newChannelID()
		signed[i] = sg.SignChannel(ids[i])
	}
	return ids, signed, nil
}
