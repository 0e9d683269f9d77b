package hub

import (
	"strconv"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// benchSubscriber does what a connection's Deliver does before it queues:
// fetches the shared encoding for its format.
type benchSubscriber struct {
	n int
}

func (s *benchSubscriber) Deliver(p *Prepared, channel string) Flusher {
	b := p.Encoded(Key{Format: 1, Channel: channel}, func(m *protocol.Message, ch string) []byte {
		return format.AppendEnvelope(nil, m, ch)
	})
	s.n += len(b)
	return nil
}

func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range []int{1, 1000} {
		b.Run("subscribers="+strconv.Itoa(subs), func(b *testing.B) {
			h := New()
			const ch = "0123456789abcdef0123456789abcdef"
			for range subs {
				h.Subscribe(&benchSubscriber{}, []string{ch})
			}
			m := &protocol.Message{
				ID:       1,
				MID:      protocol.FormatMID(1748761200, 1),
				Channels: []string{ch},
				Body:     []byte(`{"module_id":"im","command":"message","params":{"chatId":42,"text":"hello"}}`),
				Created:  time.Unix(1748761200, 0),
			}
			b.ReportAllocs()
			for b.Loop() {
				batch := GetBatch()
				h.Broadcast(m, batch)
				batch.Flush()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/delivery")
		})
	}
}
