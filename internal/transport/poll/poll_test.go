package poll

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

const ch = "0123456789abcdef0123456789abcdef"

type noCounters struct{}

func (noCounters) WebSockets() int64 { return 0 }
func (noCounters) Pollings() int64   { return 0 }

// position records what Serve asked it to write.
type position struct{ newest, last string }

func (p *position) NotModified(h http.Header, newest string) { p.newest = newest }
func (p *position) Answered(h http.Header, last *protocol.Message) {
	p.last = last.MID
}

func newHandler(hold time.Duration) (*Handler, *engine.Local, *hub.Hub) {
	h := hub.New()
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, noCounters{}, "test")
	return &Handler{Hub: h, Engine: e, Timeout: hold, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, e, h
}

func publish(t *testing.T, e *engine.Local, body string) *protocol.Message {
	t.Helper()
	m := &protocol.Message{Channels: []string{ch}, Body: []byte(body)}
	if err := e.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// serve runs one request on a goroutine of its own.
func serve(h *Handler, req Request) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		h.Serve(w, httptest.NewRequest(http.MethodGet, "/", nil), req)
		done <- w
	}()
	return done
}

// A held request answers with history and what arrives live, in id order,
// each once, and only what comes after its mid: a message the client has
// (delivered again, as a broker's gap recovery can) keeps it held.
func TestServeAfterMID(t *testing.T) {
	h, e, hb := newHandler(time.Hour)
	first := publish(t, e, `{"n":1}`)
	second := publish(t, e, `{"n":2}`)
	pos := &position{}
	done := serve(h, Request{Channels: []string{ch}, MID: second.MID, Format: format.Text, Position: pos})
	testutil.WaitFor(t, "the request to subscribe", func() bool { return hb.Count(ch) != 0 })
	// Old messages delivered again do not end the hold.
	for _, m := range []*protocol.Message{first, second} {
		b := hub.GetBatch()
		hb.Broadcast(m, b)
		b.Flush()
	}
	third := publish(t, e, `{"n":3}`)
	w := <-done
	if w.Code != http.StatusOK || w.Body.String() != string(format.Text.AppendMessage(nil, third, ch)) {
		t.Fatalf("status %d body %q; want message 3 alone", w.Code, w.Body)
	}
	if pos.last != third.MID {
		t.Errorf("answered position %q; want %q", pos.last, third.MID)
	}
}

// With nothing new, the hold ends in a 304 that names the newest mid read
// before it began.
func TestServeNotModified(t *testing.T) {
	h, e, _ := newHandler(10 * time.Millisecond)
	m := publish(t, e, `{"n":1}`)
	pos := &position{}
	w := <-serve(h, Request{Channels: []string{ch}, Format: format.Text, Position: pos})
	if w.Code != http.StatusNotModified || pos.newest != m.MID {
		t.Fatalf("status %d newest %q; want 304 naming %s", w.Code, pos.newest, m.MID)
	}
}

// A mid ahead of every stored one (another installation's) holds back
// nothing newer than what is stored.
func TestServeAfterFutureMID(t *testing.T) {
	h, e, hb := newHandler(time.Hour)
	publish(t, e, `{"n":1}`)
	future := protocol.FormatMID(9999999999, 1)
	done := serve(h, Request{Channels: []string{ch}, MID: future, Format: format.Text, Position: &position{}})
	testutil.WaitFor(t, "the request to subscribe", func() bool { return hb.Count(ch) != 0 })
	next := publish(t, e, `{"n":2}`)
	w := <-done
	if w.Code != http.StatusOK || w.Body.String() != string(format.Text.AppendMessage(nil, next, ch)) {
		t.Fatalf("status %d body %q; want message 2", w.Code, w.Body)
	}
}

// A held request whose Evicted closes ends with 429 and the push server's
// text.
func TestServeEvicted(t *testing.T) {
	h, _, hb := newHandler(time.Hour)
	evicted := make(chan struct{})
	done := serve(h, Request{Channels: []string{ch}, Format: format.Text, Position: &position{}, Evicted: evicted})
	testutil.WaitFor(t, "the request to subscribe", func() bool { return hb.Count(ch) != 0 })
	close(evicted)
	w := <-done
	if w.Code != http.StatusTooManyRequests || w.Body.String() != "4029: Too many connections" || w.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("status %d body %q; want 429 and the reason", w.Code, w.Body)
	}
	testutil.WaitFor(t, "the request to unsubscribe", func() bool { return hb.Count(ch) == 0 })
}
