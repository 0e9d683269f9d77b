package format

import (
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// benchBody is a typical published command: an im message with the extra
// block the PHP module adds.
const benchBody = `{"module_id":"im","command":"message","params":{"chatId":42,"dialogId":"17","message":{"id":123456,"senderId":17,"text":"See you at the stand-up at ten","date":"2025-06-01T10:00:00+03:00","params":[]}},"extra":{"server_time":"2025-06-01T10:00:00+03:00","server_time_unix":1748761200.123,"server_name":"bitrix.example.com","revision_web":19,"revision_mobile":19}}`

func BenchmarkAppendEnvelope(b *testing.B) {
	m := &protocol.Message{
		ID:       1234567,
		MID:      protocol.FormatMID(1748761200, 1234567),
		Channels: []string{"0123456789abcdef0123456789abcdef"},
		Body:     []byte(benchBody),
		Created:  time.Unix(1748761200, 123e6),
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendEnvelope(nil, m, m.Channels[0]))))
	for b.Loop() {
		buf = AppendEnvelope(buf[:0], m, m.Channels[0])
	}
}
