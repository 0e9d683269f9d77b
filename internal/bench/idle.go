package bench

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"
)

// IdleResult is the memory cost of idle WebSocket connections.
type IdleResult struct {
	Server           string  `json:"server"`            // pushpull or nchan
	Workers          int     `json:"workers,omitempty"` // nchan: nginx worker processes, whose memory is summed with the master's
	Storage          string  `json:"storage"`
	Connections      int     `json:"connections"`
	ServerWebSockets int64   `json:"server_websockets"` // as the stat route counts them; -1 unknown
	RSSBefore        int64   `json:"rss_before_bytes"`
	RSSAfter         int64   `json:"rss_after_bytes"`
	BytesPerConn     float64 `json:"bytes_per_connection"`
	// The proportional set size, in which a page the server's processes
	// share (nginx's shared memory zone) counts once; 0 if unreadable.
	PSSBefore  int64   `json:"pss_before_bytes,omitempty"`
	PSSAfter   int64   `json:"pss_after_bytes,omitempty"`
	PSSPerConn float64 `json:"pss_bytes_per_connection,omitempty"`
	// KernelPerConn is the kernel's socket memory (socket, inode, file,
	// dentry and epoll objects, TCP buffers) the connections added, halved:
	// over loopback the machine holds both ends of each. 0 if unreadable.
	KernelPerConn  float64 `json:"kernel_bytes_per_connection,omitempty"`
	Threads        int     `json:"threads"`
	ConnectSeconds float64 `json:"connect_seconds"`
	Settled        bool    `json:"settled"` // false: RSS still moving when the wait ended
	Dropped        int64   `json:"dropped"` // connections the server ended during the run
}

// Idle opens Conns WebSocket connections, each on its own channel, and
// reports how much the server's resident memory grew per connection once
// it stopped moving.
func Idle(ctx context.Context, o Options) (*IdleResult, error) {
	n := cmp.Or(o.Conns, DefaultConns)
	if limit, err := RaiseFileLimit(); err != nil {
		return nil, err
	} else if limit < uint64(n)+100 {
		return nil, fmt.Errorf("open file limit %d is too low for %d connections", limit, n)
	}
	s, err := o.open(ctx, o.Redis, n)
	if err != nil {
		return nil, err
	}
	defer s.close()
	signed, err := o.channelsFor(s.Target, n)
	if err != nil {
		return nil, err
	}
	before, _, err := settle(ctx, s.procs(), min(5*time.Second, cmp.Or(o.Settle, time.Minute)), 3*time.Second)
	if err != nil {
		return nil, err
	}
	pssBefore, _ := s.procs().pss()
	kernelBefore, kerr := KernelMemory()
	o.logf("idle: server RSS %s after startup; opening %d connections", mib(before.RSS), n)
	t0 := time.Now()
	sub := s.SubURL
	if !s.nchan() {
		// nchan's WebSockets carry bare bodies, whatever the mode.
		if sub, err = modeURL(s.SubURL, o.Mode); err != nil {
			return nil, err
		}
	}
	sw, err := OpenSwarm(ctx, SwarmOptions{
		URL:         sub,
		Channel:     func(i int) string { return signed[i] },
		Count:       n,
		Concurrency: 64,
		Kind:        s.Kind,
		Progress: func(c int) {
			if c%5000 == 0 {
				o.logf("idle: %d connections open", c)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer sw.Close()
	res := &IdleResult{Server: s.kind(), Storage: s.storage(), Connections: n, ConnectSeconds: time.Since(t0).Seconds()}
	if res.ServerWebSockets, err = s.waitSubscribed(ctx, n, false); err != nil {
		return nil, err
	}
	o.logf("idle: %d connections open in %.1fs; waiting for the server's memory to settle", n, res.ConnectSeconds)
	// Idle is at rest: the connections' memory counts once the server has
	// been quiet for a while (it returns what their handshakes freed a few
	// seconds after a burst), not at the end of the burst.
	after, settled, err := settle(ctx, s.procs(), cmp.Or(o.Settle, 60*time.Second), 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := s.alive(); err != nil {
		return nil, err
	}
	res.Dropped, _ = sw.Dropped()
	if kernelAfter, err := KernelMemory(); err == nil && kerr == nil {
		res.KernelPerConn = float64(kernelAfter-kernelBefore) / float64(2*n)
	}
	if s.nchan() {
		res.Workers = s.procs().workers()
	}
	res.RSSBefore, res.RSSAfter, res.Threads, res.Settled = before.RSS, after.RSS, after.Threads, settled
	res.BytesPerConn = float64(after.RSS-before.RSS) / float64(n)
	if pssAfter, err := s.procs().pss(); err == nil && pssBefore > 0 {
		res.PSSBefore, res.PSSAfter = pssBefore, pssAfter
		res.PSSPerConn = float64(pssAfter-pssBefore) / float64(n)
	}
	return res, nil
}

// settle samples the server's RSS every half second until it has moved by
// less than 1% (and less than 1 MiB) over the last span, or until timeout,
// and returns the last reading.
func settle(ctx context.Context, server procs, timeout, span time.Duration) (ProcStatus, bool, error) {
	const interval = 500 * time.Millisecond
	window := int(span/interval) + 1
	deadline := time.Now().Add(timeout)
	var recent []int64
	for {
		st, err := server.status()
		if err != nil {
			return st, false, fmt.Errorf("server process: %w", err)
		}
		recent = append(recent, st.RSS)
		if len(recent) > window {
			recent = recent[1:]
		}
		if len(recent) == window {
			lo, hi := recent[0], recent[0]
			for _, v := range recent {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo <= min(hi/100, 1<<20) {
				return st, true, nil
			}
		}
		if time.Now().After(deadline) {
			return st, false, nil
		}
		if err := sleep(ctx, interval); err != nil {
			return st, false, err
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// modeURL adds to a subscribe URL the query flag that picks a protocol
// version's frames, as the official clients send it.
func modeURL(sub, mode string) (string, error) {
	var flag string
	switch mode {
	case "", "text":
		return sub, nil
	case "binary":
		flag = "binaryMode=true"
	case "jsonrpc":
		flag = "jsonRpc=true"
	default:
		return "", fmt.Errorf("mode %q: want text, binary or jsonrpc", mode)
	}
	if strings.Contains(sub, "?") {
		return sub + "&" + flag, nil
	}
	return sub + "?" + flag, nil
}
