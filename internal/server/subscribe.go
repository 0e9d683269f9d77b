package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/transport/poll"
	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// subscribe serves the subscribe route: long polling, or WebSocket when
// the request asks for an upgrade.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.Method {
	case http.MethodOptions:
		preflight(w, "POST, GET, DELETE, OPTIONS", "If-Modified-Since, If-None-Match, Origin")
		return
	case http.MethodGet:
	default:
		notFound(w)
		return
	}
	h.Set("Access-Control-Expose-Headers", "Last-Message-Id")
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.refuseSubscribe(w, r, http.StatusBadRequest, msgBadQuery)
		return
	}
	legacy := legacyCursor(r, q)
	if legacy != nil {
		h.Set("Access-Control-Expose-Headers", LegacyExposeHeaders)
	}
	sub, status, msg := s.parseSubscriber(r, q)
	if status != 0 {
		s.refuseSubscribe(w, r, status, msg)
		return
	}
	release, ok := s.perAddr.acquire(s.clientAddr(r))
	if !ok {
		s.metrics.refusedPerIP.Inc()
		text(w, http.StatusTooManyRequests, s.perAddr.errTooManyFrom())
		return
	}
	sub.proto = versionOf(sub.format, legacy != nil)
	if isUpgrade(r) {
		if legacy != nil {
			// A version 1-2 WebSocket resumes exactly by its tag; its
			// frames then carry the mid it resumes by from then on.
			sub.mid = legacy.MID
		}
		s.serveConn(w, r, sub, release)
		return
	}
	defer release()
	// A protocol-5 client that long-polls (websocket_enabled false, or
	// WebSocket blocked) gets JSON-RPC bodies like the others get their
	// version's: an array of incoming.message notifications.
	req := poll.Request{Channels: sub.ids, MID: sub.mid, Format: sub.format, Position: midPosition{}}
	switch {
	case legacy != nil:
		req.MID, req.Format, req.Position = legacy.MID, format.PushStream, legacy
		req.History = func(ctx context.Context) ([]*protocol.Message, error) {
			return legacy.History(ctx, s.engine, sub.ids)
		}
	case sub.mid != "":
		req.History = func(ctx context.Context) ([]*protocol.Message, error) {
			return s.engine.Since(ctx, sub.ids, sub.mid)
		}
	case sub.format == format.Text:
		// No position at all: a version 3 or a version 1-2 client's
		// first poll.
		req.Position = FirstPoll{Start: time.Now()}
		h.Set("Access-Control-Expose-Headers", LegacyExposeHeaders)
	}
	if history := req.History; history != nil {
		req.History = func(ctx context.Context) ([]*protocol.Message, error) {
			ms, err := history(ctx)
			if err == nil {
				s.metrics.resume(transportPoll, len(ms))
			}
			return ms, err
		}
	}
	if s.conns.limited() {
		evicted := make(chan struct{})
		req.Evicted = evicted
		defer s.conns.remove(s.conns.add(sub.entries, func() { close(evicted) }))
	}
	h.Set("Content-Type", "text/plain")
	s.metrics.connected(sub.proto, transportPoll)
	defer s.metrics.left(sub.proto)
	s.poll.Serve(w, r, req)
}

// refuseSubscribe answers a subscribe request that is refused. A
// WebSocket whose channels are missing or not valid (400) is upgraded and
// closed with 4010, as the push server 2.x does: the clients then fetch a
// new config, where a refused upgrade is to them a network error they
// retry with the config they have. Other refusals, and long polls, get
// the status.
func (s *Server) refuseSubscribe(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status != http.StatusBadRequest || !isUpgrade(r) {
		text(w, status, msg)
		return
	}
	sess, err := s.ws.Upgrade(w, r, ws.FormatEncoder(format.Text))
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	s.log.Debug("websocket refused", "reason", msg)
	s.metrics.closed(protocol.CloseWrongChannel)
	sess.Start(nil, nil)
	sess.Close(protocol.CloseWrongChannel, protocol.Reason(protocol.CloseWrongChannel))
}

// subscriber is what a connection keeps of its subscribe request.
type subscriber struct {
	t       *tenant
	format  format.Format // what its messages are written in
	ids     []string      // hub channels: private ids, their public ids, the user channel
	public  string        // the connection's own public id (bare hex), "" if none
	user    string        // protocol 5 with a token: the user id, "" if none
	private []string      // bare private ids, for listChannels
}

// subscribeRequest is a parsed subscribe request of any version: the
// subscriber, and what only the start of its connection needs.
type subscribeRequest struct {
	*subscriber
	mid     string
	entries []connEntry  // its private channels, for limits.maxConnPerChannel
	proto   protoVersion // for the metrics
}

// parseSubscriber reads a subscribe request of any version: the client
// (shared mode), the frame format, the resume mid, and the channels from
// CHANNEL_ID or a token, with the public ids of pairs and the user's
// channel. A non-zero status is the answer to a request that is refused.
func (s *Server) parseSubscriber(r *http.Request, q url.Values) (*subscribeRequest, int, string) {
	t, ok := s.tenantOf(r)
	if !ok {
		return nil, http.StatusUnauthorized, "Unknown client id."
	}
	sub := &subscribeRequest{subscriber: &subscriber{t: t, format: format.Text}}
	switch {
	case q.Get("jsonRpc") == "true":
		sub.format = format.JSONRPC
	case q.Get("binaryMode") == "true":
		sub.format = format.Protobuf
	case q.Get("format") == "json":
		sub.format = format.JSON
	}
	if mid := q.Get("mid"); protocol.ValidMID(mid) {
		sub.mid = mid
	}
	var channels []protocol.Channel
	if token := q.Get("token"); token != "" {
		if !t.signer.Enabled() {
			return nil, http.StatusUnauthorized, "Tokens need a security key."
		}
		claims, err := t.verifyJWT(token, time.Now())
		if err != nil {
			s.log.Debug("token refused", "err", err)
			return nil, http.StatusUnauthorized, "Token is not valid."
		}
		for _, c := range claims.Channels {
			id, pub, _ := strings.Cut(c, ":")
			if !protocol.ValidID(id) || pub != "" && !protocol.ValidID(pub) {
				return nil, http.StatusUnauthorized, "Token is not valid."
			}
			channels = append(channels, protocol.Channel{ID: id, Public: pub})
		}
		if claims.Subject != "" {
			if _, err := strconv.ParseUint(claims.Subject, 10, 63); err != nil {
				return nil, http.StatusUnauthorized, "Token is not valid."
			}
			sub.user = claims.Subject
		}
		if len(channels) == 0 && sub.user == "" {
			return nil, http.StatusBadRequest, protocol.ErrNoChannel.Error()
		}
	} else {
		var err error
		if channels, err = t.signer.ParseChannels(q.Get("CHANNEL_ID")); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	for _, c := range channels {
		sub.private = append(sub.private, c.ID)
		sub.entries = append(sub.entries, connEntry{channel: t.ch(c.ID), public: c.Public != ""})
		sub.ids = append(sub.ids, t.ch(c.ID))
		if c.Public != "" {
			// A publish to the public id reaches the connection too.
			sub.ids = append(sub.ids, t.ch(c.Public))
			if sub.public == "" {
				sub.public = c.Public
			}
		}
	}
	if sub.user != "" {
		sub.ids = append(sub.ids, t.userChannel(sub.user))
	}
	sub.ids = protocol.UniqueIDs(sub.ids)
	// The ids are slices of the request line, which a connection would
	// otherwise keep whole for as long as it lasts.
	for i := range sub.ids {
		sub.ids[i] = strings.Clone(sub.ids[i])
	}
	// One copy of each id for the hub, the limit and listChannels.
	shared := func(id string) string {
		if j := slices.Index(sub.ids, id); j >= 0 {
			return sub.ids[j]
		}
		return strings.Clone(id)
	}
	for i := range sub.private {
		sub.private[i] = shared(sub.private[i])
	}
	for i := range sub.entries {
		sub.entries[i].channel = shared(sub.entries[i].channel)
	}
	sub.public, sub.user, sub.mid = strings.Clone(sub.public), strings.Clone(sub.user), strings.Clone(sub.mid)
	return sub, 0, ""
}

// ExpiresNever is the Expires value the clients require on a 304 before
// they take its Last-Message-Id.
const ExpiresNever = "Thu, 01 Jan 1973 11:11:01 GMT"

// midPosition is where a client of protocols 3-5 resumes: a 304 names the
// newest mid it may resume after; a 200's messages carry their mids.
type midPosition struct{}

func (midPosition) NotModified(h http.Header, newest string) {
	h.Set("Last-Message-Id", newest)
	h.Set("Expires", ExpiresNever)
}

func (midPosition) Answered(http.Header, *protocol.Message) {}

func isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	// The appliance's nginx sends "Upgrade: websocket" on every request to
	// /bitrix/subws/, with "Connection: close" on those that are no
	// handshake: those are long polls, as the original server took them.
	for _, v := range r.Header.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}
