package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// Versions 1 and 2 of the protocol are nginx-push-stream-module long
// polling: the client resumes from the tag and time of the last envelope it
// read, and answers carry them as Etag and Last-Modified.
//
// In the original, time was the second a message was published and tag
// counted messages within that second. pushpull's envelopes of these
// versions carry the message id as tag instead: clients treat the tag as an
// opaque string they echo, so the id makes resuming exact, where a
// per-second counter would need every process to agree on one sequence per
// second. A tag that is not a message id (the client's first request, or a
// position from an nginx-push-stream server) falls back to the time.

// LegacyExposeHeaders is the Access-Control-Expose-Headers value of
// version 1-2 answers: cross-origin scripts read only the headers listed.
const LegacyExposeHeaders = "Last-Message-Id, Etag, Last-Modified"

// Cursor is the resume position of a version 1-2 client.
type Cursor struct {
	MID  string    // the tag, when it is a message id: resume right after it
	Tag  string    // the tag as sent, when it is a number (nginx-push-stream's kind)
	Time time.Time // the time sent, whole seconds; zero when absent or unreadable
}

// maxTagDigits bounds the numeric tags echoed back: nginx-push-stream's were
// machine integers.
const maxTagDigits = 20

// ParseCursor reads the resume position of a version 1-2 request: tag and
// time from the query (where the appliance's nginx read them, since custom
// request headers cost every cross-origin poll a CORS preflight), else from
// If-None-Match and If-Modified-Since. ok is false when the request carries
// none of the four.
func ParseCursor(q url.Values, h http.Header) (c Cursor, ok bool) {
	tag := q.Get("tag")
	if tag == "" {
		tag = h.Get("If-None-Match")
	}
	tm := q.Get("time")
	if tm == "" {
		tm = h.Get("If-Modified-Since")
	}
	if tag == "" && tm == "" {
		return Cursor{}, false
	}
	tag = bareTag(tag)
	switch {
	case protocol.ValidMID(tag):
		c.MID = tag
	case len(tag) <= maxTagDigits && allDigits(tag):
		c.Tag = tag
	}
	if t, err := http.ParseTime(strings.TrimSpace(tm)); err == nil {
		c.Time = t.UTC().Truncate(time.Second)
	}
	return c, true
}

// bareTag strips what HTTP may wrap an entity tag in (W/ and quotes): the
// clients send the tag bare, but a browser or proxy may not.
func bareTag(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// History returns the stored messages of channels after the cursor, oldest
// first: those after its message id, or else those published in or after
// the second of its time. The second itself is included because a tag of
// another kind cannot place the client within it; the clients drop an
// envelope they already processed (they key them by id and time), while a
// skipped message would be lost. Without either there is no history: the
// client waits for new messages.
func (c *Cursor) History(ctx context.Context, s store.Store, channels []string) ([]*protocol.Message, error) {
	if c.MID != "" {
		return s.Since(ctx, channels, c.MID)
	}
	if c.Time.IsZero() {
		return nil, nil
	}
	all, err := s.Since(ctx, channels, "")
	if err != nil {
		return nil, err
	}
	from := c.Time.Unix()
	var out []*protocol.Message
	for _, m := range all {
		if m.Created.Unix() >= from {
			out = append(out, m)
		}
	}
	return out, nil
}

// NotModified implements poll.Position: the headers of a 304: the position the client sent,
// which is still its position (the original answered polling clients so,
// "with their entity tags preserved"), and Last-Message-Id, which the
// current clients adopt as their mid when Expires is the 1973 date. It is
// set only for an exact position: a newest mid read at the end of the hold
// could name a message published after the hold ended, and a client
// resuming after it would never get that message.
func (c *Cursor) NotModified(hd http.Header, _ string) {
	tag := c.MID
	if tag == "" {
		tag = c.Tag
	}
	if tag != "" {
		hd.Set("Etag", tag)
	}
	if !c.Time.IsZero() {
		hd.Set("Last-Modified", c.Time.Format(http.TimeFormat))
	}
	hd.Set("Last-Message-Id", c.MID)
	hd.Set("Expires", ExpiresNever)
	hd.Set("Cache-Control", noStore)
}

// Answered implements poll.Position: the headers of a 200 are the tag and
// time of m, the last message of the answer, which is where the client
// resumes.
func (c *Cursor) Answered(hd http.Header, m *protocol.Message) {
	setPosition(hd, m)
}

// setPosition sets the Etag and Last-Modified of a 200 whose last message
// is m, and what keeps browsers from storing the answer:
// nginx-push-stream-module sent "no-cache, no-store, must-revalidate" on
// every subscriber answer. A browser that stored one would revalidate it
// with If-None-Match and If-Modified-Since of its own, or answer a later
// poll from its cache.
func setPosition(hd http.Header, m *protocol.Message) {
	hd.Set("Etag", m.MID)
	hd.Set("Last-Modified", m.HTTPTime())
	hd.Set("Cache-Control", noStore)
}

const noStore = "no-cache, no-store, must-revalidate"

// FirstPoll is the position of a text-mode long poll that names none: no
// mid, tag or time, no If-None-Match or If-Modified-Since. That is the
// first poll of a version 3 client, and also of a version 1-2 client that
// sends no position before it has read one, and then continues from the
// Etag and Last-Modified of the answer: nginx-push-stream-module set both
// on every long-polling answer, with messages, on a message arriving
// during the hold and at its end. So these answers carry both kinds of
// position: the version 3 headers, and Etag and Last-Modified, which
// version 3 clients do not read (nor do browsers keep them, see
// setPosition). Answers to requests with a mid, or in another mode,
// carry no Etag: no version 1-2 client sends those.
type FirstPoll struct {
	Start time.Time // when the request arrived
}

// NotModified implements poll.Position: the version 3 headers, Etag the
// newest mid (the one Last-Message-Id offers, read while the request
// was already subscribed), Last-Modified the second the request arrived:
// a client resuming from it gets what was published since, possibly
// again what it has of that second, which the clients drop.
func (p FirstPoll) NotModified(hd http.Header, newest string) {
	midPosition{}.NotModified(hd, newest)
	if newest != "" {
		hd.Set("Etag", newest)
	}
	hd.Set("Last-Modified", p.Start.UTC().Format(http.TimeFormat))
	hd.Set("Cache-Control", noStore)
}

// Answered implements poll.Position: the tag and time of m, the last
// message, as for a version 1-2 client.
func (FirstPoll) Answered(hd http.Header, m *protocol.Message) {
	setPosition(hd, m)
}

// legacyCursor returns the resume position of a version 1-2 client, or nil
// for later versions. Such a client (nginx-push-stream-module era, and the
// old BX.PULL script) sends no usable mid but a tag or time, as query
// parameters or as If-None-Match / If-Modified-Since; a valid mid or a
// mode of versions 4-5 marks a later client, whose mid wins.
func legacyCursor(r *http.Request, q url.Values) *Cursor {
	if protocol.ValidMID(q.Get("mid")) || q.Get("format") == "json" ||
		q.Get("binaryMode") == "true" || q.Get("jsonRpc") == "true" {
		return nil
	}
	c, ok := ParseCursor(q, r.Header)
	if !ok {
		return nil
	}
	return &c
}
