package server

import (
	"net/http"
)

// stats answers the statistics of every live process as a JSON array.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		notFound(w)
		return
	}
	st, err := s.engine.Stats(r.Context())
	if err != nil {
		text(w, http.StatusServiceUnavailable, "Statistics are unavailable.")
		return
	}
	writeJSON(w, st)
}
