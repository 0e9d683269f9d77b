package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/transport/poll"
	"github.com/pushpull/pushpull/protocol"
)

// subscribe serves the subscribe route: long polling, or WebSocket when
// the request asks for an upgrade.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.Method {
	case http.MethodOptions:
		h.Set("Content-Type", "text/plain")
		h.Set("Access-Control-Allow-Methods", "POST, GET, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "If-Modified-Since, If-None-Match, Origin")
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodGet:
	default:
		notFound(w)
		return
	}
	h.Set("Access-Control-Expose-Headers", "Last-Message-Id")
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		text(w, http.StatusBadRequest, msgBadQuery)
		return
	}
	if s.subscribeV45(w, r, q) {
		return
	}
	legacy := legacyCursor(r, q)
	if legacy != nil {
		h.Set("Access-Control-Expose-Headers", poll.LegacyExposeHeaders)
	}
	channels, err := s.signer.ParseChannels(q.Get("CHANNEL_ID"))
	if err != nil {
		text(w, http.StatusBadRequest, err.Error())
		return
	}
	ids := make([]string, len(channels))
	for i, c := range channels {
		ids[i] = c.ID
	}
	mid := q.Get("mid")
	if !protocol.ValidMID(mid) {
		mid = ""
	}
	frames := textFrames
	format := poll.Text
	if q.Get("format") == "json" {
		frames, format = jsonFrames, poll.JSON
	}
	if isUpgrade(r) {
		if legacy != nil {
			// A version 1-2 WebSocket resumes exactly by its tag; its
			// frames then carry the mid it resumes by from then on.
			mid = legacy.MID
		}
		s.serveWebSocket(w, r, ids, mid, frames)
		return
	}
	h.Set("Content-Type", "text/plain")
	s.poll.Serve(w, r, poll.Request{Channels: ids, MID: mid, Format: format, Legacy: legacy})
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, ids []string, mid string, format int) {
	sess, err := s.ws.Upgrade(w, r)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	sess.Channel = ids[0]
	// Subscribe before reading history: the session holds live messages
	// until the history is queued, and drops those the history repeats.
	s.hub.Subscribe(sess, ids)
	sess.Start(func(p *hub.Prepared, channel string) []byte {
		return p.Encoded(hub.Key{Format: format, Channel: channel}, frameEncoders[format])
	}, nil, func() { s.hub.Unsubscribe(sess, ids) })
	ctx := r.Context()
	s.engine.Subscribed(ctx, ids)
	var history []*protocol.Message
	if mid != "" {
		if history, err = s.engine.Since(ctx, ids, mid); err != nil {
			s.log.Warn("history unavailable", "err", err)
			sess.Close(1011, "history unavailable")
			return
		}
	}
	sess.Live(history, func(m *protocol.Message) string { return poll.FirstChannel(m, ids) })
}
