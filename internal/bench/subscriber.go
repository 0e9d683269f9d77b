package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// maxFrame bounds what a subscriber accepts in one message; the bench only
// publishes small bodies, so anything bigger is a server fault.
const maxFrame = 16 << 20

// conn is one subscriber's WebSocket. One goroutine reads it and answers
// pings; nothing else writes to it.
type conn struct {
	idx  int
	nc   net.Conn      // nil once a reactor owns the socket
	fd   int           // the socket, when a reactor reads it
	br   *bufio.Reader // goroutine mode
	hdr  [ws.MaxHeaderSize - 2]byte
	buf  []byte // goroutine mode: payload of the frame being read
	in   []byte // reactor mode: the start of a frame not wholly read yet
	msg  []byte // a fragmented message being assembled
	tick []Tick
	lat  []int64 // latencies of first deliveries, ns
}

// Swarm is a set of subscriber connections and what they received.
type Swarm struct {
	conns   []*conn
	reactor *reactor // nil: a goroutine per connection
	ledger  *Ledger  // nil: connections only (idle)
	parse   tickParser
	wg      sync.WaitGroup
	closing atomic.Bool

	frames   atomic.Int64 // data frames received
	bad      atomic.Int64 // envelopes (nchan: frames) without a bench tick, or text outside envelopes
	dropped  atomic.Int64 // connections that ended before Close
	firstErr struct {
		sync.Mutex
		err error
	}
}

// SwarmOptions says what to open.
type SwarmOptions struct {
	URL         string              // WebSocket subscribe URL, ws://host:port/path
	Channel     func(i int) string  // the CHANNEL_ID value of connection i (signed if needed)
	Count       int                 // connections
	Concurrency int                 // handshakes in flight
	Ledger      *Ledger             // where deliveries are recorded; nil for none
	PerConn     int                 // expected deliveries per connection (capacity hint)
	Progress    func(connected int) // called now and then while connecting
	// Kind is the server's kind, which says how its frames carry the
	// bench's ticks: KindPushpull (also when empty) or KindNchan.
	Kind string
	// URLs, when set, are several servers' subscribe URLs, and Server(i)
	// picks connection i's (a fleet spreads its connections over its
	// processes); URL is then not used.
	URLs   []string
	Server func(i int) int
	// ClientID, when set, gives connection i's clientId parameter (the
	// shared mode's installation); "" for none.
	ClientID func(i int) string
	// Sources, when set, are the local addresses connections are dialled
	// from, round-robin: each source address has its own ephemeral ports,
	// about 28,000 on Linux.
	Sources []net.IP
	// goroutines reads with a goroutine per connection even where the
	// reactor is available.
	goroutines bool
}

// OpenSwarm opens opt.Count subscriber connections and starts reading them.
// It fails if any connection cannot be opened (after a few attempts), so a
// run never measures fewer connections than it reports.
func OpenSwarm(ctx context.Context, opt SwarmOptions) (*Swarm, error) {
	urls := opt.URLs
	if len(urls) == 0 {
		urls = []string{opt.URL}
	}
	bases := make([]*url.URL, len(urls))
	for i, u := range urls {
		base, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		switch base.Scheme {
		case "http":
			base.Scheme = "ws"
		case "https":
			base.Scheme = "wss"
		}
		bases[i] = base
	}
	baseOf := func(int) *url.URL { return bases[0] }
	if len(opt.URLs) > 0 {
		if opt.Server == nil {
			return nil, errors.New("swarm: several URLs need a Server function")
		}
		baseOf = func(i int) *url.URL { return bases[opt.Server(i)] }
	}
	s := &Swarm{conns: make([]*conn, opt.Count), ledger: opt.Ledger, parse: parserFor(opt.Kind)}
	if !opt.goroutines {
		s.reactor = newReactor(s)
	}
	netDial := loopbackDialer(bases[0].Hostname(), opt.Count)
	if len(opt.Sources) > 0 {
		netDial = sourceDialer(opt.Sources)
	}
	d := ws.Dialer{Timeout: 15 * time.Second, NetDial: netDial}
	conc := max(opt.Concurrency, 1)
	sem := make(chan struct{}, conc)
	var (
		mu        sync.Mutex
		openErr   error
		connected atomic.Int64
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < opt.Count; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			client := ""
			if opt.ClientID != nil {
				client = opt.ClientID(i)
			}
			c, err := dialConn(ctx, d, baseOf(i), opt.Channel(i), client)
			if err != nil {
				mu.Lock()
				if openErr == nil {
					openErr = fmt.Errorf("connection %d: %w", i, err)
				}
				mu.Unlock()
				cancel()
				return
			}
			c.idx = i
			if opt.Ledger != nil {
				c.lat = make([]int64, 0, opt.PerConn)
			}
			s.conns[i] = c
			if s.reactor == nil || !s.reactor.add(c) {
				if c.br == nil {
					// Small: the bench holds tens of thousands of these.
					c.br = bufio.NewReaderSize(c.nc, 1024)
				}
				s.wg.Add(1)
				go s.read(c)
			}
			if n := connected.Add(1); opt.Progress != nil && n%1000 == 0 {
				opt.Progress(int(n))
			}
		}(i)
	}
	wg.Wait()
	if openErr == nil && ctx.Err() != nil {
		openErr = ctx.Err()
	}
	if openErr != nil {
		s.Close()
		return nil, fmt.Errorf("opened %d of %d connections: %w", connected.Load(), opt.Count, openErr)
	}
	return s, nil
}

// loopbackDialer spreads connections to a loopback server over several
// source addresses once they would not fit in one address's ephemeral port
// range (about 28,000 ports by default).
func loopbackDialer(host string, count int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	ip := net.ParseIP(host)
	if count <= 20000 || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return d.DialContext
	}
	var next atomic.Uint32
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := next.Add(1)
		local := net.IPv4(127, 0, byte(n/250%250), byte(1+n%250))
		ld := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
		return ld.DialContext(ctx, network, addr)
	}
}

// sourceDialer dials from each of sources in turn.
func sourceDialer(sources []net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var next atomic.Uint32
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ip := sources[int(next.Add(1)-1)%len(sources)]
		ld := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		return ld.DialContext(ctx, network, addr)
	}
}

func dialConn(ctx context.Context, d ws.Dialer, base *url.URL, channel, clientID string) (*conn, error) {
	u := *base
	q := u.Query()
	q.Set("CHANNEL_ID", channel)
	if clientID != "" {
		q.Set("clientId", clientID)
	}
	u.RawQuery = q.Encode()
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var (
			nc net.Conn
			br *bufio.Reader
		)
		nc, br, _, err = d.Dial(ctx, u.String())
		if err != nil {
			var st ws.StatusError
			if errors.As(err, &st) {
				return nil, err // the server answered: retrying will not help
			}
			continue
		}
		// br is nil unless the server sent more than the handshake.
		return &conn{nc: nc, br: br, fd: -1}, nil
	}
	return nil, err
}

func (s *Swarm) read(c *conn) {
	defer s.wg.Done()
	err := s.readLoop(c)
	c.nc.Close()
	s.ended(c, err)
}

var errServerClosed = errors.New("server closed the connection")

func (s *Swarm) readLoop(c *conn) error {
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr[:])
		if err != nil {
			return err
		}
		if h.Length > maxFrame {
			return fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := int(h.Length)
		if cap(c.buf) < n {
			c.buf = make([]byte, n, max(n, 512))
		}
		p := c.buf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		reply, err := s.handle(c, h, p)
		if reply != nil {
			if _, werr := c.nc.Write(reply); err == nil {
				err = werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// handle acts on one frame whose payload is p. It returns a frame to send
// back (a pong, or the answer to a close) and an error once the connection
// is to end.
func (s *Swarm) handle(c *conn, h ws.Header, p []byte) (reply []byte, err error) {
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		reply, err = ws.CompileFrame(ws.MaskFrame(ws.NewPongFrame(p)))
		return reply, err
	case ws.OpPong:
		return nil, nil
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		reply, _ = ws.CompileFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
		return reply, fmt.Errorf("%w: %d %s", errServerClosed, code, reason)
	}
	if int64(len(c.msg))+h.Length > maxFrame {
		return nil, fmt.Errorf("message over %d bytes", maxFrame)
	}
	if !h.Fin || len(c.msg) > 0 {
		c.msg = append(c.msg, p...)
		if !h.Fin {
			return nil, nil
		}
		p = c.msg
	}
	s.deliver(c, p)
	c.msg = c.msg[:0]
	return nil, nil
}

// deliver accounts for one data message. A single clock reading serves all
// the envelopes of a frame: they arrived together.
func (s *Swarm) deliver(c *conn, p []byte) {
	s.frames.Add(1)
	if s.ledger == nil {
		return
	}
	now := time.Now().UnixNano()
	var bad int
	c.tick, bad = s.parse(c.tick[:0], p)
	if bad > 0 {
		s.bad.Add(int64(bad))
	}
	for _, t := range c.tick {
		if s.ledger.Record(c.idx, t.Seq, now) {
			c.lat = append(c.lat, now-t.Sent)
		}
	}
}

// Latencies returns every first-delivery latency recorded, in ns. Call it
// after Close.
func (s *Swarm) Latencies() []int64 {
	n := 0
	for _, c := range s.conns {
		n += len(c.lat)
	}
	all := make([]int64, 0, n)
	for _, c := range s.conns {
		all = append(all, c.lat...)
	}
	return all
}

// Dropped returns how many connections ended before Close, and the first
// reason.
func (s *Swarm) Dropped() (int64, error) {
	s.firstErr.Lock()
	defer s.firstErr.Unlock()
	return s.dropped.Load(), s.firstErr.err
}

// Frames returns how many data frames arrived.
func (s *Swarm) Frames() int64 { return s.frames.Load() }

// Bad returns how many envelopes carried no bench tick.
func (s *Swarm) Bad() int64 { return s.bad.Load() }

// ended records a connection that ended before Close.
func (s *Swarm) ended(c *conn, err error) {
	if s.closing.Load() {
		return
	}
	s.dropped.Add(1)
	s.firstErr.Lock()
	if s.firstErr.err == nil {
		s.firstErr.err = fmt.Errorf("connection %d: %w", c.idx, err)
	}
	s.firstErr.Unlock()
}

// Close closes every connection and waits for the readers to stop.
func (s *Swarm) Close() {
	if s.closing.Swap(true) {
		return
	}
	if s.reactor != nil {
		s.reactor.stop()
	}
	for _, c := range s.conns {
		if c != nil && c.nc != nil {
			c.nc.Close()
		}
	}
	s.wg.Wait()
}
