package server

import (
	"net/http"
	"net/url"

	"github.com/pushpull/pushpull/internal/transport/poll"
	"github.com/pushpull/pushpull/protocol"
)

// legacyCursor returns the resume position of a version 1-2 client, or nil
// for later versions. Such a client (nginx-push-stream-module era, and the
// old BX.PULL script) sends no usable mid but a tag or time, as query
// parameters or as If-None-Match / If-Modified-Since; a valid mid or a
// mode of versions 4-5 marks a later client, whose mid wins.
func legacyCursor(r *http.Request, q url.Values) *poll.Cursor {
	if protocol.ValidMID(q.Get("mid")) || q.Get("format") == "json" ||
		q.Get("binaryMode") == "true" || q.Get("jsonRpc") == "true" {
		return nil
	}
	c, ok := poll.ParseCursor(q, r.Header)
	if !ok {
		return nil
	}
	return &c
}
