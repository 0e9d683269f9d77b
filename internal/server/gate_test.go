package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

type noCounters struct{}

func (noCounters) WebSockets() int64 { return 0 }
func (noCounters) Pollings() int64   { return 0 }

// Every publish through the gate gets an envelope-safe body, whichever
// route it came by, and none passes once the gate drains.
func TestPublishGate(t *testing.T) {
	mem := store.NewMemory(store.DefaultTTLs, nil)
	g := &drainEngine{Engine: engine.NewLocal(mem, hub.New(), noCounters{}, "test")}
	ctx := context.Background()
	const ch = "0123456789abcdef0123456789abcdef"
	m := &protocol.Message{Channels: []string{ch}, Body: []byte("{\"text\":\"see #!NGINXNME!# \u2028\",\n\"n\":1}")}
	if err := g.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, _ := mem.Since(ctx, []string{ch}, "")
	if len(got) != 1 {
		t.Fatalf("stored %d messages", len(got))
	}
	body := string(got[0].Body)
	if strings.ContainsAny(body, "\n\u2028") || strings.Contains(body, protocol.EnvelopeEnd) {
		t.Fatalf("stored body %q is not envelope-safe", body)
	}
	// Bytes that are not UTF-8 would make clients fail their WebSocket:
	// they are repaired in the body and in the protocol-5 extras.
	poison := &protocol.Message{Channels: []string{ch}, Body: []byte("{\"x\":\"\xff\xfe\xc3\"}"),
		Dictionary: []byte("{\"d\":\"\xff\"}"), UserParams: map[string]json.RawMessage{"7": []byte("{\"u\":\"\xc3\"}")}}
	if err := g.Publish(ctx, poison); err != nil {
		t.Fatal(err)
	}
	got, _ = mem.Since(ctx, []string{ch}, m.MID)
	if len(got) != 1 || !utf8.Valid(got[0].Body) || !utf8.Valid(got[0].Dictionary) || !utf8.Valid(got[0].UserParams["7"]) ||
		string(got[0].Body) != "{\"x\":\"\ufffd\ufffd\ufffd\"}" {
		t.Fatalf("stored %+v: not repaired to UTF-8", got)
	}
	g.drain()
	if err := g.Publish(ctx, &protocol.Message{Channels: []string{ch}, Body: []byte(`{}`)}); err != errDraining {
		t.Fatalf("publish while draining: %v", err)
	}
}
