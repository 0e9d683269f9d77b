package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// Raw-protocol tests of versions 1 and 2 (nginx-push-stream-module long
// polling, resumed by tag and time): PROTOCOL.md sections 2.3, 3.2, B3.3
// and checklist B8 line 6; docs/protocols.md "Versions 1 and 2".

// oldClientFirstTime is the fixed past date the old BX.PULL client sends as
// time before it has read any message (its tag is then 1).
const oldClientFirstTime = "Fri, 18 Mar 2022 21:00:00 GMT"

// LegacyEnvelope is one message as a version 1-2 client receives it.
type LegacyEnvelope struct {
	Raw     string
	ID      uint64
	Channel string
	Tag     string
	Time    string
	Text    json.RawMessage
}

// The old client cuts envelopes out of a body with this pattern.
var legacyEnvelopeRE = regexp.MustCompile(`#!NGINXNMS!#(.*?)#!NGINXNME!#`)

// parseLegacyEnvelopes splits a version 1-2 answer into its envelopes,
// failing the test unless the body is exactly a run of
// #!NGINXNMS!#{"id","channel","tag","time","eventid","text"}#!NGINXNME!#
// in that byte form, each on one line.
func parseLegacyEnvelopes(t testing.TB, body string) []LegacyEnvelope {
	t.Helper()
	var out []LegacyEnvelope
	rest := body
	for _, m := range legacyEnvelopeRE.FindAllStringSubmatch(body, -1) {
		var f struct {
			ID      *uint64         `json:"id"`
			Channel *string         `json:"channel"`
			Tag     *string         `json:"tag"`
			Time    *string         `json:"time"`
			EventID *string         `json:"eventid"`
			Text    json.RawMessage `json:"text"`
		}
		if err := json.Unmarshal([]byte(m[1]), &f); err != nil {
			t.Fatalf("envelope is not a JSON object: %v: %s", err, m[1])
		}
		if f.ID == nil || f.Channel == nil || f.Tag == nil || f.Time == nil || f.EventID == nil || f.Text == nil {
			t.Fatalf("envelope lacks a field of the template: %s", m[1])
		}
		e := LegacyEnvelope{Raw: m[0], ID: *f.ID, Channel: *f.Channel, Tag: *f.Tag, Time: *f.Time, Text: f.Text}
		exact := fmt.Sprintf(`%s{"id":%d,"channel":%q,"tag":%q,"time":%q,"eventid":"","text":%s}%s`,
			envStart, e.ID, e.Channel, e.Tag, e.Time, e.Text, envEnd)
		if !strings.HasPrefix(rest, exact) {
			t.Fatalf("answer goes on with\n  %.300q\nwant exactly\n  %q", rest, exact)
		}
		rest = rest[len(exact):]
		if !validMID(e.Tag) {
			t.Fatalf("envelope tag %q is not a message id", e.Tag)
		}
		if _, err := time.Parse(http.TimeFormat, e.Time); err != nil {
			t.Fatalf("envelope time %q is not an HTTP date: %v", e.Time, err)
		}
		out = append(out, e)
	}
	if rest != "" || len(out) == 0 {
		t.Fatalf("answer %q is not a run of envelopes", body)
	}
	return out
}

// oldClient is the polling loop of the old BX.PULL client: each request
// carries the tag and time of the last envelope read, as query parameters
// and, unless headers is false, as If-None-Match and If-Modified-Since.
type oldClient struct {
	srv      *Server
	channel  string // CHANNEL_ID as sent
	headers  bool
	tag, tm  string
	received []LegacyEnvelope
}

func newOldClient(srv *Server, channel string, headers bool) *oldClient {
	return &oldClient{srv: srv, channel: channel, headers: headers, tag: "1", tm: oldClientFirstTime}
}

func (c *oldClient) url() string {
	return c.srv.SubURL + "?CHANNEL_ID=" + c.channel + "&tag=" + url.QueryEscape(c.tag) +
		"&time=" + url.QueryEscape(c.tm) + "&rnd=" + fmt.Sprint(time.Now().UnixMilli())
}

func (c *oldClient) header() map[string]string {
	if !c.headers {
		return nil
	}
	return map[string]string{"If-Modified-Since": c.tm, "If-None-Match": c.tag, "Origin": "https://portal.example"}
}

// poll sends one request and takes its envelopes and position as the
// client does (from the envelopes, not the headers).
func (c *oldClient) poll(t *testing.T) Response {
	t.Helper()
	r := request(t, http.MethodGet, c.url(), "", c.header())
	checkLegacyHeaders(t, r)
	if r.Status == http.StatusOK {
		env := parseLegacyEnvelopes(t, r.Body)
		last := env[len(env)-1]
		if r.Header.Get("Etag") != last.Tag || r.Header.Get("Last-Modified") != last.Time {
			t.Errorf("200: Etag %q Last-Modified %q; want the last envelope's tag %q and time %q",
				r.Header.Get("Etag"), r.Header.Get("Last-Modified"), last.Tag, last.Time)
		}
		c.received = append(c.received, env...)
		c.tag, c.tm = last.Tag, last.Time
	}
	return r
}

// pollUntil polls until n envelopes in all were received.
func (c *oldClient) pollUntil(t *testing.T, n int) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("the old client to receive %d envelopes", n), func() bool {
		if len(c.received) >= n {
			return true
		}
		r := c.poll(t)
		if r.Status != http.StatusOK && r.Status != http.StatusNotModified {
			t.Fatalf("old client poll: status %d body %q", r.Status, r.Body)
		}
		return len(c.received) >= n
	})
}

// checkLegacyHeaders checks the headers of every version 1-2 answer.
func checkLegacyHeaders(t *testing.T, r Response) {
	t.Helper()
	checkLPHeaders(t, "version 1-2 answer", r)
	expose := strings.ToLower(r.Header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"etag", "last-modified", "last-message-id"} {
		if !strings.Contains(expose, h) {
			t.Errorf("Access-Control-Expose-Headers %q; want it to list %s, which cross-origin scripts read", expose, h)
		}
	}
}

func legacyTexts(env []LegacyEnvelope) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = string(e.Text)
	}
	return out
}

// B8.6: an old client polling by tag and time (in the query and in
// headers, or in the query alone, as with the module's "send headers"
// option off) receives every message of bursts published between its
// requests, once, in order, byte for byte; a current client on the same
// channel receives the same messages; on the memory engine and on Redis,
// with the old client polling another process than the one published to.
func TestOldClientPollLoop(t *testing.T) {
	engines := map[string]func(t *testing.T) (pub, sub *Server){
		"memory": func(t *testing.T) (*Server, *Server) {
			srv := startP3(t, "e2e-secret-key", 1)
			return srv, srv
		},
		"redis": func(t *testing.T) (*Server, *Server) {
			r := redistest.Start(t)
			var srvs []*Server
			for range 2 {
				srvs = append(srvs, startServer(t, map[string]any{
					"storage":  map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port},
					"polling":  map[string]any{"timeout": 1},
					"security": map[string]any{"key": "e2e-secret-key"},
				}))
				waitReadyStatus(t, srvs[len(srvs)-1], true)
			}
			return srvs[0], srvs[1]
		},
	}
	for name, start := range engines {
		for _, headers := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/headers=%v", name, headers), func(t *testing.T) {
				pub, sub := start(t)
				id := newChannelID(t)
				channel := signed(sub.Key, id)
				current := mustDialWS(t, sub.WSURL+"?CHANNEL_ID="+channel)
				waitOnline(t, sub, id, true)
				old := newOldClient(sub, channel, headers)

				var want []string
				for burst, size := range []int{1, 4, 2, 7} {
					for i := range size {
						body := command("test", fmt.Sprintf("b%d-%d", burst, i), burst*10+i)
						publish(t, pub, []string{id}, body)
						want = append(want, body)
					}
					old.pollUntil(t, len(want))
				}
				if got := legacyTexts(old.received); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("old client received\n  %s\nwant each message once, in order\n  %s",
						strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
				for i, e := range old.received {
					if e.Channel != id {
						t.Errorf("envelope %d names channel %q; want %q", i, e.Channel, id)
					}
					if i > 0 && (e.Tag <= old.received[i-1].Tag || e.ID <= old.received[i-1].ID) {
						t.Errorf("envelope %d: tag %s id %d not after tag %s id %d", i, e.Tag, e.ID, old.received[i-1].Tag, old.received[i-1].ID)
					}
				}

				// The current client got the same messages, with the
				// same ids.
				got := current.NextEnvelopes(t, len(want))
				for i, e := range got {
					checkEnvelope(t, "", e, id, want[i])
					if e.MID != old.received[i].Tag || e.ID != old.received[i].ID || e.Time != old.received[i].Time {
						t.Errorf("message %d: current client has mid %s id %d time %q, old client tag %s id %d time %q",
							i, e.MID, e.ID, e.Time, old.received[i].Tag, old.received[i].ID, old.received[i].Time)
					}
				}

				// Nothing new: 304 after the hold, the position kept.
				r := old.poll(t)
				checkLegacy304(t, r, old.tag, old.tm, old.tag)
				if n := len(old.received); n != len(want) {
					t.Errorf("old client received %d envelopes after the last poll; want %d", n, len(want))
				}
			})
		}
	}
}

// checkLegacy304 checks a version 1-2 answer at the end of the hold.
func checkLegacy304(t *testing.T, r Response, etag, lastModified, lastID string) {
	t.Helper()
	if r.Status != http.StatusNotModified || r.Body != "" {
		t.Fatalf("status %d body %q; want 304 with no body", r.Status, r.Body)
	}
	checkLegacyHeaders(t, r)
	want := map[string]string{
		"Etag":            etag,
		"Last-Modified":   lastModified,
		"Last-Message-Id": lastID,
		"Expires":         expires1973,
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("304 %s %q; want %q", k, got, v)
		}
	}
}

// A held request gets a message published during the hold, alone, with
// its position in Etag and Last-Modified; a request without any new
// message ends after the hold with 304.
func TestOldClientHold(t *testing.T) {
	srv := startP3(t, "", 2)
	id := newChannelID(t)
	first := command("test", "first", 1)
	publish(t, srv, []string{id}, first)

	// The first request of a client (tag 1, a fixed past time) gets what
	// the channel holds, as from nginx-push-stream.
	old := newOldClient(srv, id, true)
	if r := old.poll(t); r.Status != http.StatusOK || len(old.received) != 1 || string(old.received[0].Text) != first {
		t.Fatalf("first request: status %d body %q; want 200 with the stored message", r.Status, r.Body)
	}

	pending := startLongPoll(t, old.url())
	waitOnline(t, srv, id, true)
	body := command("test", "held", 2)
	publish(t, srv, []string{id}, body)
	r := awaitResponse(t, pending)
	if r.Status != http.StatusOK {
		t.Fatalf("held request: status %d body %q; want 200", r.Status, r.Body)
	}
	checkLegacyHeaders(t, r)
	env := parseLegacyEnvelopes(t, r.Body)
	if len(env) != 1 || string(env[0].Text) != body || env[0].Channel != id {
		t.Fatalf("held request got %q; want the one message published during the hold", r.Body)
	}
	if r.Header.Get("Etag") != env[0].Tag || r.Header.Get("Last-Modified") != env[0].Time {
		t.Errorf("Etag %q Last-Modified %q; want %q %q", r.Header.Get("Etag"), r.Header.Get("Last-Modified"), env[0].Tag, env[0].Time)
	}

	// Headers only, as the client sends them with a cross-origin path
	// that keeps query parameters for nginx's own use.
	r = request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id, "", map[string]string{
		"If-None-Match": env[0].Tag, "If-Modified-Since": env[0].Time,
	})
	checkLegacy304(t, r, env[0].Tag, env[0].Time, env[0].Tag)

	// A position from elsewhere (an nginx-push-stream tag) with a time
	// after every message: nothing, and no mid offered in its place.
	later := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	r = request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id+"&tag=3&time="+url.QueryEscape(later), "", nil)
	checkLegacy304(t, r, "3", later, "")
}

// The CORS case the Push & Pull documentation warns of: an old client on a
// page of another origin sends If-Modified-Since and If-None-Match, so the
// browser first sends a preflight that must allow them, and the client's
// script may read Etag and Last-Modified only if the answer exposes them;
// without its headers the client still resumes, by the query alone (the
// loop test covers that). Errors carry the CORS headers too, or the
// browser hides their status from the client.
func TestOldClientCORS(t *testing.T) {
	const key = "e2e-secret-key"
	srv := startP3(t, key, 1)
	id := newChannelID(t)
	old := newOldClient(srv, signed(key, id), true)

	pre := request(t, http.MethodOptions, old.url(), "", map[string]string{
		"Origin":                         "https://portal.example",
		"Access-Control-Request-Method":  "GET",
		"Access-Control-Request-Headers": "if-modified-since,if-none-match",
	})
	if pre.Status != http.StatusOK || pre.Body != "" {
		t.Fatalf("preflight: status %d body %q; want 200, empty", pre.Status, pre.Body)
	}
	if got := pre.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("preflight: Access-Control-Allow-Origin %q; want *", got)
	}
	if got := pre.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "GET") {
		t.Errorf("preflight: Access-Control-Allow-Methods %q; want it to allow GET", got)
	}
	allowed := strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"if-modified-since", "if-none-match"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("preflight: Access-Control-Allow-Headers %q; want it to allow %s", allowed, h)
		}
	}

	publish(t, srv, []string{id}, command("test", "cors", 1))
	r := old.poll(t) // checks Access-Control-Allow-Origin and the exposed headers
	if r.Status != http.StatusOK {
		t.Fatalf("poll: status %d body %q; want 200", r.Status, r.Body)
	}

	bad := request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id+"&tag=1&time="+url.QueryEscape(oldClientFirstTime), "", old.header())
	if bad.Status != http.StatusBadRequest || bad.Body != "Channel id is not correct." {
		t.Errorf("unsigned channel: status %d body %q; want 400 %q", bad.Status, bad.Body, "Channel id is not correct.")
	}
	checkLegacyHeaders(t, bad)
}

// A version 2 client on WebSocket resumes by its tag alone; its frames then
// carry the mid it resumes by. A valid mid wins over tag and time.
func TestOldClientWebSocket(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	var bodies []string
	for i := range 4 {
		bodies = append(bodies, command("test", fmt.Sprintf("w%d", i), i))
		publish(t, srv, []string{id}, bodies[i])
	}
	old := newOldClient(srv, id, false)
	old.pollUntil(t, 4)

	from := old.received[1]
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id+"&tag="+from.Tag+"&time="+url.QueryEscape(from.Time))
	got := c.NextEnvelopes(t, 2)
	for i, e := range got {
		checkEnvelope(t, "", e, id, bodies[i+2])
		if e.MID != old.received[i+2].Tag {
			t.Errorf("replayed message %d: mid %s; want %s", i, e.MID, old.received[i+2].Tag)
		}
	}

	// mid wins: a client sending both gets the version 3 answer from its
	// mid, whatever its tag says.
	lp, _ := subQuery(srv, id, "mid="+old.received[2].Tag+"&tag="+old.received[0].Tag+"&time="+url.QueryEscape(old.received[0].Time))
	r := longPoll(t, lp)
	if r.Status != http.StatusOK {
		t.Fatalf("poll with mid, tag and time: status %d body %q; want 200", r.Status, r.Body)
	}
	env := parseEnvelopes(t, r.Body)
	if len(env) != 1 || env[0].MID != old.received[3].Tag {
		t.Fatalf("poll with mid %s delivered %q; want only the message after it", old.received[2].Tag, r.Body)
	}
	if r.Header.Get("Etag") != "" || r.Header.Get("Last-Modified") != "" {
		t.Errorf("version 3 answer carries Etag %q Last-Modified %q; want neither", r.Header.Get("Etag"), r.Header.Get("Last-Modified"))
	}
}

// A version 1-2 client whose first poll names no position (no tag or
// time, no If-None-Match or If-Modified-Since) continues from the Etag and
// Last-Modified of each answer, as from nginx-push-stream-module, which set
// both on every long-polling answer (ngx_http_push_stream_add_polling_headers:
// with messages, on a message arriving during the hold, at its end): it
// gets every message once, in order, and the answers are not to be
// stored by browsers (no-store, as nginx-push-stream sent). The first
// answer is still a version 3 answer, for the version 3 clients that
// poll the same way.
func TestPushStreamFirstPoll(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	checkNoStore := func(what string, r Response) {
		t.Helper()
		if got := r.Header.Get("Cache-Control"); !strings.Contains(got, "no-store") {
			t.Errorf("%s: Cache-Control %q; want no-store", what, got)
		}
	}

	// First poll, held until a message arrives.
	pending := startLongPoll(t, srv.SubURL+"?CHANNEL_ID="+id)
	waitOnline(t, srv, id, true)
	body := command("test", "first", 0)
	publish(t, srv, []string{id}, body)
	r := awaitResponse(t, pending)
	checkLegacyHeaders(t, r)
	checkNoStore("first poll", r)
	env := parseEnvelopes(t, r.Body)
	if len(env) != 1 || string(env[0].Text) != body {
		t.Fatalf("first poll got %q; want the version 3 envelope of the message", r.Body)
	}
	etag, lm := r.Header.Get("Etag"), r.Header.Get("Last-Modified")
	if etag != env[0].MID || lm != env[0].Time {
		t.Fatalf("first poll: Etag %q Last-Modified %q; want the message's mid %q and time %q", etag, lm, env[0].MID, env[0].Time)
	}

	// From then on by the headers alone.
	var want, got []string
	for burst, size := range []int{3, 1, 4} {
		for i := range size {
			b := command("test", fmt.Sprintf("b%d-%d", burst, i), burst*10+i)
			publish(t, srv, []string{id}, b)
			want = append(want, b)
		}
		r := request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id, "", map[string]string{"If-None-Match": etag, "If-Modified-Since": lm})
		checkLegacyHeaders(t, r)
		checkNoStore(fmt.Sprintf("poll %d", burst), r)
		if r.Status != http.StatusOK {
			t.Fatalf("poll %d: status %d body %q; want 200", burst, r.Status, r.Body)
		}
		e := parseLegacyEnvelopes(t, r.Body)
		got = append(got, legacyTexts(e)...)
		etag, lm = r.Header.Get("Etag"), r.Header.Get("Last-Modified")
		if last := e[len(e)-1]; etag != last.Tag || lm != last.Time {
			t.Fatalf("poll %d: Etag %q Last-Modified %q; want the last envelope's %q %q", burst, etag, lm, last.Tag, last.Time)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("received\n  %s\nwant each message once, in order\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	r = request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id, "", map[string]string{"If-None-Match": etag, "If-Modified-Since": lm})
	checkLegacy304(t, r, etag, lm, etag)

	// A first poll that ends in 304: Etag the newest mid (what
	// Last-Message-Id offers version 3 clients), Last-Modified set too; a
	// client continuing from them gets exactly what came next.
	r = longPoll(t, srv.SubURL+"?CHANNEL_ID="+id)
	if r.Status != http.StatusNotModified || r.Header.Get("Etag") != etag || r.Header.Get("Last-Message-Id") != etag || r.Header.Get("Expires") != expires1973 {
		t.Fatalf("first poll with nothing new: status %d headers %v; want 304 with Etag and Last-Message-Id %s", r.Status, r.Header, etag)
	}
	if _, err := http.ParseTime(r.Header.Get("Last-Modified")); err != nil {
		t.Errorf("304 Last-Modified %q: %v", r.Header.Get("Last-Modified"), err)
	}
	checkNoStore("304", r)
	next := command("test", "next", 99)
	publish(t, srv, []string{id}, next)
	r = request(t, http.MethodGet, srv.SubURL+"?CHANNEL_ID="+id, "", map[string]string{"If-None-Match": r.Header.Get("Etag"), "If-Modified-Since": r.Header.Get("Last-Modified")})
	if e := parseLegacyEnvelopes(t, r.Body); len(e) != 1 || string(e[0].Text) != next {
		t.Fatalf("poll from the 304's headers got %q; want the next message alone", r.Body)
	}
}
