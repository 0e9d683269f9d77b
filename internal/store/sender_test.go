package store

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/pushpull/pushpull/protocol"
)

// The memory store keeps a message's sender and protocol-5 extras, in
// memory and across a snapshot.
func TestSenderKept(t *testing.T) {
	ctx := context.Background()
	a := NewMemory(DefaultTTLs, nil)
	in := &protocol.Message{
		Channels: []string{"a"}, Body: []byte(`{}`),
		Sender:     protocol.Sender{Type: protocol.SenderClient, ID: "0123456789abcdef0123456789abcdef"},
		UserParams: map[string]json.RawMessage{"1": json.RawMessage(`{"x":1}`)},
		Dictionary: json.RawMessage(`{"d":1}`),
	}
	if err := a.Save(ctx, in); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	b := NewMemory(DefaultTTLs, nil)
	if err := b.ReadSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Memory{"memory": a, "snapshot": b} {
		got, err := s.Since(ctx, []string{"a"}, "")
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: Since = %v, %v", name, got, err)
		}
		m := got[0]
		if m.Sender != in.Sender || string(m.UserParams["1"]) != `{"x":1}` || string(m.Dictionary) != `{"d":1}` {
			t.Errorf("%s: got %+v", name, m)
		}
	}
}
