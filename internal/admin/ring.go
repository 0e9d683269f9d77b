package admin

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Record is one warning or error the process logged.
type Record struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	Attrs string    `json:"attrs,omitempty"` // key=value pairs, as the text log writes them
}

// Ring keeps the last warnings and errors the process logged, for the
// admin page. Its handler wraps the process's own: every record goes on
// there unchanged, whatever the ring keeps.
type Ring struct {
	mu   sync.Mutex
	recs []Record // a circular buffer of cap n
	next int
	full bool
}

// NewRing keeps the last n records (n >= 1).
func NewRing(n int) *Ring { return &Ring{recs: make([]Record, max(n, 1))} }

// Records returns what the ring holds, oldest first.
func (r *Ring) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]Record(nil), r.recs[:r.next]...)
	}
	return append(append([]Record(nil), r.recs[r.next:]...), r.recs[:r.next]...)
}

func (r *Ring) add(rec Record) {
	r.mu.Lock()
	r.recs[r.next] = rec
	r.next++
	if r.next == len(r.recs) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// maxAttrs bounds the text of a record's attributes the ring keeps.
const maxAttrs = 1024

// Handler returns a handler that keeps warnings and errors in the ring
// and passes every record to next.
func (r *Ring) Handler(next slog.Handler) slog.Handler { return &ringHandler{ring: r, next: next} }

type ringHandler struct {
	ring   *Ring
	next   slog.Handler
	prefix string // the attributes of WithAttrs, formatted
	group  string // the WithGroup path, "a.b."
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.prefix)
		rec.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.group, a)
			return b.Len() < maxAttrs
		})
		attrs := b.String()
		if len(attrs) > maxAttrs {
			attrs = attrs[:maxAttrs] + "…"
		}
		h.ring.add(Record{Time: rec.Time, Level: rec.Level.String(), Msg: rec.Message, Attrs: attrs})
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	return &ringHandler{ring: h.ring, next: h.next.WithAttrs(as), prefix: b.String(), group: h.group}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &ringHandler{ring: h.ring, next: h.next.WithGroup(name), prefix: h.prefix, group: h.group + name + "."}
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(group + a.Key + "=" + a.Value.String())
}
