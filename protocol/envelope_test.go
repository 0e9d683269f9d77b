package protocol_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// clientPattern is how the stock clients cut text-mode envelopes out of a
// response or frame: /#!NGINXNMS!#(.*?)#!NGINXNME!#/gm in JavaScript, where
// "." matches neither line breaks nor U+2028 and U+2029.
var clientPattern = regexp.MustCompile("#!NGINXNMS!#([^\n\r\u2028\u2029]*?)#!NGINXNME!#")

// clientMessages returns what a stock client extracts from a response body.
func clientMessages(body []byte) [][]byte {
	var out [][]byte
	for _, m := range clientPattern.FindAllSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// jsonValue decodes b, keeping numbers exact, so that two texts can be
// compared as JSON values.
func jsonValue(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	if d.More() {
		t.Fatalf("trailing data after the JSON value: %q", b)
	}
	return v
}

func testMessage(body string) *protocol.Message {
	return &protocol.Message{
		ID:       5,
		MID:      protocol.FormatMID(1498729816, 5),
		Channels: []string{chanID(1)},
		Body:     []byte(body),
		Created:  time.Date(2017, 6, 29, 9, 50, 16, 123e6, time.UTC),
	}
}

func TestAppendEnvelope(t *testing.T) {
	m := testMessage(`{"module_id":"im","command":"message","params":{"id":1}}`)
	want := `#!NGINXNMS!#{"id":5,"mid":"14987298160000000000000005","channel":"00000000000000000000000000000001",` +
		`"tag":"123","time":"Thu, 29 Jun 2017 09:50:16 GMT",` +
		`"text":{"module_id":"im","command":"message","params":{"id":1}}}#!NGINXNME!#`
	if got := string(format.AppendEnvelope(nil, m, chanID(1))); got != want {
		t.Errorf("AppendEnvelope =\n%s\nwant\n%s", got, want)
	}
	// Several envelopes concatenate into one body.
	buf := format.AppendEnvelope([]byte("x"), m, chanID(1))
	buf = format.AppendEnvelope(buf, m, chanID(1))
	if got := string(buf); got != "x"+want+want {
		t.Errorf("AppendEnvelope does not append:\n%s", got)
	}
	if got := clientMessages(buf[1:]); len(got) != 2 {
		t.Errorf("a client finds %d messages in two envelopes", len(got))
	}
}

func TestAppendEnvelopeJSON(t *testing.T) {
	body := `{"module_id":"main","command":"online","params":{"users":[1,2,3],"big":12345678901234567890},"extra":{"server_time_unix":1748761200.123}}`
	m := testMessage(body)
	m.ID = 1234567
	m.MID = protocol.FormatMID(1748761200, m.ID)
	channel := chanID(0xbeef)
	out := format.AppendEnvelopeJSON([]byte("["), m, channel)
	if out[0] != '[' {
		t.Fatal("AppendEnvelopeJSON overwrote dst")
	}
	var env struct {
		ID      uint64          `json:"id"`
		MID     string          `json:"mid"`
		Channel string          `json:"channel"`
		Tag     string          `json:"tag"`
		Time    string          `json:"time"`
		Text    json.RawMessage `json:"text"`
	}
	d := json.NewDecoder(bytes.NewReader(out[1:]))
	d.DisallowUnknownFields()
	if err := d.Decode(&env); err != nil {
		t.Fatalf("envelope is not the JSON object clients expect: %v\n%s", err, out)
	}
	if env.ID != 1234567 || env.MID != "17487612000000000001234567" || env.Channel != channel ||
		env.Tag != "123" || env.Time != "Thu, 29 Jun 2017 09:50:16 GMT" {
		t.Errorf("envelope fields = %+v", env)
	}
	if !reflect.DeepEqual(jsonValue(t, env.Text), jsonValue(t, []byte(body))) {
		t.Errorf("text = %s, want the body object %s", env.Text, body)
	}
	if string(env.Text) != body {
		t.Errorf("text = %s, want the body inserted raw", env.Text)
	}
}

func TestSanitizeBody(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean object unchanged", `{"a":[1,2],"b":"x"}`, `{"a":[1,2],"b":"x"}`},
		{"LF between tokens", "{\n\"a\":\n1\n}", `{ "a": 1 }`},
		{"CRLF between tokens", "[1,\r\n2]\r\n", "[1,  2]  "},
		{"escaped LF in string kept", `{"a":"x\ny"}`, `{"a":"x\ny"}`},
		{"U+2028 in string", "{\"a\":\"x\u2028y\"}", `{"a":"x\u2028y"}`},
		{"U+2029 in string", "[\"\u2029\"]", `["\u2029"]`},
		{"U+2028 after escaped quote", "[\"\\\"\u2028\"]", `["\"\u2028"]`},
		{"U+2028 after escaped backslash", "[\"\\\\\u2028\",\n1]", `["\\\u2028", 1]`},
		{"other non-ASCII kept", "{\"a\":\"привет\u2027\u202a\"}\n", "{\"a\":\"привет\u2027\u202a\"} "},
		{"not JSON", "hello\nworld", `"hello\nworld"`},
		{"not JSON with separators", "a\u2028b\u2029c\r", `"a\u2028b\u2029c\r"`},
		{"truncated JSON", `{"a":`, `"{\"a\":"`},
		{"empty", "", `""`},
		{"raw LF inside a string is not JSON", "[\"a\nb\"]", `"[\"a\nb\"]"`},
		{"bare string", `"x"`, `"x"`},
		{"invalid UTF-8 in a string", "{\"x\":\"\xff\xfe\xc3\"}", "{\"x\":\"\ufffd\ufffd\ufffd\"}"},
		{"invalid UTF-8 outside JSON", "a\xffb", "\"a\ufffdb\""},
		{"number", "\n42\n", " 42 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(protocol.SanitizeBody([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("SanitizeBody(%q) = %q, want %q", tt.in, got, tt.want)
			}
			checkSanitized(t, []byte(tt.in), []byte(got))
		})
	}
}

// checkSanitized asserts the contract of SanitizeBody for in and its output.
func checkSanitized(t testing.TB, in, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("SanitizeBody(%q) = %q: not valid JSON", in, out)
	}
	if !utf8.Valid(out) {
		t.Fatalf("SanitizeBody(%q) = %q: not UTF-8, which a client must fail the WebSocket for", in, out)
	}
	if i := bytes.IndexAny(out, "\n\r\u2028\u2029"); i >= 0 {
		t.Fatalf("SanitizeBody(%q) = %q: line break at %d", in, out, i)
	}
	if json.Valid(in) {
		if !reflect.DeepEqual(jsonValue(t, out), jsonValue(t, in)) {
			t.Fatalf("SanitizeBody(%q) = %q: a different JSON value", in, out)
		}
		return
	}
	// Anything else is carried as a string: the original text, with each
	// byte that is not UTF-8 replaced as encoding/json does.
	var s string
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("SanitizeBody(%q) = %q: not a JSON string: %v", in, out, err)
	}
	if want := string([]rune(string(in))); s != want {
		t.Fatalf("SanitizeBody(%q) carries %q, want %q", in, s, want)
	}
}

// randomJSONish returns text built from JSON tokens, whitespace including
// line breaks, the line separators, and an occasional stray byte, so that
// both valid and invalid JSON come up often.
func randomJSONish(r *rand.Rand) []byte {
	pieces := []string{
		"{", "}", "[", "]", ":", ",", `"`, `\`, `\"`, `\\`, `\n`, `\u2028`, "\n", "\r", "\r\n", " ", "\t",
		"\u2028", "\u2029", "a", "é", "1", "-2.5e3", "true", "null", `"k"`, `"v"`, `"a\"b"`,
		"\xe2", "\xe2\x80", "\xff", "#!NGINXNME!#", "\x00",
	}
	var b []byte
	for range r.IntN(24) {
		b = append(b, pieces[r.IntN(len(pieces))]...)
	}
	return b
}

// randomJSON returns a valid JSON value formatted with random whitespace
// and strings holding line breaks and separators.
func randomJSON(r *rand.Rand, depth int) []byte {
	ws := func() string { return []string{"", " ", "\n", "\r\n", "\t", "\n  "}[r.IntN(6)] }
	str := func() string {
		s := []string{"", "x", "line\nbreak", "sep\u2028ara\u2029tor", "quote\"back\\slash", "ünï", "\r"}[r.IntN(7)]
		b, _ := json.Marshal(s)
		// encoding/json escapes U+2028 and U+2029; publishers may not.
		b = bytes.ReplaceAll(b, []byte(`\u2028`), []byte("\u2028"))
		return string(bytes.ReplaceAll(b, []byte(`\u2029`), []byte("\u2029")))
	}
	var sb strings.Builder
	var gen func(depth int)
	gen = func(depth int) {
		sb.WriteString(ws())
		switch k := r.IntN(6); {
		case depth > 3 || k == 0:
			sb.WriteString([]string{"1", "-0.5", "true", "false", "null", "12345678901234567890"}[r.IntN(6)])
		case k == 1 || k == 2:
			sb.WriteString(str())
		case k == 3:
			sb.WriteString("[")
			for i := range r.IntN(4) {
				if i > 0 {
					sb.WriteString(ws() + ",")
				}
				gen(depth + 1)
			}
			sb.WriteString(ws() + "]")
		default:
			sb.WriteString("{")
			for i := range r.IntN(4) {
				if i > 0 {
					sb.WriteString(",")
				}
				sb.WriteString(ws() + str() + ws() + ":")
				gen(depth + 1)
			}
			sb.WriteString(ws() + "}")
		}
		sb.WriteString(ws())
	}
	gen(depth)
	return []byte(sb.String())
}

func TestSanitizeBodyProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	valid := 0
	for range 20000 {
		var in []byte
		if r.IntN(2) == 0 {
			in = randomJSON(r, 0)
		} else {
			in = randomJSONish(r)
		}
		if json.Valid(in) {
			valid++
		}
		out := protocol.SanitizeBody(in)
		checkSanitized(t, in, out)
		if utf8.Valid(in) && !utf8.Valid(out) {
			t.Fatalf("SanitizeBody(%q) = %q: broke UTF-8", in, out)
		}
	}
	if valid < 5000 {
		t.Fatalf("only %d of the generated inputs were valid JSON", valid)
	}
}

// TestEnvelopeSurvivesClientPattern: whatever was published, a stock client
// must find exactly one message in its envelope, and it must be the
// envelope's JSON object.
func TestEnvelopeSurvivesClientPattern(t *testing.T) {
	bodies := []string{
		`{"module_id":"im","command":"message","params":{"text":"hi"}}`,
		"{\"text\":\"a\u2028b\u2029c\"}\r\n",
		"not json\nat all",
		`{"text":"see #!NGINXNME!# here"}`,
		`{"text":"nested #!NGINXNMS!#{}#!NGINXNME!#"}`,
		`#!NGINXNME!#`,
		`"#!NGINXNMS!#"`,
		`{"a":"\\#!NGINXNME!#"}`,
	}
	for _, body := range bodies {
		t.Run("", func(t *testing.T) {
			m := testMessage("")
			m.Body = protocol.SanitizeBody([]byte(body))
			env := format.AppendEnvelope(nil, m, chanID(1))
			checkClientSees(t, body, env, m.Body)
		})
	}
}

// checkClientSees asserts that env, the envelope of the sanitized body, is
// one message to a stock client, carrying that body.
func checkClientSees(t testing.TB, published string, env, body []byte) {
	t.Helper()
	got := clientMessages(env)
	if len(got) != 1 || len(got[0]) != len(env)-len(protocol.EnvelopeStart)-len(protocol.EnvelopeEnd) {
		t.Fatalf("published %q: a client cuts %q out of %q", published, got, env)
	}
	var obj struct {
		Text json.RawMessage `json:"text"`
	}
	if err := json.Unmarshal(got[0], &obj); err != nil {
		t.Fatalf("published %q: envelope %q does not parse: %v", published, got[0], err)
	}
	if !reflect.DeepEqual(jsonValue(t, obj.Text), jsonValue(t, body)) {
		t.Fatalf("published %q: text = %q, want %q", published, obj.Text, body)
	}
}
