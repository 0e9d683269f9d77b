package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// publishTimeout bounds the engine calls of one publish or client request.
const publishTimeout = 10 * time.Second

// publishContext is the context of one publish: it outlives the request (a
// message is stored and delivered or refused, never half done, even if the
// caller hangs up), bounded by publishTimeout on an engine that may wait.
func (s *Server) publishContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(r.Context())
	if s.gate.Immediate() {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, publishTimeout)
}

// publishRoute serves the backend's publish route: POST publishes (text,
// or protocol 4's protobuf with binaryMode=true), GET reports which of the
// given channels are online.
func (s *Server) publishRoute(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		if strings.Contains(r.URL.RawQuery, "binaryMode") && r.URL.Query().Get("binaryMode") == "true" {
			s.publishBinary(w, r)
			return
		}
		s.publish(w, r)
	case http.MethodGet:
		s.online(w, r)
	default:
		notFound(w)
	}
}

// publishAll publishes messages in order, stopping at the first failure.
func (s *Server) publishAll(ctx context.Context, msgs []*protocol.Message) error {
	for _, m := range msgs {
		start := time.Now()
		if err := s.engine.Publish(ctx, m); err != nil {
			s.metrics.publishErrors.Inc()
			s.log.Warn("publish failed", "err", err, "channels", len(m.Channels))
			return err
		}
		s.metrics.published.Inc()
		s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}
