package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/transport/poll"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

const (
	mid1 = "14526134350000000000320146"
	chA  = "0123456789abcdef0123456789abcdef"
	chB  = "fedcba9876543210fedcba9876543210"
)

func TestParseCursor(t *testing.T) {
	date := "Thu, 29 Jun 2017 09:50:16 GMT"
	at := time.Date(2017, 6, 29, 9, 50, 16, 0, time.UTC)
	cases := []struct {
		name   string
		query  string
		header map[string]string
		want   Cursor
		ok     bool
	}{
		{"nothing", "CHANNEL_ID=x&mid=", nil, Cursor{}, false},
		{"empty values", "tag=&time=", nil, Cursor{}, false},
		{"query mid tag and time", "tag=" + mid1 + "&time=" + url.QueryEscape(date), nil, Cursor{MID: mid1, Time: at}, true},
		{"first request of the old client", "tag=1&time=" + url.QueryEscape("Fri, 18 Mar 2022 21:00:00 GMT"), nil,
			Cursor{Tag: "1", Time: time.Date(2022, 3, 18, 21, 0, 0, 0, time.UTC)}, true},
		{"headers only", "", map[string]string{"If-None-Match": mid1, "If-Modified-Since": date}, Cursor{MID: mid1, Time: at}, true},
		{"query wins over headers", "tag=7&time=" + url.QueryEscape(date),
			map[string]string{"If-None-Match": mid1, "If-Modified-Since": "Mon, 01 Jan 2018 00:00:00 GMT"}, Cursor{Tag: "7", Time: at}, true},
		{"header fills what the query lacks", "tag=" + mid1, map[string]string{"If-Modified-Since": date}, Cursor{MID: mid1, Time: at}, true},
		{"quoted weak etag", "", map[string]string{"If-None-Match": `W/"` + mid1 + `"`}, Cursor{MID: mid1}, true},
		{"tag only", "tag=" + mid1, nil, Cursor{MID: mid1}, true},
		{"time only, RFC 850", "", map[string]string{"If-Modified-Since": "Thursday, 29-Jun-17 09:50:16 GMT"}, Cursor{Time: at}, true},
		{"unreadable time", "tag=3&time=yesterday", nil, Cursor{Tag: "3"}, true},
		{"tag that is not a number", "tag=abc&time=" + url.QueryEscape(date), nil, Cursor{Time: at}, true},
		{"negative tag", "tag=-5", nil, Cursor{}, true},
		{"tag too long for a number", "tag=" + strings.Repeat("9", 21), nil, Cursor{}, true},
		{"mid with a letter", "tag=1452613435000000000032014x", nil, Cursor{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for k, v := range c.header {
				h.Set(k, v)
			}
			got, ok := ParseCursor(q, h)
			if ok != c.ok || got.MID != c.want.MID || got.Tag != c.want.Tag || !got.Time.Equal(c.want.Time) {
				t.Errorf("ParseCursor(%q, %v) = %+v, %v; want %+v, %v", c.query, c.header, got, ok, c.want, c.ok)
			}
		})
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("1", "Fri, 18 Mar 2022 21:00:00 GMT", "", "")
	f.Add(mid1, "", `"`+mid1+`"`, "Thu, 29 Jun 2017 09:50:16 GMT")
	f.Add("W/\"", "Sunday, 06-Nov-94 08:49:37 GMT", "\x00", "Sun Nov  6 08:49:37 1994")
	f.Fuzz(func(t *testing.T, tag, tm, inm, ims string) {
		q := url.Values{"tag": {tag}, "time": {tm}}
		h := http.Header{"If-None-Match": {inm}, "If-Modified-Since": {ims}}
		c, ok := ParseCursor(q, h)
		if ok != (tag != "" || tm != "" || inm != "" || ims != "") {
			t.Fatalf("ok %v for %q %q %q %q", ok, tag, tm, inm, ims)
		}
		if c.MID != "" && !protocol.ValidMID(c.MID) {
			t.Fatalf("MID %q is not a message id", c.MID)
		}
		if c.MID != "" && c.Tag != "" {
			t.Fatalf("both MID %q and Tag %q", c.MID, c.Tag)
		}
		if c.Tag != "" && (!allDigits(c.Tag) || len(c.Tag) > maxTagDigits) {
			t.Fatalf("Tag %q is not a number", c.Tag)
		}
		if c.Time.Nanosecond() != 0 || (!c.Time.IsZero() && c.Time.Location() != time.UTC) {
			t.Fatalf("Time %v is not a whole UTC second", c.Time)
		}
		// What a 304 echoes must be a valid header value.
		hd := http.Header{}
		c.NotModified(hd, "")
		for k, vs := range hd {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s: %q", k, v)
				}
			}
		}
	})
}

func TestPushStreamTemplate(t *testing.T) {
	m := &protocol.Message{
		ID:      320146,
		MID:     mid1,
		Body:    []byte(`{"module_id":"im","command":"message","params":{"a":[1,"x"]},"extra":{}}`),
		Created: time.Date(2017, 6, 29, 9, 50, 16, 789_000_000, time.UTC),
	}
	got := string(format.PushStream.AppendMessage([]byte("prefix"), m, chA))
	want := `prefix#!NGINXNMS!#{"id":320146,"channel":"` + chA + `","tag":"` + mid1 +
		`","time":"Thu, 29 Jun 2017 09:50:16 GMT","eventid":"","text":{"module_id":"im","command":"message","params":{"a":[1,"x"]},"extra":{}}}#!NGINXNME!#`
	if got != want {
		t.Errorf("envelope\n  %s\nwant\n  %s", got, want)
	}
}

// clock is a settable time source for the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

type fixture struct {
	t      *testing.T
	clock  *clock
	hub    *hub.Hub
	engine *engine.Local
	h      *poll.Handler
}

func newFixture(t *testing.T, hold time.Duration) *fixture {
	c := &clock{now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	h := hub.New()
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, c.Now), h, noCounters{}, "test")
	return &fixture{t: t, clock: c, hub: h, engine: e, h: &poll.Handler{
		Hub: h, Engine: e, Timeout: hold, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

func (f *fixture) publish(n int, channels ...string) *protocol.Message {
	f.t.Helper()
	m := &protocol.Message{Channels: channels, Body: []byte(fmt.Sprintf(`{"module_id":"test","command":"m","params":{"n":%d}}`, n))}
	if err := f.engine.Publish(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

// poll serves one version 1-2 request with the given query and headers.
func (f *fixture) poll(channels []string, query string, header map[string]string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/bitrix/sub/?"+query, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	c, ok := ParseCursor(r.URL.Query(), r.Header)
	if !ok {
		f.t.Fatalf("no cursor in %q %v", query, header)
	}
	w := httptest.NewRecorder()
	f.h.Serve(w, r, f.request(channels, &c))
	return w
}

// request is the long poll the subscribe route makes of a version 1-2
// request.
func (f *fixture) request(channels []string, c *Cursor) poll.Request {
	return poll.Request{
		Channels: channels, MID: c.MID, Format: format.PushStream, Position: c,
		History: func(ctx context.Context) ([]*protocol.Message, error) { return c.History(ctx, f.engine, channels) },
	}
}

type legacyEnvelope struct {
	ID      uint64          `json:"id"`
	Channel string          `json:"channel"`
	Tag     string          `json:"tag"`
	Time    string          `json:"time"`
	EventID string          `json:"eventid"`
	Text    json.RawMessage `json:"text"`
}

var envelopeRE = regexp.MustCompile(`#!NGINXNMS!#(.*?)#!NGINXNME!#`)

// envelopes cuts a body as the old client does and checks each envelope is
// exactly the template of its fields.
func envelopes(t *testing.T, body string) []legacyEnvelope {
	t.Helper()
	var out []legacyEnvelope
	rest := body
	for _, match := range envelopeRE.FindAllStringSubmatch(body, -1) {
		var e legacyEnvelope
		if err := json.Unmarshal([]byte(match[1]), &e); err != nil {
			t.Fatalf("envelope %s: %v", match[1], err)
		}
		exact := fmt.Sprintf(`#!NGINXNMS!#{"id":%d,"channel":%q,"tag":%q,"time":%q,"eventid":"","text":%s}#!NGINXNME!#`,
			e.ID, e.Channel, e.Tag, e.Time, e.Text)
		if !strings.HasPrefix(rest, exact) {
			t.Fatalf("body %q does not go on with %q", rest, exact)
		}
		rest = rest[len(exact):]
		out = append(out, e)
	}
	if rest != "" || len(out) == 0 {
		t.Fatalf("body %q is not a run of envelopes", body)
	}
	return out
}

// An old client polls in a loop, sending the tag and time of the last
// envelope it read, in the query or in headers: every message of bursts
// published between its requests arrives once, in order, even when several
// fall in one second.
func TestLegacyPollLoop(t *testing.T) {
	for _, mode := range []string{"query", "headers"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, time.Millisecond)
			channels := []string{chA, chB}
			var want []string
			tag, tm := "1", "Fri, 18 Mar 2022 21:00:00 GMT"
			var got []string
			for round := range 4 {
				// Each burst spans a second boundary, so that messages
				// share seconds with the previous answer's last.
				for i := range 3 {
					if i == 2 {
						f.publish(round*10+i, chA, chB)
					} else {
						f.publish(round*10+i, channels[i])
					}
					want = append(want, fmt.Sprintf(`{"n":%d}`, round*10+i))
					f.clock.Set(f.clock.Now().Add(400 * time.Millisecond))
				}
				var w *httptest.ResponseRecorder
				if mode == "query" {
					w = f.poll(channels, "tag="+url.QueryEscape(tag)+"&time="+url.QueryEscape(tm), nil)
				} else {
					w = f.poll(channels, "", map[string]string{"If-None-Match": tag, "If-Modified-Since": tm})
				}
				if w.Code != http.StatusOK {
					t.Fatalf("round %d: status %d; want 200", round, w.Code)
				}
				env := envelopes(t, w.Body.String())
				for _, e := range env {
					var text struct {
						Params json.RawMessage `json:"params"`
					}
					if err := json.Unmarshal(e.Text, &text); err != nil {
						t.Fatal(err)
					}
					got = append(got, string(text.Params))
				}
				last := env[len(env)-1]
				if w.Header().Get("Etag") != last.Tag || w.Header().Get("Last-Modified") != last.Time {
					t.Errorf("round %d: Etag %q Last-Modified %q; want the last envelope's %q %q",
						round, w.Header().Get("Etag"), w.Header().Get("Last-Modified"), last.Tag, last.Time)
				}
				tag, tm = last.Tag, last.Time
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("received\n  %v\nwant each published message once, in order\n  %v", got, want)
			}
			// Nothing new: the hold ends with 304 and the position kept.
			w := f.poll(channels, "tag="+tag+"&time="+url.QueryEscape(tm), nil)
			if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Fatalf("poll with nothing new: status %d body %q; want 304", w.Code, w.Body)
			}
			wantHeaders := map[string]string{"Etag": tag, "Last-Modified": tm, "Last-Message-Id": tag, "Expires": ExpiresNever}
			for k, v := range wantHeaders {
				if got := w.Header().Get(k); got != v {
					t.Errorf("304 %s %q; want %q", k, got, v)
				}
			}
		})
	}
}

// A position that is not one of our message ids falls back to the time:
// the messages of that second and later, the clients dropping repeats.
func TestLegacyTimeFallback(t *testing.T) {
	f := newFixture(t, time.Millisecond)
	start := f.clock.Now()
	old := f.publish(0, chA)
	f.clock.Set(start.Add(2 * time.Second))
	same := f.publish(1, chA)
	f.clock.Set(start.Add(2*time.Second + 900*time.Millisecond))
	later := f.publish(2, chA)
	f.clock.Set(start.Add(5 * time.Second))
	next := f.publish(3, chA)

	w := f.poll([]string{chA}, "tag=4&time="+url.QueryEscape(same.HTTPTime()), nil)
	env := envelopes(t, w.Body.String())
	var tags []string
	for _, e := range env {
		tags = append(tags, e.Tag)
	}
	if strings.Join(tags, ",") != strings.Join([]string{same.MID, later.MID, next.MID}, ",") {
		t.Errorf("from %s delivered %v; want %s %s %s (not %s)", same.HTTPTime(), tags, same.MID, later.MID, next.MID, old.MID)
	}

	// A time after every message: nothing, and the 304 keeps the
	// position, without a mid to adopt.
	w = f.poll([]string{chA}, "tag=4&time="+url.QueryEscape(start.Add(10*time.Second).Format(http.TimeFormat)), nil)
	if w.Code != http.StatusNotModified {
		t.Fatalf("status %d; want 304", w.Code)
	}
	if w.Header().Get("Etag") != "4" || w.Header().Get("Last-Message-Id") != "" ||
		w.Header().Get("Last-Modified") != start.Add(10*time.Second).Format(http.TimeFormat) {
		t.Errorf("304 headers %v; want Etag 4, the time sent and an empty Last-Message-Id", w.Header())
	}

	// Neither a message id nor a time: live messages only.
	w = f.poll([]string{chA}, "tag=4", nil)
	if w.Code != http.StatusNotModified {
		t.Errorf("tag alone: status %d body %q; want 304", w.Code, w.Body)
	}
	if _, ok := w.Header()["Last-Modified"]; ok {
		t.Errorf("304 without a time sent carries Last-Modified %q", w.Header().Get("Last-Modified"))
	}
}

// A held request gets a message published during the hold, in the
// template, with its position in the headers.
func TestLegacyLive(t *testing.T) {
	f := newFixture(t, time.Hour)
	first := f.publish(0, chA)
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		r := httptest.NewRequest(http.MethodGet, "/bitrix/sub/?tag="+first.MID, nil)
		c, _ := ParseCursor(r.URL.Query(), r.Header)
		w := httptest.NewRecorder()
		f.h.Serve(w, r, f.request([]string{chB, chA}, &c))
		done <- w
	}()
	testutil.WaitFor(t, "the request to subscribe", func() bool { return f.hub.Count(chA) != 0 })
	m := f.publish(1, chA)
	w := <-done
	if w.Code != http.StatusOK {
		t.Fatalf("status %d; want 200", w.Code)
	}
	want := string(format.PushStream.AppendMessage(nil, m, chA))
	if w.Body.String() != want {
		t.Errorf("body\n  %s\nwant\n  %s", w.Body, want)
	}
	if w.Header().Get("Etag") != m.MID || w.Header().Get("Last-Modified") != m.HTTPTime() {
		t.Errorf("Etag %q Last-Modified %q; want %q %q", w.Header().Get("Etag"), w.Header().Get("Last-Modified"), m.MID, m.HTTPTime())
	}
}

// A held version 1-2 request ended by shutdown gets the restart command in
// its template.
func TestLegacyShutdown(t *testing.T) {
	f := newFixture(t, time.Hour)
	restart := &protocol.Message{Body: []byte(`{"module_id":"pull","command":"server_restart","params":{}}`)}
	if err := f.engine.Reserve(context.Background(), restart); err != nil {
		t.Fatal(err)
	}
	f.h.Shutdown(func(string) *protocol.Message { return restart })
	w := f.poll([]string{chA}, "tag=1", nil)
	if w.Body.String() != string(format.PushStream.AppendMessage(nil, restart, chA)) {
		t.Errorf("body %q; want the restart command in the legacy template", w.Body)
	}
}
