package ws

import (
	"bytes"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
)

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
	srv *Server
	// conn is the connection of a session the reactor does not drive (TLS,
	// or no epoll), set by Upgrade; of one it drives, the connection made
	// for writes that wait, nil until one does (guarded by mu).
	conn net.Conn
	sock socket // the descriptor of a session the reactor drives

	// The server's list of open sessions, guarded by srv.mu.
	prev, next *Session

	// Channel is the first channel the session subscribed to: the one
	// that messages addressed to the connection itself name. The package
	// does not use it.
	Channel string

	encode    Encoder // set by Upgrade, never changed: Deliver may run from then on
	onMessage MessageHandler
	onClose   func()

	lastRead     atomic.Int64           // unix seconds of the last byte read
	partialSince atomic.Int64           // unix seconds since a client message has been incomplete; 0: none is
	keepalive    atomic.Pointer[[]byte] // frame sent every KeepaliveInterval instead of pings

	// Read state, touched only by the session's reader.
	in       []byte // a partial frame carried over to the next read
	fragment []byte // payload of a fragmented message

	// Guarded by mu (see LOCKS.md: a session's lock is the innermost).
	// The small fields are packed beside it, with the three that are not
	// its (fragOp, the reader's; listed and pingSlot, srv.mu's).
	mu       sync.Mutex
	state    uint8
	reap     bool // closed, but not yet torn down
	flushing bool // someone owns writing the queue
	stalled  bool // the peer's socket was full at the last write: it is not reading
	replay   bool // live messages are held until history is queued
	fragOp   ws.OpCode
	listed   bool
	pingSlot uint8 // the step of the pinger's round that pings it (srv.mu's, set once)
	// closeCode is the code of the close frame queued (the client's, when
	// it closed), or 1006 for a session that ended without one; 0 while open.
	closeCode uint16
	queue     [][]byte // frames waiting to be written
	spare     [][]byte // the previous queue's array, reused
	queued    int      // bytes queued or being written
	held      []heldMessage
	// The newest message queued and the index, in its channel list, of
	// the channel it came through: a later delivery must come after it,
	// so a session never sends a message twice or out of id order.
	lastMID string
	lastIdx int
}

type heldMessage struct {
	p       *hub.Prepared
	channel string
}

// Start begins reading from the client. Messages delivered before Live
// (from the moment of Upgrade) are held back so that history goes first.
func (s *Session) Start(onMessage MessageHandler, onClose func()) {
	s.onMessage, s.onClose = onMessage, onClose
	s.srv.start(s)
}

// SetKeepalive makes the server send frame every KeepaliveInterval instead
// of WebSocket pings: for protocols whose clients watch for a ping message
// of their own and reconnect when it stops.
func (s *Session) SetKeepalive(frame []byte) { s.keepalive.Store(&frame) }

// after reports whether a message with id mid, delivered through the
// channel at index idx of its list, comes after position (last, lastIdx):
// a later id, or another channel's copy of the same message. Messages
// without an id (never stored) always pass.
func after(mid string, idx int, last string, lastIdx int) bool {
	return mid == "" || mid > last || mid == last && idx > lastIdx
}

func channelIndex(m *protocol.Message, channel string) int {
	for i, c := range m.Channels {
		if c == channel {
			return i
		}
	}
	return len(m.Channels)
}

// Deliver implements hub.Subscriber: it only queues. The frame is the
// broadcast's shared encoding, made before the session's lock is taken.
func (s *Session) Deliver(p *hub.Prepared, channel string) hub.Flusher {
	frame := s.encode.Frame(p, channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state != stateOpen:
		return nil
	case s.replay:
		s.held = append(s.held, heldMessage{p, channel})
		return nil
	}
	idx := channelIndex(p.Msg, channel)
	if !after(p.Msg.MID, idx, s.lastMID, s.lastIdx) {
		return nil // already sent, from history or an earlier delivery
	}
	if p.Msg.MID != "" {
		s.lastMID, s.lastIdx = p.Msg.MID, idx
	}
	return s.enqueueLocked(frame)
}

// Flush implements hub.Flusher.
func (s *Session) Flush(inline bool) {
	if s.reaped() {
		return
	}
	if inline && s.sock.owned {
		s.flush(false)
	} else {
		s.srv.schedule(s)
	}
}

// ResumeAfter tells a session, before Live, the id of the last message
// the client already has: nothing at or below it is sent, however late it
// is delivered.
func (s *Session) ResumeAfter(mid string) {
	s.mu.Lock()
	if mid > s.lastMID {
		s.lastMID, s.lastIdx = mid, math.MaxInt
	}
	s.mu.Unlock()
}

// Live queues history (the messages the client missed, oldest first, with
// the channel each envelope names), then the live messages held since
// Start that come after it, and switches to live delivery. Frames are
// encoded outside the session's lock; the last of them is queued in the
// same critical section that ends the replay, so no live message can come
// between.
func (s *Session) Live(history []*protocol.Message, channelOf func(*protocol.Message) string) {
	s.mu.Lock()
	last, lastIdx := s.lastMID, s.lastIdx
	s.mu.Unlock()
	var frames [][]byte
	add := func(p *hub.Prepared, channel string) {
		idx := channelIndex(p.Msg, channel)
		if !after(p.Msg.MID, idx, last, lastIdx) {
			return
		}
		if p.Msg.MID != "" {
			last, lastIdx = p.Msg.MID, idx
		}
		frames = append(frames, s.encode.Frame(p, channel))
	}
	for _, m := range history {
		add(hub.NewPrepared(m), channelOf(m))
	}
	for {
		s.mu.Lock()
		held := s.held
		s.held = nil
		if s.state != stateOpen {
			s.mu.Unlock()
			return
		}
		if len(held) == 0 {
			s.replay = false
			s.lastMID, s.lastIdx = last, lastIdx
			var f hub.Flusher
			for _, frame := range frames {
				if f2 := s.enqueueLocked(frame); f2 != nil {
					f = f2
				}
			}
			s.mu.Unlock()
			if f != nil {
				f.Flush(true) // this goroutine holds no lock
			}
			return
		}
		s.mu.Unlock()
		for _, h := range held {
			add(h.p, h.channel)
		}
	}
}

// Send queues a frame outside any broadcast. The caller holds no lock.
func (s *Session) Send(frame []byte) {
	s.mu.Lock()
	var f hub.Flusher
	if s.state == stateOpen {
		f = s.enqueueLocked(frame)
	}
	s.mu.Unlock()
	if f != nil {
		f.Flush(false)
	}
}

// busyFactor is how far past MaxQueueBytes the queue of a client that is
// reading may grow: its queue is long because the server has not written
// it yet, not because the client does not read.
const busyFactor = 4

// enqueueLocked queues a frame on an open session and returns the session
// when its queue needs someone to write it: nobody owned the writing yet,
// or the session was just closed. A client whose queue would pass the byte
// limit while its socket is full (it does not read) is closed at once: a
// slow consumer must not grow the server's memory. One whose socket takes
// what is written may queue up to busyFactor times the limit while the
// server is too busy to write it. The caller holds s.mu.
func (s *Session) enqueueLocked(frame []byte) hub.Flusher {
	if s.state == stateClosed {
		return nil
	}
	if n := s.queued + len(frame); n > s.srv.opts.MaxQueueBytes && (s.stalled || n > busyFactor*s.srv.opts.MaxQueueBytes) {
		s.srv.metrics.SlowConsumers.Add(1)
		s.markClosedLocked()
		return s // its Flush tears it down, holding no lock
	}
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	if s.flushing {
		return nil
	}
	s.flushing = true
	return s
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
	s.closeCode = uint16(code)
	s.queue = append(s.queue, closeFrame(code, reason))
	kick := !s.flushing
	s.flushing = true
	s.mu.Unlock()
	if kick {
		s.srv.schedule(s)
	}
}

// CloseAbnormal is the code a session that ended without a close frame
// reports (RFC 6455 section 7.1.5): the peer went away, stopped answering
// pings, or its queue overflowed.
const CloseAbnormal = 1006

// CloseCode returns the code the session closed with: that of the close
// frame it queued (the client's own, when the client closed), or
// CloseAbnormal; 0 while it is open.
func (s *Session) CloseCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.closeCode)
}

// shut closes the socket at once, dropping whatever is queued, and tears
// the session down. It is the one way a session ends; the caller holds no
// lock (Deliver, which runs under locks, only marks the session closed and
// leaves the teardown to its Flush).
func (s *Session) shut() {
	s.mu.Lock()
	s.markClosedLocked()
	s.mu.Unlock()
	s.reaped()
}

// markClosedLocked stops the session from queueing. The caller holds s.mu.
func (s *Session) markClosedLocked() {
	if s.state == stateClosed {
		return
	}
	s.state = stateClosed
	if s.closeCode == 0 {
		s.closeCode = CloseAbnormal
	}
	s.reap = true
	s.queue, s.spare, s.held = nil, nil, nil
}

// reaped tears a closed session down, once, and reports whether it is
// closed. The caller holds no lock.
func (s *Session) reaped() bool {
	s.mu.Lock()
	closed, reap := s.state == stateClosed, s.reap
	s.reap = false
	s.mu.Unlock()
	if reap {
		s.srv.forget(s) // out of the reactor before the descriptor closes
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		if c != nil {
			c.Close()
		}
		if s.sock.owned {
			s.sock.close()
		}
		if s.onClose != nil {
			s.onClose()
		}
	}
	return closed
}

// flush writes the queue until it is empty. With a raw socket it never
// blocks: when the peer's socket buffer fills it hands the rest to a
// goroutine that waits for the socket, and returns. It runs on a flush
// worker, or inline on a delivering goroutine that holds no lock.
func (s *Session) flush(blocking bool) {
	for {
		s.mu.Lock()
		if s.state == stateClosed {
			s.flushing = false
			s.mu.Unlock()
			s.reaped()
			return
		}
		bufs := s.queue
		if len(bufs) == 0 {
			s.flushing = false
			closing := s.state == stateClosing
			s.mu.Unlock()
			if closing {
				s.shut()
			}
			return
		}
		s.queue, s.spare = s.spare, nil
		s.mu.Unlock()

		n := 0
		for _, b := range bufs {
			n += len(b)
		}
		frames := len(bufs)
		if s.encode.Join && len(bufs) > 1 {
			bufs, frames = join(bufs)
		}
		var err error
		if blocking || !s.sock.owned {
			s.setStalled(true) // a blocking write cannot tell a full socket from a slow one
			err = s.writeBlocking(bufs)
		} else {
			var rest [][]byte
			rest, err = s.writeNonBlocking(bufs)
			if err == nil && len(rest) > 0 {
				s.setStalled(true)
				go s.finishBlocking(rest, n, frames, bufs)
				return
			}
		}
		if err != nil {
			s.shut()
			return
		}
		s.written(n, frames, bufs)
	}
}

// finishBlocking writes what a non-blocking flush left over, then keeps
// flushing in blocking mode.
func (s *Session) finishBlocking(rest [][]byte, n, frames int, bufs [][]byte) {
	if err := s.writeBlocking(rest); err != nil {
		s.shut()
		return
	}
	s.written(n, frames, bufs)
	s.flush(true)
}

func (s *Session) setStalled(v bool) {
	s.mu.Lock()
	s.stalled = v
	s.mu.Unlock()
}

// written accounts for n queued bytes written as frames frames from bufs.
func (s *Session) written(n, frames int, bufs [][]byte) {
	s.srv.metrics.Frames.Add(int64(frames))
	s.srv.metrics.Bytes.Add(int64(n))
	clear(bufs)
	s.mu.Lock()
	s.stalled = false
	s.queued -= n
	// An array of one is not kept: an idle session would hold it for
	// nothing, and a new one costs as little as reusing it.
	if s.spare == nil && cap(bufs) > 1 && cap(bufs) <= 64 {
		s.spare = bufs[:0]
	}
	s.mu.Unlock()
}

func (s *Session) writeBlocking(bufs [][]byte) error {
	c, err := s.waitingConn()
	if err != nil {
		return err
	}
	if err := c.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout)); err != nil {
		return err
	}
	nb := net.Buffers(bufs)
	_, err = nb.WriteTo(c)
	return err
}

// waitingConn returns the connection writes that wait for the peer use:
// for a session the reactor drives, one made on its descriptor the first
// time (a peer that stops reading), kept until the session ends.
func (s *Session) waitingConn() (net.Conn, error) {
	s.mu.Lock()
	c, closed := s.conn, s.state == stateClosed
	s.mu.Unlock()
	switch {
	case c != nil:
		return c, nil
	case closed || !s.sock.owned:
		return nil, errSocketClosed
	}
	made, err := s.sock.conn()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		made.Close()
		return nil, errSocketClosed
	}
	if s.conn == nil {
		s.conn = made
		made = nil
	}
	c = s.conn
	s.mu.Unlock()
	if made != nil {
		made.Close()
	}
	return c, nil
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
		n, werr := s.sock.writev(chunk)
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
	switch {
	case off == len(data):
		s.in = nil
	case len(s.in) == 0 || off > 0:
		// data is the read buffer, or its head was acted on: keep the
		// rest. A message trickled in small reads is not copied again on
		// each: s.in already holds it when nothing was complete.
		s.in = append(s.in[:0], data[off:]...)
	}
	// A message begun must be finished within FrameTimeout (the pinger
	// closes the session otherwise): a client trickling a large frame
	// would pin its buffer for ever.
	switch {
	case len(s.in) == 0 && s.fragment == nil:
		s.partialSince.Store(0)
	case s.partialSince.Load() == 0:
		s.partialSince.Store(time.Now().UnixMilli())
	}
}

// frame acts on one client frame; false means the session is closing.
func (s *Session) frame(h ws.Header, payload []byte) bool {
	switch h.OpCode {
	case ws.OpClose:
		code, reason, err := parseClose(payload)
		if err != nil {
			s.protocolError(err)
			return false
		}
		s.Close(code, reason)
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
		return s.message(h.OpCode, payload)
	case ws.OpContinuation:
		switch {
		case s.fragment == nil:
			s.protocolError(errBadFrame)
			return false
		case len(s.fragment)+len(payload) > s.srv.opts.MaxFrameBytes:
			s.protocolError(errTooBig)
			return false
		}
		s.fragment = append(s.fragment, payload...)
		if h.Fin {
			msg, op := s.fragment, s.fragOp
			s.fragment = nil
			return s.message(op, msg)
		}
	default:
		s.protocolError(errBadFrame)
		return false
	}
	return true
}

// message hands a complete data message to the owner; a text message that
// is not UTF-8 closes the session with 1007 (RFC 6455 section 8.1).
func (s *Session) message(op ws.OpCode, payload []byte) bool {
	if op == ws.OpText && !utf8.Valid(payload) {
		s.protocolError(errNotUTF8)
		return false
	}
	if s.onMessage != nil {
		s.onMessage(s, op, payload)
	}
	return true
}

// parseClose reads a client's close frame: no body (code 1005, answered
// 1000), or a code a peer may send (RFC 6455 section 7.4) and a UTF-8
// reason. The session answers with the code it got.
func parseClose(payload []byte) (int, string, error) {
	switch {
	case len(payload) == 0:
		return protocol.CloseNormal, "", nil
	case len(payload) == 1:
		return 0, "", errBadFrame
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(payload)
	switch {
	case !sendableCode(int(code)):
		return 0, "", errBadFrame
	case !utf8.ValidString(reason):
		return 0, "", errNotUTF8
	}
	return int(code), "", nil
}

// sendableCode reports whether a peer may send code in a close frame:
// 1000-1003 and 1007-1011 of the registered codes, and 3000-4999.
func sendableCode(c int) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	}
	return c >= 3000 && c <= 4999
}

func (s *Session) protocolError(err error) {
	s.in, s.fragment = nil, nil
	code := protocol.CloseProtocolError
	switch {
	case errors.Is(err, errTooBig):
		code = protocol.CloseTooBig
	case errors.Is(err, errNotUTF8):
		code = protocol.CloseInvalidPayload
	}
	s.Close(code, err.Error())
}
