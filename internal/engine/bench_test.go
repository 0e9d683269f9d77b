package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// orderedSubscriber does what a session's Deliver does (the shared text
// encoding, its lock, the queue) and checks that the mids it gets only
// grow: the order every connection must see, whatever the cores.
type orderedSubscriber struct {
	mu     sync.Mutex
	last   string
	queued int
	bad    *atomic.Int64
}

func (s *orderedSubscriber) Deliver(p *hub.Prepared, channel string) hub.Flusher {
	frame := p.Encoded(hub.Key{Format: int(format.Text), Channel: channel}, func(m *protocol.Message, ch string) []byte {
		return format.Text.AppendMessage(nil, m, ch)
	})
	s.mu.Lock()
	if p.Msg.MID <= s.last {
		s.bad.Add(1)
	}
	s.last = p.Msg.MID
	s.queued += len(frame)
	s.mu.Unlock()
	return nil
}

// BenchmarkPublishDeliver publishes from every P (go test -cpu 1,2,4,8)
// to random channels of a memory engine, each channel with a few
// subscribers, and reports deliveries per second; a subscriber that gets
// a mid at or below its last fails it.
func BenchmarkPublishDeliver(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run("subscribers="+strconv.Itoa(subs), func(b *testing.B) {
			h := hub.New()
			l := NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, nil, "bench")
			const channels = 64
			ids := make([]string, channels)
			var bad atomic.Int64
			for i := range ids {
				ids[i] = fmt.Sprintf("%032x", i+1)
				for range subs {
					h.Subscribe(&orderedSubscriber{bad: &bad}, []string{ids[i]})
				}
			}
			body := []byte(`{"module_id":"im","command":"message","params":{"chatId":42,"text":"hello"}}`)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := &protocol.Message{Channels: []string{ids[rand.IntN(channels)]}, Body: body, Expiry: 60}
					if err := l.Publish(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
			if n := bad.Load(); n > 0 {
				b.Fatalf("%d deliveries at or below a subscriber's last mid", n)
			}
		})
	}
}
