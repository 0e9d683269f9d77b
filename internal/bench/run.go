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
}

func (o *Options) open(ctx context.Context, redis bool) (*session, error) {
	if !o.Spawn {
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
	o.logf("starting pushpull serve (%s store)", storage)
	sp, err := Spawn(ctx, SpawnOptions{Executable: o.Executable, Redis: redis, Key: o.Key})
	if err != nil {
		return nil, err
	}
	return &session{Target: sp.Target, spawned: sp}, nil
}

func (s *session) close() {
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

// serverWebSockets asks the stat route how many WebSocket connections the
// server holds.
func serverWebSockets(ctx context.Context, statURL string) (int64, error) {
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
	var procs []struct {
		WebSockets int64 `json:"websockets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&procs); err != nil {
		return 0, fmt.Errorf("%s: %w", statURL, err)
	}
	var n int64
	for _, p := range procs {
		n += p.WebSockets
	}
	return n, nil
}

// waitSubscribed waits until the server counts at least n WebSockets, so no
// message is published before every subscriber is registered. Without a stat
// route it waits a fixed second instead.
func (s *session) waitSubscribed(ctx context.Context, n int) (int64, error) {
	if s.StatURL == "" {
		return -1, sleep(ctx, time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := serverWebSockets(ctx, s.StatURL)
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
			return got, fmt.Errorf("the server counts %d WebSockets, want %d", got, n)
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
