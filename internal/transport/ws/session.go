package ws

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
)

// Encoder turns a message into the complete frame a session sends. It is
// called once per format and channel for a broadcast (see hub.Prepared).
type Encoder func(p *hub.Prepared, channel string) []byte

// MessageHandler receives each complete data message a client sends. The
// payload is only valid during the call.
type MessageHandler func(s *Session, op ws.OpCode, payload []byte)

const (
	stateOpen    = iota
	stateClosing // a close frame is queued; the socket closes once it is written
	stateClosed
)

// Session is one WebSocket subscriber.
type Session struct {
	srv  *Server
	conn net.Conn

	// The server's list of open sessions, guarded by srv.mu.
	prev, next *Session
	listed     bool

	raw syscall.RawConn // set for plain TCP sockets driven by the reactor
	fd  int

	// Channel is the first channel the session subscribed to: the one
	// that messages addressed to the connection itself name. Format is
	// the frame format its owner encodes for it. The package uses neither.
	Channel string
	Format  int

	encode    Encoder
	onMessage MessageHandler
	onClose   func()

	lastRead  atomic.Int64           // unix seconds of the last byte read
	keepalive atomic.Pointer[[]byte] // frame sent every KeepaliveInterval instead of pings

	// Read state, touched only by the session's reader.
	in       []byte // a partial frame carried over to the next read
	fragment []byte // payload of a fragmented message
	fragOp   ws.OpCode

	mu       sync.Mutex
	state    int
	queue    [][]byte // frames waiting to be written
	spare    [][]byte // the previous queue's array, reused
	queued   int      // bytes queued or being written
	flushing bool
	replay   bool // live messages are held until history is queued
	held     []heldMessage
}

type heldMessage struct {
	p       *hub.Prepared
	channel string
}

// Start begins reading from the client. Messages delivered before Live
// (from the moment of Upgrade) are held back so that history goes first.
func (s *Session) Start(encode Encoder, onMessage MessageHandler, onClose func()) {
	s.encode, s.onMessage, s.onClose = encode, onMessage, onClose
	s.srv.start(s)
}

// SetKeepalive makes the server send frame every KeepaliveInterval instead
// of WebSocket pings: for protocols whose clients watch for a ping message
// of their own and reconnect when it stops.
func (s *Session) SetKeepalive(frame []byte) { s.keepalive.Store(&frame) }

// Deliver implements hub.Subscriber.
func (s *Session) Deliver(p *hub.Prepared, channel string) {
	s.mu.Lock()
	if s.replay {
		s.held = append(s.held, heldMessage{p, channel})
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.send(s.encode(p, channel), p.Fanout <= inlineFanout)
}

// inlineFanout is the largest broadcast whose frames the publishing
// goroutine writes itself: for a few subscribers that saves a hand-off to
// a flush worker per message; for many, the workers write in parallel.
const inlineFanout = 4

// Live queues history (the messages the client missed, oldest first, with
// the channel each envelope names), then the live messages held since
// Start that history does not already hold, and switches to live delivery.
func (s *Session) Live(history []*protocol.Message, channelOf func(*protocol.Message) string) {
	s.mu.Lock()
	var inHistory map[string]struct{}
	if len(history) > 0 && len(s.held) > 0 {
		inHistory = make(map[string]struct{}, len(history))
		for _, m := range history {
			inHistory[m.MID] = struct{}{}
		}
	}
	frames := make([][]byte, 0, len(history)+len(s.held))
	for _, m := range history {
		frames = append(frames, s.encode(hub.NewPrepared(m), channelOf(m)))
	}
	for _, h := range s.held {
		if _, dup := inHistory[h.p.Msg.MID]; !dup {
			frames = append(frames, s.encode(h.p, h.channel))
		}
	}
	s.held, s.replay = nil, false
	s.mu.Unlock()
	for _, f := range frames {
		s.Send(f)
	}
}

// Send queues a frame. A client whose queue would pass the byte limit is
// disconnected: a slow consumer must not grow the server's memory.
func (s *Session) Send(frame []byte) { s.send(frame, false) }

// send queues a frame; with inline set, an idle session is flushed on the
// calling goroutine (without ever blocking it) instead of by a worker.
func (s *Session) send(frame []byte, inline bool) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	if s.queued+len(frame) > s.srv.opts.MaxQueueBytes {
		s.mu.Unlock()
		s.srv.metrics.SlowConsumers.Add(1)
		// Send runs inside hub broadcasts, whose locks onClose needs:
		// stop queueing now, tear down on another goroutine.
		s.abortLater()
		return
	}
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	kick := !s.flushing
	s.flushing = true
	s.mu.Unlock()
	switch {
	case !kick:
	case inline && s.raw != nil:
		s.flush(false)
	default:
		s.srv.schedule(s)
	}
}

// Close queues a close frame and closes the socket once everything queued
// before it is written.
func (s *Session) Close(code int, reason string) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	s.queue = append(s.queue, closeFrame(code, reason))
	kick := !s.flushing
	s.flushing = true
	s.mu.Unlock()
	if kick {
		s.srv.schedule(s)
	}
}

// abort closes the socket at once, dropping whatever is queued.
func (s *Session) abort() {
	if s.markClosed() {
		s.teardown()
	}
}

// abortLater closes the socket at once but tears the session down on
// another goroutine: flush may run inside a hub broadcast (small fan-outs
// are written by the publishing goroutine), whose locks onClose needs.
func (s *Session) abortLater() {
	if s.markClosed() {
		go s.teardown()
	}
}

// markClosed stops the session from queueing; false if it already was.
func (s *Session) markClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed {
		return false
	}
	s.state = stateClosed
	s.queue, s.spare, s.held = nil, nil, nil
	return true
}

func (s *Session) teardown() {
	s.srv.forget(s)
	s.conn.Close()
	if s.onClose != nil {
		s.onClose()
	}
}

// flush writes the queue until it is empty. With a raw socket it never
// blocks: when the peer's socket buffer fills it hands the rest to a
// goroutine that waits for the socket, and returns.
func (s *Session) flush(blocking bool) {
	for {
		s.mu.Lock()
		if s.state == stateClosed {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		bufs := s.queue
		if len(bufs) == 0 {
			s.flushing = false
			closing := s.state == stateClosing
			s.mu.Unlock()
			if closing {
				s.abortLater()
			}
			return
		}
		s.queue, s.spare = s.spare, nil
		s.mu.Unlock()

		n := 0
		for _, b := range bufs {
			n += len(b)
		}
		var err error
		if blocking || s.raw == nil {
			err = s.writeBlocking(bufs)
		} else {
			var rest [][]byte
			rest, err = s.writeNonBlocking(bufs)
			if err == nil && len(rest) > 0 {
				go s.finishBlocking(rest, n, bufs)
				return
			}
		}
		if err != nil {
			s.abortLater()
			return
		}
		s.written(n, bufs)
	}
}

// finishBlocking writes what a non-blocking flush left over, then keeps
// flushing in blocking mode.
func (s *Session) finishBlocking(rest [][]byte, n int, bufs [][]byte) {
	if err := s.writeBlocking(rest); err != nil {
		s.abort()
		return
	}
	s.written(n, bufs)
	s.flush(true)
}

func (s *Session) written(n int, bufs [][]byte) {
	s.srv.metrics.Frames.Add(int64(len(bufs)))
	clear(bufs)
	s.mu.Lock()
	s.queued -= n
	if s.spare == nil && cap(bufs) <= 64 {
		s.spare = bufs[:0]
	}
	s.mu.Unlock()
}

func (s *Session) writeBlocking(bufs [][]byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout)); err != nil {
		return err
	}
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(s.conn)
	return err
}

// writeNonBlocking writes as much of bufs as the socket takes now and
// returns the rest.
func (s *Session) writeNonBlocking(bufs [][]byte) ([][]byte, error) {
	const maxIov = 1024
	// advance reslices bufs in place: the array is this flush's own queue.
	for len(bufs) > 0 {
		chunk := bufs
		if len(chunk) > maxIov {
			chunk = chunk[:maxIov]
		}
		var n int
		var werr error
		if err := s.raw.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), chunk)
			return true
		}); err != nil {
			return nil, err
		}
		switch {
		case werr == unix.EAGAIN:
			return bufs, nil
		case werr == unix.EINTR:
			continue
		case werr != nil:
			return nil, werr
		}
		bufs = advance(bufs, n)
	}
	return nil, nil
}

func advance(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// received handles bytes read from the client: complete frames are acted
// on, a trailing partial frame is kept for the next read.
func (s *Session) received(data []byte, r *bytes.Reader) {
	s.lastRead.Store(time.Now().Unix())
	s.mu.Lock()
	closing := s.state != stateOpen
	s.mu.Unlock()
	if closing {
		return // nothing a client sends after a close matters
	}
	if len(s.in) > 0 {
		s.in = append(s.in, data...)
		data = s.in
	}
	off := 0
	for off < len(data) {
		h, hs, err := parseHeader(r, data[off:], s.srv.opts.MaxFrameBytes)
		if err == errIncomplete {
			break
		}
		if err != nil {
			s.protocolError(err)
			return
		}
		end := off + hs + int(h.Length)
		if end > len(data) {
			break
		}
		payload := data[off+hs : end]
		ws.Cipher(payload, h.Mask, 0)
		if !s.frame(h, payload) {
			s.in, s.fragment = nil, nil
			return
		}
		off = end
	}
	if off < len(data) {
		s.in = append(s.in[:0], data[off:]...)
	} else {
		s.in = nil
	}
}

// frame acts on one client frame; false means the session is closing.
func (s *Session) frame(h ws.Header, payload []byte) bool {
	switch h.OpCode {
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameDataUnsafe(payload)
		if code == 0 {
			code = CloseNormal
		}
		s.Close(int(code), "")
		return false
	case ws.OpPing:
		s.Send(frame(ws.OpPong, append([]byte(nil), payload...)))
	case ws.OpPong:
	case ws.OpText, ws.OpBinary:
		if s.fragment != nil {
			s.protocolError(errBadFrame)
			return false
		}
		if !h.Fin {
			s.fragOp, s.fragment = h.OpCode, append([]byte(nil), payload...)
			return true
		}
		if s.onMessage != nil {
			s.onMessage(s, h.OpCode, payload)
		}
	case ws.OpContinuation:
		if s.fragment == nil || len(s.fragment)+len(payload) > s.srv.opts.MaxFrameBytes {
			s.protocolError(errBadFrame)
			return false
		}
		s.fragment = append(s.fragment, payload...)
		if h.Fin {
			msg, op := s.fragment, s.fragOp
			s.fragment = nil
			if s.onMessage != nil {
				s.onMessage(s, op, msg)
			}
		}
	default:
		s.protocolError(errBadFrame)
		return false
	}
	return true
}

func (s *Session) protocolError(err error) {
	s.in, s.fragment = nil, nil
	code := CloseProtocolError
	if errors.Is(err, errTooBig) {
		code = CloseTooBig
	}
	s.Close(code, err.Error())
}
