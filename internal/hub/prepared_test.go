package hub_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
)

// TestPreparedEncodesOncePerKey: however many subscribers ask at once, each
// key is encoded once and every caller gets the same bytes.
func TestPreparedEncodesOncePerKey(t *testing.T) {
	m := &protocol.Message{ID: 7, MID: "m7", Channels: []string{chanID(1), chanID(2)}}
	p := hub.NewPrepared(m)
	if p.Msg != m {
		t.Fatal("NewPrepared does not hold the message")
	}
	var keys []hub.Key
	for f := range 4 {
		for _, c := range m.Channels {
			keys = append(keys, hub.Key{Format: f, Channel: c})
		}
	}
	var calls sync.Map // hub.Key -> *atomic.Int32
	for _, k := range keys {
		calls.Store(k, new(atomic.Int32))
	}
	encode := func(k hub.Key) func(*protocol.Message, string) []byte {
		return func(got *protocol.Message, channel string) []byte {
			if got != m || channel != k.Channel {
				t.Errorf("encoder for %v called with %p, %s", k, got, channel)
			}
			n, _ := calls.Load(k)
			n.(*atomic.Int32).Add(1)
			return fmt.Appendf(nil, "%d/%s", k.Format, channel)
		}
	}

	const callers = 32
	results := make([][][]byte, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for j := range keys {
				// Callers walk the keys from different places.
				k := keys[(i+j)%len(keys)]
				b := p.Encoded(k, encode(k))
				results[i] = append(results[i], b)
			}
		})
	}
	wg.Wait()

	for _, k := range keys {
		n, _ := calls.Load(k)
		if got := n.(*atomic.Int32).Load(); got != 1 {
			t.Errorf("key %v encoded %d times, want once", k, got)
		}
	}
	for i := range callers {
		for j, b := range results[i] {
			k := keys[(i+j)%len(keys)]
			if want := fmt.Sprintf("%d/%s", k.Format, k.Channel); string(b) != want {
				t.Fatalf("caller %d got %q for %v, want %q", i, b, k, want)
			}
			first := results[0][(j+i)%len(keys)]
			if &b[0] != &first[0] {
				t.Fatalf("caller %d got its own copy for %v", i, k)
			}
		}
	}
}

// TestPreparedEmptyEncoding: an encoder may return nothing (a format that
// skips this message); that answer is cached too.
func TestPreparedEmptyEncoding(t *testing.T) {
	p := hub.NewPrepared(&protocol.Message{})
	calls := 0
	enc := func(*protocol.Message, string) []byte { calls++; return nil }
	k := hub.Key{Format: 1, Channel: chanID(1)}
	for range 3 {
		if b := p.Encoded(k, enc); b != nil {
			t.Fatalf("Encoded = %q, want nil", b)
		}
	}
	if calls != 1 {
		t.Errorf("encoder called %d times, want once", calls)
	}
}
