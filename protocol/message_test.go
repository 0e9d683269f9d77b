package protocol_test

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

func TestFormatMID(t *testing.T) {
	tests := []struct {
		start int64
		id    uint64
		want  string
	}{
		{1498729816, 1, "14987298160000000000000001"},
		{1498729816, 0, "14987298160000000000000000"},
		{1498729816, 1234567, "14987298160000000001234567"},
		{1498729816, 9999999999999999, "14987298169999999999999999"},
		{0, 1, "00000000000000000000000001"},
		{42, 42, "00000000420000000000000042"},
		{9999999999, 1, "99999999990000000000000001"},
	}
	for _, tt := range tests {
		got := protocol.FormatMID(tt.start, tt.id)
		if got != tt.want {
			t.Errorf("FormatMID(%d, %d) = %q, want %q", tt.start, tt.id, got, tt.want)
		}
		if len(got) != protocol.MIDLen || !protocol.ValidMID(got) {
			t.Errorf("FormatMID(%d, %d) = %q is not a valid mid", tt.start, tt.id, got)
		}
		if got := string(protocol.AppendMID([]byte("mid="), tt.start, tt.id)); got != "mid="+tt.want {
			t.Errorf("AppendMID = %q, want %q", got, "mid="+tt.want)
		}
	}
}

func TestValidMID(t *testing.T) {
	tests := []struct {
		mid  string
		want bool
	}{
		{"14987298160000000000000001", true},
		{"00000000000000000000000000", true},
		{"", false},
		{"null", false},
		{"undefined", false},
		{"1498729816000000000000001", false},   // 25 digits
		{"149872981600000000000000001", false}, // 27 digits
		{"1498729816000000000000000a", false},
		{"a4987298160000000000000001", false},
		{"0123456789abcdef0123456789", false}, // a hex id of another version
		{"-4987298160000000000000001", false},
		{"+4987298160000000000000001", false},
		{" 4987298160000000000000001", false},
		{"1498729816000000000000000\x00", false},
		{"149872981600000000000000٠", false}, // a non-ASCII digit
	}
	for _, tt := range tests {
		if got := protocol.ValidMID(tt.mid); got != tt.want {
			t.Errorf("ValidMID(%q) = %v, want %v", tt.mid, got, tt.want)
		}
	}
}

func TestSplitMIDRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := [][2]uint64{{0, 0}, {9999999999, 9999999999999999}, {1498729816, 1}}
	for range 1000 {
		cases = append(cases, [2]uint64{r.Uint64N(1e10), r.Uint64N(1e16)})
	}
	for _, c := range cases {
		start, id := int64(c[0]), c[1]
		mid := protocol.FormatMID(start, id)
		gotStart, gotID := protocol.SplitMID(mid)
		if gotStart != start || gotID != id {
			t.Fatalf("SplitMID(FormatMID(%d, %d) = %q) = %d, %d", start, id, mid, gotStart, gotID)
		}
	}
}

// TestMIDOrder: resuming relies on comparing mids as strings (a lexical range
// in Redis), so string order must be (start, counter) order.
func TestMIDOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pick := func() (int64, uint64) {
		// Small ranges make equal starts, and equal counters, common.
		switch r.IntN(3) {
		case 0:
			return int64(r.Uint64N(3)), r.Uint64N(20)
		case 1:
			return 1498729816 + int64(r.Uint64N(2)), r.Uint64N(1e16)
		default:
			return int64(r.Uint64N(1e10)), r.Uint64N(1e16)
		}
	}
	for range 10000 {
		s1, i1 := pick()
		s2, i2 := pick()
		numeric := s1 < s2 || s1 == s2 && i1 < i2
		m1, m2 := protocol.FormatMID(s1, i1), protocol.FormatMID(s2, i2)
		if (m1 < m2) != numeric || (m1 == m2) != (s1 == s2 && i1 == i2) {
			t.Fatalf("(%d,%d) vs (%d,%d): string order of %q, %q disagrees", s1, i1, s2, i2, m1, m2)
		}
	}
}

func TestTag(t *testing.T) {
	for _, ms := range []int64{1498729816123, 1498729816999, 1498729816000, 1498729816007, 1498729816050} {
		m := &protocol.Message{Created: time.UnixMilli(ms)}
		tag := m.Tag()
		n, err := strconv.Atoi(tag)
		if err != nil || int64(n) != ms%1000 {
			t.Errorf("Tag() at %d ms = %q, want the last three digits %03d", ms, tag, ms%1000)
		}
	}
	m := &protocol.Message{Created: time.UnixMilli(1498729816123)}
	if got := m.Tag(); got != "123" {
		t.Errorf("Tag() = %q, want 123", got)
	}
}

func TestHTTPTime(t *testing.T) {
	moscow := time.FixedZone("MSK", 3*3600)
	tests := []struct {
		created time.Time
		want    string
	}{
		{time.Date(2017, 6, 29, 9, 50, 16, 0, time.UTC), "Thu, 29 Jun 2017 09:50:16 GMT"},
		{time.Date(2017, 6, 29, 12, 50, 16, 999e6, moscow), "Thu, 29 Jun 2017 09:50:16 GMT"},
		{time.Date(2025, 1, 5, 0, 0, 7, 0, time.UTC), "Sun, 05 Jan 2025 00:00:07 GMT"},
		{time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), "Tue, 31 Dec 2024 23:59:59 GMT"},
	}
	for _, tt := range tests {
		m := &protocol.Message{Created: tt.created}
		got := m.HTTPTime()
		if got != tt.want {
			t.Errorf("HTTPTime() of %v = %q, want %q", tt.created, got, tt.want)
		}
		if _, err := http.ParseTime(got); err != nil {
			t.Errorf("HTTPTime() = %q does not parse as an HTTP date: %v", got, err)
		}
	}
}

func TestExpired(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &protocol.Message{Expires: at}
	if m.Expired(at.Add(-time.Nanosecond)) {
		t.Error("expired before its Expires")
	}
	if !m.Expired(at) {
		t.Error("not expired at its Expires")
	}
	if !m.Expired(at.Add(time.Hour)) {
		t.Error("not expired after its Expires")
	}
	forever := &protocol.Message{}
	if forever.Expired(at.Add(100 * 365 * 24 * time.Hour)) {
		t.Error("a message without Expires expired")
	}
}

func TestHasChannel(t *testing.T) {
	m := &protocol.Message{Channels: []string{chanID(1), chanID(2)}}
	if !m.HasChannel(chanID(1)) || !m.HasChannel(chanID(2)) {
		t.Error("HasChannel misses a channel of the message")
	}
	if m.HasChannel(chanID(3)) || m.HasChannel("") {
		t.Error("HasChannel reports a channel the message was not published to")
	}
}

func TestIsJSONObject(t *testing.T) {
	for in, want := range map[string]bool{
		`{}`: true, " \t\r\n{\"a\":1}": true, `{`: true,
		``: false, ` `: false, `[]`: false, `"{"`: false, `null`: false, "\v{}": false,
	} {
		if got := protocol.IsJSONObject([]byte(in)); got != want {
			t.Errorf("IsJSONObject(%q) = %v; want %v", in, got, want)
		}
	}
}
