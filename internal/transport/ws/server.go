package ws

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/protocol"
)

// Options tune the WebSocket server.
type Options struct {
	PingInterval  time.Duration // a ping every interval; a peer silent for two is dropped
	MaxQueueBytes int           // outgoing bytes a session may have pending
	// SendBuffer bounds the kernel's send buffer of each socket (SO_SNDBUF;
	// Linux doubles it for its own bookkeeping): without it a peer that
	// never reads takes up to the kernel's maximum (megabytes) before the
	// queue limit even starts to count.
	SendBuffer    int
	MaxFrameBytes int           // largest message accepted from a client
	WriteTimeout  time.Duration // how long a blocked write may wait for the peer
	FrameTimeout  time.Duration // how long a client may take to send one whole message
	// KeepaliveInterval is the cadence of sessions' own keepalive frames
	// (protocol 5 clients expect a text "ping" at least every 15 s).
	KeepaliveInterval time.Duration
}

func (o *Options) defaults() {
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 1 << 20
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = 128 << 10
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 1 << 20
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.FrameTimeout <= 0 {
		o.FrameTimeout = 30 * time.Second
	}
	if o.KeepaliveInterval <= 0 {
		o.KeepaliveInterval = 10 * time.Second
	}
}

// Metrics counts what the server does; all fields are safe to read at any time.
type Metrics struct {
	Sessions      atomic.Int64 // open sessions
	Frames        atomic.Int64 // frames written
	Bytes         atomic.Int64 // bytes written to sockets
	SlowConsumers atomic.Int64 // sessions dropped for a full queue
}

// Server accepts WebSocket sessions and drives their sockets.
type Server struct {
	opts Options
	// frameTimeout is opts.FrameTimeout, which SetFrameTimeout changes.
	frameTimeout atomic.Int64
	poll         *poller // nil: every session reads on a goroutine of its own
	flushq       chan *Session
	metrics      Metrics
	stop         chan struct{}

	mu       sync.Mutex
	sessions *Session // open sessions, linked through Session.prev/next
	count    int
	added    uint64 // sessions ever listed: their ping slots go round
	closing  bool
	gone     chan struct{} // signalled when a session leaves while closing
}

// NewServer starts the reactor, flush workers and pinger.
func NewServer(opts Options) *Server {
	opts.defaults()
	s := &Server{
		opts:   opts,
		flushq: make(chan *Session, 4096),
		stop:   make(chan struct{}),
		gone:   make(chan struct{}, 1),
	}
	s.frameTimeout.Store(int64(opts.FrameTimeout))
	if p, err := newPoller(); err == nil {
		s.poll = p
		go p.run(s.stop)
	}
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		go s.flusher()
	}
	go s.pinger()
	return s
}

// Metrics returns the server's counters.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// Upgrade completes the WebSocket handshake of r. The session encodes its
// frames with encode; it holds what is delivered to it until Live, and
// reads nothing until Start.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, encode Encoder) (*Session, error) {
	conn, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		return nil, err
	}
	sess := &Session{srv: s, conn: conn, replay: true, encode: encode}
	sess.lastRead.Store(time.Now().Unix())
	if rw != nil && rw.Reader.Buffered() > 0 {
		sess.in, _ = rw.Reader.Peek(rw.Reader.Buffered())
		sess.in = append([]byte(nil), sess.in...)
	}
	sendBuffer(conn, s.opts.SendBuffer)
	if tcp, ok := conn.(*net.TCPConn); ok && s.poll != nil {
		if fd, err := detach(tcp); err == nil {
			sess.sock.fd, sess.sock.owned, sess.conn = int32(fd), true, nil
		}
	}
	return sess, nil
}

func (s *Server) start(sess *Session) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.Close(protocol.CloseServerRestarted, "server is shutting down")
		return
	}
	sess.next = s.sessions
	if s.sessions != nil {
		s.sessions.prev = sess
	}
	s.sessions = sess
	sess.listed = true
	sess.pingSlot = uint8(s.added % pingSlots)
	s.added++
	s.count++
	s.mu.Unlock()
	s.metrics.Sessions.Add(1)
	if pending := sess.in; len(pending) > 0 {
		sess.in = nil
		sess.received(pending, new(bytes.Reader))
	}
	if sess.sock.owned {
		if err := s.poll.add(sess); err == nil {
			return
		}
		// The reactor cannot watch it: read on a goroutine, through a
		// connection of its own.
		c, err := sess.sock.conn()
		if err != nil {
			sess.shut()
			return
		}
		sess.mu.Lock()
		sess.conn = c
		sess.mu.Unlock()
	}
	go s.readLoop(sess)
}

// sendBuffer bounds the kernel send buffer of conn's socket (the TCP
// socket under TLS).
func sendBuffer(conn net.Conn, n int) {
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(n)
	}
}

// forget drops a closed session from the registry and the reactor.
func (s *Server) forget(sess *Session) {
	if sess.sock.owned {
		s.poll.remove(sess)
	}
	s.mu.Lock()
	ok := sess.listed
	if ok {
		if sess.prev != nil {
			sess.prev.next = sess.next
		} else {
			s.sessions = sess.next
		}
		if sess.next != nil {
			sess.next.prev = sess.prev
		}
		sess.prev, sess.next, sess.listed = nil, nil, false
		s.count--
	}
	closing := s.closing
	s.mu.Unlock()
	if ok {
		s.metrics.Sessions.Add(-1)
	}
	if closing {
		select {
		case s.gone <- struct{}{}:
		default:
		}
	}
}

// readLoop reads a session on its own goroutine (TLS, or no epoll).
func (s *Server) readLoop(sess *Session) {
	buf := make([]byte, 4096)
	var r bytes.Reader
	sess.mu.Lock()
	conn := sess.conn
	sess.mu.Unlock()
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			sess.received(buf[:n], &r)
		}
		if err != nil {
			sess.shut()
			return
		}
	}
}

// schedule hands a session with a fresh queue to a flush worker.
func (s *Server) schedule(sess *Session) {
	if !sess.sock.owned {
		go sess.flush(true)
		return
	}
	select {
	case s.flushq <- sess:
	default:
		go sess.flush(false)
	}
}

func (s *Server) flusher() {
	for {
		select {
		case sess := <-s.flushq:
			sess.flush(false)
		case <-s.stop:
			return
		}
	}
}

// SetFrameTimeout changes Options.FrameTimeout, for the messages being
// received too; d <= 0 keeps it.
func (s *Server) SetFrameTimeout(d time.Duration) {
	if d > 0 {
		s.frameTimeout.Store(int64(d))
	}
}

// pingSlots is how many steps a round of the pinger takes: each session
// is looked at in one of them, so that the pings of many sessions spread
// over the interval rather than all leaving, and their pongs all coming
// back, in one burst.
const pingSlots = 16

// pinger pings every session each interval and drops those that have not
// sent a byte (a pong at least) for two intervals. Sessions with a
// keepalive of their own (see Session.SetKeepalive) get it on its shorter
// cadence instead. A round of the shorter cadence goes in pingSlots
// steps, a slot of the sessions at each.
func (s *Server) pinger() {
	tick := s.opts.PingInterval
	if s.opts.KeepaliveInterval < tick {
		tick = s.opts.KeepaliveInterval
	}
	t := time.NewTicker(max(tick/pingSlots, time.Millisecond))
	defer t.Stop()
	var lastPing time.Time
	pingAll := false
	for step := 0; ; step++ {
		var now time.Time
		select {
		case <-s.stop:
			return
		case now = <-t.C:
		}
		slot := uint8(step % pingSlots)
		if slot == 0 {
			pingAll = now.Sub(lastPing) >= s.opts.PingInterval-tick/2
			if pingAll {
				lastPing = now
			}
		}
		deadline := now.Add(-2*s.opts.PingInterval - time.Second).Unix()
		frameDeadline := now.Add(-time.Duration(s.frameTimeout.Load())).UnixMilli()
		for _, sess := range s.snapshot() {
			if sess.pingSlot != slot {
				continue
			}
			keepalive := sess.keepalive.Load()
			switch {
			case sess.lastRead.Load() < deadline:
				sess.shut()
			case sess.partialSince.Load() != 0 && sess.partialSince.Load() <= frameDeadline:
				sess.Close(protocol.ClosePolicy, "message not completed in time")
			case keepalive != nil:
				sess.Send(*keepalive)
			case pingAll:
				sess.Send(pingFrame)
			}
		}
	}
}

func (s *Server) snapshot() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, s.count)
	for sess := s.sessions; sess != nil; sess = sess.next {
		out = append(out, sess)
	}
	return out
}

// Shutdown refuses new sessions, calls last on every session (to queue a
// final message), closes each with code and waits until all are gone or
// ctx ends; then it drops those left.
func (s *Server) Shutdown(ctx context.Context, last func(*Session), code int, reason string) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, sess := range s.snapshot() {
		if last != nil {
			last(sess)
		}
		sess.Close(code, reason)
	}
	for {
		s.mu.Lock()
		n := s.count
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.gone:
		case <-ctx.Done():
			for _, sess := range s.snapshot() {
				sess.shut()
			}
			return
		}
	}
}

// CloseAll closes every open session with code, after what is queued.
func (s *Server) CloseAll(code int, reason string) {
	for _, sess := range s.snapshot() {
		sess.Close(code, reason)
	}
}

// Close stops the server's goroutines and drops every session.
func (s *Server) Close() {
	for _, sess := range s.snapshot() {
		sess.shut()
	}
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

// Count returns the number of open sessions.
func (s *Server) Count() int64 { return s.metrics.Sessions.Load() }
