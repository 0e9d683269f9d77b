// Package poll serves subscribers over HTTP long polling: a request gets
// the messages its channels received after its mid at once, or is held
// until one arrives or the hold time passes (then 304).
package poll

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// Request is a parsed subscribe request.
type Request struct {
	Channels []string // hub channels
	// MID is the id the client resumes after, "" if none: an answer holds
	// only messages after it.
	MID    string
	Format format.Format
	// History returns what the client missed, oldest first; nil: nothing.
	History func(ctx context.Context) ([]*protocol.Message, error)
	// Position writes where the client stands into the answer's headers.
	Position Position
	// Evicted, when closed, ends a held request with 429 and the push
	// server's "4029: Too many connections": its channel got a newer
	// connection past limits.maxConnPerChannel. nil: never.
	Evicted <-chan struct{}
}

// Position writes the headers that tell a client where it resumes, as its
// protocol version does.
type Position interface {
	// NotModified sets the headers of a 304. newest is the newest id of
	// the channels read before the hold began, or the request's MID.
	NotModified(h http.Header, newest string)
	// Answered sets the headers of a 200 whose last message is last.
	Answered(h http.Header, last *protocol.Message)
}

// Handler holds long-polling requests.
type Handler struct {
	Hub     *hub.Hub
	Engine  engine.Engine
	Timeout time.Duration // how long a request is held
	Log     *slog.Logger

	held    atomic.Int64
	stats   Stats
	once    sync.Once
	closing chan struct{}
	final   atomic.Pointer[func(channel string) *protocol.Message]
	resync  atomic.Pointer[chan struct{}]
}

// Stats counts what the handler answered; all fields are safe to read at
// any time.
type Stats struct {
	Messages    atomic.Int64 // 200: messages
	NotModified atomic.Int64 // 304: none came while held
	Evicted     atomic.Int64 // 429: a newer connection took the place
	Failed      atomic.Int64 // 503: history unavailable
	Gone        atomic.Int64 // the client left before an answer
	Bytes       atomic.Int64 // bytes of the bodies written
}

// Stats returns the handler's counters.
func (h *Handler) Stats() *Stats { return &h.stats }

// Resync answers every held request with 304 at once, so that each client
// polls again with its mid and reads what it missed from history: for
// when this process's live feed lost messages.
func (h *Handler) Resync() {
	next := make(chan struct{})
	if old := h.resync.Swap(&next); old != nil {
		close(*old)
	}
}

func (h *Handler) resynced() <-chan struct{} {
	if c := h.resync.Load(); c != nil {
		return *c
	}
	next := make(chan struct{})
	if h.resync.CompareAndSwap(nil, &next) {
		return next
	}
	return *h.resync.Load()
}

// Count returns the number of requests being held.
func (h *Handler) Count() int64 { return h.held.Load() }

func (h *Handler) closed() chan struct{} {
	h.once.Do(func() { h.closing = make(chan struct{}) })
	return h.closing
}

// Shutdown answers every held request, and any that arrives later, with
// the message last gives for its first channel (the server_restart
// command, numbered in that channel's installation; nil: none) and ends
// holding.
func (h *Handler) Shutdown(last func(channel string) *protocol.Message) {
	h.final.Store(&last)
	c := h.closed()
	select {
	case <-c:
	default:
		close(c)
	}
}

// waiter is a held request as a hub subscriber.
type waiter struct {
	mu   sync.Mutex
	msgs []format.Delivery
	wake chan struct{}
}

// Deliver implements hub.Subscriber: it queues the message and wakes the
// request's goroutine, which writes the answer.
func (w *waiter) Deliver(p *hub.Prepared, channel string) hub.Flusher {
	w.mu.Lock()
	w.msgs = append(w.msgs, format.Delivery{Msg: p.Msg, Channel: channel})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

func (w *waiter) take() []format.Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// Serve answers one long-polling request.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, req Request) {
	h.held.Add(1)
	defer h.held.Add(-1)
	ctx := r.Context()
	closing := h.closed()
	resync := h.resynced()

	// Subscribe before reading history, so that nothing published in
	// between is missed; duplicates are dropped below.
	wt := &waiter{wake: make(chan struct{}, 1)}
	h.Hub.Subscribe(wt, req.Channels)
	defer h.Hub.Unsubscribe(wt, req.Channels)
	h.Engine.Subscribed(ctx, req.Channels)

	// A 304 tells a client without a mid the newest mid to resume after.
	// It is read now, while subscribed: anything newer reaches this
	// request, or the client's next one through history.
	newest, _ := h.Engine.Last(ctx, req.Channels)
	// The answer holds only what comes after the client's mid, unless
	// that mid is ahead of every stored one (from another installation):
	// then what comes after the newest.
	after := req.MID
	if after != "" && newest < after {
		after = newest
	}
	if req.MID != "" {
		newest = req.MID
	}

	var got []format.Delivery
	if req.History != nil {
		history, err := req.History(ctx)
		if err != nil {
			h.Log.Warn("history unavailable", "err", err)
			h.stats.Failed.Add(1)
			http.Error(w, "History is unavailable.", http.StatusServiceUnavailable)
			return
		}
		for _, m := range history {
			got = append(got, format.Delivery{Msg: m, Channel: protocol.FirstChannel(m, req.Channels)})
		}
	}
	got = unique(append(got, wt.take()...), after)
	if len(got) == 0 {
		timer := time.NewTimer(h.Timeout)
		defer timer.Stop()
	hold:
		for len(got) == 0 {
			select {
			case <-wt.wake:
				// Live messages the client already has (a broker's gap
				// recovery can bring them again) keep the request held.
				got = unique(wt.take(), after)
			case <-timer.C:
				got = unique(wt.take(), after)
				break hold
			case <-ctx.Done():
				h.stats.Gone.Add(1)
				return
			case <-resync:
				break hold
			case <-req.Evicted:
				h.stats.Evicted.Add(1)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(protocol.Reason(protocol.CloseTooManyConns)))
				return
			case <-closing:
				if last := h.final.Load(); last != nil && *last != nil {
					if m := (*last)(req.Channels[0]); m != nil {
						got = []format.Delivery{{Msg: m, Channel: req.Channels[0]}}
					}
				}
				break hold
			}
		}
	}
	hd := w.Header()
	if len(got) == 0 {
		req.Position.NotModified(hd, newest)
		h.stats.NotModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", req.Format.ContentType())
	req.Position.Answered(hd, got[len(got)-1].Msg)
	w.WriteHeader(http.StatusOK)
	h.stats.Messages.Add(1)
	n, _ := w.Write(req.Format.AppendBody(nil, got))
	h.stats.Bytes.Add(int64(n))
}

// unique orders messages by id and keeps those after mid, once each (a
// message can be both in history and delivered live, or reach this process
// again in a broker's gap recovery): an answer never repeats what the
// client has, nor goes back before it.
func unique(ds []format.Delivery, mid string) []format.Delivery {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Msg.MID < ds[j].Msg.MID })
	out := ds[:0]
	for i, d := range ds {
		if (i == 0 || d.Msg.MID != ds[i-1].Msg.MID) && (mid == "" || d.Msg.MID > mid) {
			out = append(out, d)
		}
	}
	return out
}
