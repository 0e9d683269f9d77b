package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/pushpull/pushpull/internal/config"
)

// Answers, with the original server's texts.
const (
	msgEmptyBody = "Empty post requests are not allowed."
	msgBadQuery  = "Malformed query string."
	msgNotStored = "Message could not be stored."
)

// preflight answers a CORS preflight (OPTIONS) with the methods and
// request headers the route allows; every answer already allows any origin.
func preflight(w http.ResponseWriter, methods, headers string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", headers)
	w.WriteHeader(http.StatusOK)
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusNotFound)
}

// text answers with a plain-text status and body.
func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// tooLarge answers 413 and closes the connection, as the original does.
func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	text(w, http.StatusRequestEntityTooLarge, "")
}

// readBody reads a request body within limits.maxPayload, answering 413
// (and closing the connection) above it and 400 for an empty body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, ok := s.readAnyBody(w, r)
	if ok && len(body) == 0 {
		text(w, http.StatusBadRequest, msgEmptyBody)
		return nil, false
	}
	return body, ok
}

// readAnyBody is readBody for protobuf requests, where an empty body is an
// empty RequestBatch.
func (s *Server) readAnyBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	lim := s.limits()
	limit := int64(lim.MaxPayload)
	if r.ContentLength > limit {
		tooLarge(w)
		return nil, false
	}
	// A body must come whole within limits.requestTimeout: a client
	// trickling it would hold its descriptor for ever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(config.Seconds(lim.RequestTimeout)))
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 {
		// Declared (and within the limit): read it into a buffer of its
		// size; net/http ends the body there.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		tooLarge(w)
		return nil, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		text(w, http.StatusRequestTimeout, "Request body was not sent in time.")
		return nil, false
	case err != nil:
		text(w, http.StatusBadRequest, "Request body could not be read.")
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		text(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
