package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/pushpull/pushpull/internal/transport/poll"
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
		text(w, http.StatusBadRequest, msgBadQuery)
		return
	}
	legacy := legacyCursor(r, q)
	if legacy != nil {
		h.Set("Access-Control-Expose-Headers", LegacyExposeHeaders)
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
	}
	if req.Format == format.JSONRPC {
		// Protocol-5 clients do not long-poll; one that does gets text.
		req.Format = format.Text
	}
	h.Set("Content-Type", "text/plain")
	s.poll.Serve(w, r, req)
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
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
