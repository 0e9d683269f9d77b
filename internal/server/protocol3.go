package server

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// Protocol 3 (Push server 1.0) on the publish route: the backend posts a
// text body to the channels of its CHANNEL_ID list, and asks with GET which
// of them have subscribers.

// publish stores a text publish for every listed channel and answers 200
// once it is stored.
func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	// A declared body over the limit is refused before the query is
	// looked at.
	if r.ContentLength > int64(s.limits().MaxPayload) {
		tooLarge(w)
		return
	}
	t, ids, ok := s.channelsAsked(w, r, s.live.Load().signedPublish)
	if !ok {
		return
	}
	for i, id := range ids {
		ids[i] = t.ch(id)
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	m := &protocol.Message{
		Channels: ids,
		Body:     body,
		Expiry:   parseExpiry(r.Header.Get("Message-Expiry")),
	}
	// The publish completes even if the caller hangs up: a message is
	// either stored and delivered or refused, never half done.
	ctx, cancel := s.publishContext(r)
	defer cancel()
	start := time.Now()
	if err := s.engine.Publish(ctx, m); err != nil {
		s.metrics.publishErrors.Inc()
		s.log.Warn("publish failed", "err", err, "channels", len(ids))
		text(w, http.StatusServiceUnavailable, msgNotStored)
		return
	}
	s.metrics.published.Inc()
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
}

// parseExpiry reads Message-Expiry: seconds; anything else means the
// default lifetime.
func parseExpiry(v string) uint32 {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

type onlineInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// online answers which of the asked channels have subscribers:
// {"infos":[{"channel":"<id>","subscribers":N},...]}.
func (s *Server) online(w http.ResponseWriter, r *http.Request) {
	t, ids, ok := s.channelsAsked(w, r, false)
	if !ok {
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = t.ch(id)
	}
	counts, err := s.engine.Online(r.Context(), keys)
	if err != nil {
		text(w, http.StatusServiceUnavailable, "Online status is unavailable.")
		return
	}
	infos := make([]onlineInfo, 0, len(ids))
	for i, id := range ids {
		if counts[i] > 0 {
			infos = append(infos, onlineInfo{id, counts[i]})
		}
	}
	writeJSON(w, map[string]any{"infos": infos})
}

// channelsAsked reads the client and the CHANNEL_ID list of a publish-route
// request, answering the error itself when they are not valid.
func (s *Server) channelsAsked(w http.ResponseWriter, r *http.Request, verify bool) (*tenant, []string, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		text(w, http.StatusBadRequest, msgBadQuery)
		return nil, nil, false
	}
	t, ok := s.tenantOf(r)
	if !ok {
		text(w, http.StatusUnauthorized, "Unknown client id.")
		return nil, nil, false
	}
	ids, err := t.signer.ParseIDList(q.Get("CHANNEL_ID"), verify)
	if err != nil {
		text(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	return t, ids, true
}
