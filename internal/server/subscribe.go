package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/pushpull/pushpull/internal/transport/poll"
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
		text(w, http.StatusBadRequest, msgBadQuery)
		return
	}
	legacy := legacyCursor(r, q)
	if legacy != nil {
		h.Set("Access-Control-Expose-Headers", poll.LegacyExposeHeaders)
	}
	sub, status, msg := s.parseSubscriber(r, q)
	if status != 0 {
		text(w, status, msg)
		return
	}
	if isUpgrade(r) {
		if legacy != nil {
			// A version 1-2 WebSocket resumes exactly by its tag; its
			// frames then carry the mid it resumes by from then on.
			sub.mid = legacy.MID
		}
		s.serveConn(w, r, sub)
		return
	}
	req := poll.Request{Channels: sub.ids, MID: sub.mid, Format: poll.Text, Legacy: legacy, Name: bareChannel}
	switch sub.format {
	case binaryFrames:
		// Protocol 4 long polls get the ResponseBatch a WebSocket frame
		// would carry.
		req.Encode, req.ContentType = encodeBatch, "application/octet-stream"
	case jsonFrames:
		req.Format = poll.JSON
	}
	// Protocol-5 clients do not long-poll; one that does gets text.
	h.Set("Content-Type", "text/plain")
	s.poll.Serve(w, r, req)
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
