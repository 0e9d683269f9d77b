package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// conn is a protocol 4-5 WebSocket connection.
type conn struct {
	s    *Server
	sess *ws.Session
	sub  *subscriber
	id   string // unique on this process, for presence
	// release ends the connection's count in limits.maxConnPerIP.
	release func()
	// proto is the connection's protocol version, for the metrics.
	proto protoVersion

	mu     sync.Mutex
	closed bool
	// Client frames are handled in order on a goroutine that runs only
	// while some wait (they may wait for the engine; the reactor only
	// queues them): an idle connection keeps no goroutine.
	pending  [][]byte
	pendingN int // bytes in pending
	working  bool
	statuses map[string]struct{} // users whose status changes it follows
	lim      *limitedConn        // its place in limits.maxConnPerChannel's count

	// The connection's presence is recorded and removed on goroutines of
	// their own; these make the removal win whatever order they run in.
	presenceMu sync.Mutex
	joined     bool
	left       bool
}

// maxPendingFrames bounds the client frames waiting to be handled, and
// twice websocket.maxFrameBytes their bytes: a client that sends faster
// than they are handled is disconnected.
const maxPendingFrames = 64

func (s *Server) serveConn(w http.ResponseWriter, r *http.Request, sub *subscribeRequest, release func()) {
	sess, err := s.ws.Upgrade(w, r, ws.FormatEncoder(sub.format))
	if err != nil {
		release()
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	c := &conn{
		s: s, sess: sess, sub: sub.subscriber, release: release,
		id:    strconv.FormatUint(s.connSeq.Add(1), 10),
		proto: sub.proto,
	}
	s.metrics.connected(sub.proto, transportWS)
	sess.Channel = sub.ids[0]
	s.hub.Subscribe(sess, sub.ids)
	var onMessage ws.MessageHandler
	if sub.format == format.Protobuf || sub.format == format.JSONRPC {
		onMessage = c.received
	}
	if sub.format == format.JSONRPC {
		sess.SetKeepalive(ws.TextFrame([]byte("ping")))
	}
	sess.Start(onMessage, c.gone)
	// Counted once started, so that an eviction ends a running session
	// (gone then stops the count); a session already gone is not counted.
	lim := s.conns.add(sub.entries, func() {
		sess.Close(protocol.CloseTooManyConns, protocol.Reason(protocol.CloseTooManyConns))
	})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.conns.remove(lim)
	} else {
		c.lim = lim
		c.mu.Unlock()
	}
	ctx := r.Context()
	s.engine.Subscribed(ctx, sub.ids)
	if sub.user != "" {
		go c.presence(true)
	}
	var history []*protocol.Message
	if sub.mid != "" {
		if history, err = s.engine.Since(ctx, sub.ids, sub.mid); err != nil {
			s.log.Warn("history unavailable", "err", err)
			sess.Close(protocol.CloseInternalError, "history unavailable")
			return
		}
		s.metrics.resume(transportWS, len(history))
		// The client has everything up to its mid: a message at or below
		// it that reaches this process late (its pub/sub behind another
		// process's) is not sent again. A mid ahead of every stored one
		// (from another installation) holds back nothing newer than those.
		after := sub.mid
		if newest, err := s.engine.Last(ctx, sub.ids); err == nil && newest < after {
			after = newest
		}
		sess.ResumeAfter(after)
	}
	sess.Live(history, func(m *protocol.Message) string { return protocol.FirstChannel(m, sub.ids) })
}

// gone runs once the session is gone.
func (c *conn) gone() {
	c.mu.Lock()
	c.closed = true
	statuses := make([]string, 0, len(c.statuses))
	for ch := range c.statuses {
		statuses = append(statuses, ch)
	}
	c.statuses = nil
	c.pending, c.pendingN = nil, 0
	lim := c.lim
	c.lim = nil
	c.mu.Unlock()
	c.s.metrics.disconnected(c.proto, c.sess.CloseCode())
	c.s.conns.remove(lim)
	c.release()
	c.s.hub.Unsubscribe(c.sess, c.sub.ids)
	c.s.hub.Unsubscribe(c.sess, statuses)
	if c.sub.user != "" {
		go c.presence(false)
	}
}

// received queues a client data frame.
func (c *conn) received(_ *ws.Session, op gws.OpCode, payload []byte) {
	if c.sub.format == format.JSONRPC && op == gws.OpText {
		// Keepalive answers and delivery acknowledgements need nothing.
		if string(payload) == "pong" || strings.HasPrefix(string(payload), "mack:") {
			return
		}
	}
	if c.sub.format == format.Protobuf && op != gws.OpBinary {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.pending) >= maxPendingFrames || c.pendingN+len(payload) > 2*c.s.cfg.WebSocket.MaxFrameBytes {
		c.mu.Unlock()
		c.sess.Close(protocol.ClosePolicy, "too many requests")
		return
	}
	c.pending = append(c.pending, append([]byte(nil), payload...))
	c.pendingN += len(payload)
	start := !c.working
	c.working = true
	c.mu.Unlock()
	if start {
		go c.run()
	}
}

// run handles the queued client frames in order, then ends.
func (c *conn) run() {
	for {
		c.mu.Lock()
		if c.closed || len(c.pending) == 0 {
			c.working = false
			c.mu.Unlock()
			return
		}
		data := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		c.pendingN -= len(data)
		c.mu.Unlock()
		if c.sub.format == format.Protobuf {
			c.binaryRequest(data)
		} else {
			c.rpcRequest(data)
		}
	}
}

// presence records the user's connection or its end and tells the
// user's status subscribers when the user came online or went offline.
func (c *conn) presence(online bool) {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if online && c.left || !online && (c.left || !c.joined) {
		c.left = c.left || !online
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	t, user := c.sub.t, c.sub.user
	var change bool
	var err error
	if online {
		c.joined = true
		change, err = c.s.engine.UserConnected(ctx, t.user(user), c.id)
	} else {
		c.left = true
		change, err = c.s.engine.UserDisconnected(ctx, t.user(user), c.id)
	}
	if err != nil {
		c.s.log.Warn("presence", "err", err)
		return
	}
	if !change {
		return
	}
	now := time.Now()
	body := `{"module_id":"online","command":"userStatusChange","params":{"user_id":` + user +
		`,"online":` + strconv.FormatBool(online) + `},"extra":{"server_time":"` + now.UTC().Format(time.RFC3339) +
		`","server_time_unix":` + strconv.FormatInt(now.Unix(), 10) + `}}`
	m := &protocol.Message{Channels: []string{t.statusChannel(user)}, Body: []byte(body), Expiry: 60}
	if err := c.s.engine.Publish(ctx, m); err != nil {
		c.s.log.Warn("status change not published", "err", err)
	}
}
