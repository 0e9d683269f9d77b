package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchBody is a typical published command: an im message with the extra
// block the PHP module adds.
const benchBody = `{"module_id":"im","command":"message","params":{"chatId":42,"dialogId":"17","message":{"id":123456,"senderId":17,"text":"See you at the stand-up at ten","date":"2025-06-01T10:00:00+03:00","params":[]}},"extra":{"server_time":"2025-06-01T10:00:00+03:00","server_time_unix":1748761200.123,"server_name":"bitrix.example.com","revision_web":19,"revision_mobile":19}}`

func BenchmarkParseChannels(b *testing.B) {
	s, err := NewSigner("bench-security-key", "sha1")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		ids := []string{
			"0123456789abcdef0123456789abcdef",
			"fedcba9876543210fedcba9876543210:00112233445566778899aabbccddeeff",
			"aaaabbbbccccddddeeeeffff00001111",
		}[:n]
		var entries []string
		for _, id := range ids {
			entries = append(entries, s.SignChannel(id))
		}
		raw := strings.Join(entries, "/")
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.ParseChannels(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSanitizeBody(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"clean", benchBody},
		// Valid JSON with line breaks between tokens and U+2028 in a string.
		{"linebreaks", strings.ReplaceAll(strings.Replace(benchBody, "stand-up", "stand-up\u2028", 1), `,"`, ",\n\"")},
		{"notjson", "plain text body\nwith a line break"},
	} {
		body := []byte(c.body)
		if valid := json.Valid(body); valid != (c.name != "notjson") {
			b.Fatalf("%s: json.Valid = %v", c.name, valid)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				SanitizeBody(body)
			}
		})
	}
}
