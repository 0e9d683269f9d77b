package server

import (
	"net/http"
)

// health is the liveness probe: the process answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	text(w, http.StatusOK, "ok")
}

// ready is the readiness probe: green only while the engine stores and
// delivers messages.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if err := s.engine.Ready(r.Context()); err != nil {
		text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	text(w, http.StatusOK, "ready")
}
