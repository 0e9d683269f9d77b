package protocol

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Text-mode envelope delimiters (the nginx-push-stream heritage).
const (
	EnvelopeStart = "#!NGINXNMS!#"
	EnvelopeEnd   = "#!NGINXNME!#"
)

// SanitizeBody makes a published body safe to embed raw in an envelope that
// clients cut out with a pattern stopping at line breaks. Valid JSON stays
// the same value: line breaks between tokens become spaces, and LF, CR,
// U+2028 and U+2029 inside strings become escapes. Anything that is not JSON
// is embedded as a JSON string, so the envelope always parses.
//
// Clients also cut an envelope at the first end delimiter, even inside a
// string, so "#!NGINXNM" in the body is written as "\u0023!NGINXNM": a '#'
// occurs in JSON only inside strings, where the escape is the same value.
//
// Clients must fail a WebSocket whose text frame is not UTF-8 (RFC 6455
// section 8.1), and would then resume into the same frame again: every
// byte sequence that is not UTF-8 is replaced by U+FFFD, as encoding/json
// does, so no body can take a channel's subscribers down.
func SanitizeBody(body []byte) []byte {
	body = RepairUTF8(body)
	out := sanitizeLines(body)
	if bytes.Contains(out, delimiterPrefix) {
		out = bytes.ReplaceAll(out, delimiterPrefix, escapedDelimiterPrefix)
	}
	return out
}

// RepairUTF8 returns b with each byte that does not start a UTF-8
// sequence replaced by U+FFFD, as encoding/json reads and writes strings;
// b itself when it is UTF-8.
func RepairUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

var (
	delimiterPrefix        = []byte("#!NGINXNM")
	escapedDelimiterPrefix = []byte(`\u0023!NGINXNM`)
)

func sanitizeLines(body []byte) []byte {
	if !json.Valid(body) {
		quoted, _ := json.Marshal(string(body))
		return quoted
	}
	if !needsSanitizing(body) {
		return body
	}
	out := make([]byte, 0, len(body)+16)
	inString, escaped := false, false
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == 0xE2 && i+2 < len(body) && body[i+1] == 0x80 && (body[i+2] == 0xA8 || body[i+2] == 0xA9):
			// U+2028 or U+2029: only legal inside strings in valid JSON.
			if body[i+2] == 0xA8 {
				out = append(out, `\u2028`...)
			} else {
				out = append(out, `\u2029`...)
			}
			escaped = false
			i += 3
			continue
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case c == '\n' || c == '\r':
			// In valid JSON raw line breaks occur only between tokens.
			c = ' '
		}
		out = append(out, c)
		i++
	}
	return out
}

func needsSanitizing(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\n', '\r':
			return true
		case 0xE2:
			if r, _ := utf8.DecodeRune(b[i:]); r == '\u2028' || r == '\u2029' {
				return true
			}
		}
	}
	return false
}
