package protocol_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

var bodySeeds = []string{
	"",
	`{"module_id":"im","command":"message","params":{"text":"hi"},"extra":{"server_time_unix":1748761200.123}}`,
	"{\n\t\"a\": [1,\r\n2]\n}\n",
	"{\"a\":\"x\u2028y\u2029z\"}",
	`["\"\\", "\u2028"]`,
	"not json\r\nat all",
	"\xe2\x80\xa8",
	"\xe2\x80",
	"[\"\xff\xe2\x80\xa8\"]",
	`{"text":"#!NGINXNME!#"}`,
	"12345678901234567890",
}

func FuzzSanitizeBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte(nil), body...)
		out := protocol.SanitizeBody(body)
		if string(in) != string(body) {
			t.Fatalf("SanitizeBody modified its input")
		}
		checkSanitized(t, body, out)
	})
}

func FuzzEnvelope(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s), uint64(1), int64(1498729816123))
	}
	f.Fuzz(func(t *testing.T, body []byte, id uint64, ms int64) {
		m := &protocol.Message{
			ID:      id,
			MID:     protocol.FormatMID(1498729816, id),
			Body:    protocol.SanitizeBody(body),
			Created: time.UnixMilli(ms),
		}
		channel := chanID(int(id % 1000))
		obj := format.AppendEnvelopeJSON(nil, m, channel)
		var env struct {
			ID      uint64          `json:"id"`
			MID     string          `json:"mid"`
			Channel string          `json:"channel"`
			Text    json.RawMessage `json:"text"`
		}
		if err := json.Unmarshal(obj, &env); err != nil {
			t.Fatalf("envelope of %q does not parse: %v\n%s", body, err, obj)
		}
		if env.ID != id || env.MID != m.MID || env.Channel != channel {
			t.Fatalf("envelope of %q: %+v", body, env)
		}
		checkClientSees(t, string(body), format.AppendEnvelope(nil, m, channel), m.Body)
	})
}
