package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// Raw-protocol tests of version 3 (text envelopes, mid cursor): PROTOCOL.md
// sections 3.2, B3, B4.1 and checklist B8 lines 1-5, 7-10 and 16.

const (
	expires1973  = "Thu, 01 Jan 1973 11:11:01 GMT"
	exposeHeader = "Last-Message-Id"
)

// startP3 starts a server holding long polls for pollSeconds, signing
// channels with key when it is not empty.
func startP3(t *testing.T, key string, pollSeconds float64) *Server {
	t.Helper()
	cfg := map[string]any{"polling": map[string]any{"timeout": pollSeconds}}
	if key != "" {
		cfg["security"] = map[string]any{"key": key}
	}
	return startServer(t, cfg)
}

// subQuery returns the long-polling and WebSocket URLs for a CHANNEL_ID
// value and further query parameters ("mid=..&format=json").
func subQuery(srv *Server, channelID, more string) (lp, wsURL string) {
	q := "?CHANNEL_ID=" + channelID
	if more != "" {
		q += "&" + more
	}
	q += "&revision=19"
	return srv.SubURL + q, srv.WSURL + q
}

// checkLPHeaders checks the headers every long-polling answer carries.
func checkLPHeaders(t *testing.T, what string, r Response) {
	t.Helper()
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("%s: Access-Control-Allow-Origin %q; want *", what, got)
	}
	if got := r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, exposeHeader) {
		t.Errorf("%s: Access-Control-Expose-Headers %q; want it to list %s", what, got, exposeHeader)
	}
	if r.Status != http.StatusNotModified {
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
			t.Errorf("%s: Content-Type %q; want text/plain", what, got)
		}
	}
}

// exactEnvelope is the one serialisation an envelope may have.
func exactEnvelope(e Envelope) string {
	return fmt.Sprintf(`%s{"id":%d,"mid":%q,"channel":%q,"tag":%q,"time":%q,"text":%s}%s`,
		envStart, e.ID, e.MID, e.Channel, e.Tag, e.Time, e.Text, envEnd)
}

// checkEnvelope checks e carries body on channel, byte for byte as
// published, and that the whole text is exactly its envelope.
func checkEnvelope(t *testing.T, raw string, e Envelope, channel, body string) {
	t.Helper()
	if e.Channel != channel {
		t.Errorf("envelope channel %q; want %q", e.Channel, channel)
	}
	if string(e.Text) != body {
		t.Errorf("envelope text\n  %s\nwant the published body raw\n  %s", e.Text, body)
	}
	if raw != "" && raw != exactEnvelope(e) {
		t.Errorf("envelope\n  %s\nwant exactly\n  %s", raw, exactEnvelope(e))
	}
}

// B8.1: a signed channel is accepted; a wrong signature gets 400 (LP) or a
// refused upgrade (WS).
func TestSignedChannel(t *testing.T) {
	const key = "e2e-secret-key"
	srv := startP3(t, key, 1)
	id := newChannelID(t)

	lp, wsURL := subQuery(srv, signed(key, id), "")
	r := longPoll(t, lp)
	if r.Status != http.StatusNotModified {
		t.Errorf("long poll with a valid signature: status %d body %q; want 304 after the hold", r.Status, r.Body)
	}
	c := mustDialWS(t, wsURL)
	waitOnline(t, srv, id, true)
	body := command("test", "signed", 1)
	publish(t, srv, []string{id}, body)
	f := c.Next(t)
	env := parseEnvelopes(t, string(f.Data))
	checkEnvelope(t, string(f.Data), env[0], id, body)

	other := newChannelID(t)
	bad := map[string]string{
		"wrong signature":        id + "." + sign(key, other),
		"signature of other key": id + "." + sign("another key", id),
		"unsigned":               id,
		"truncated signature":    signed(key, id)[:len(signed(key, id))-2],
		"second entry unsigned":  signed(key, id) + "/" + other,
	}
	for name, channel := range bad {
		t.Run(name, func(t *testing.T) {
			lp, wsURL := subQuery(srv, channel, "")
			r := longPoll(t, lp)
			if r.Status != http.StatusBadRequest || r.Body != "Channel id is not correct." {
				t.Errorf("long poll: status %d body %q; want 400 %q", r.Status, r.Body, "Channel id is not correct.")
			}
			checkLPHeaders(t, "long poll", r)

			// A WebSocket is upgraded and closed with 4010, which makes
			// the clients fetch a new config.
			wrongChannel(t, wsURL)
		})
	}
}

// B8.2: a published body arrives intact at a WebSocket subscriber, in the
// text envelope.
func TestWebSocketDelivery(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	_, wsURL := subQuery(srv, id, "")
	c := mustDialWS(t, wsURL)
	waitOnline(t, srv, id, true)

	bodies := []string{
		command("test", "first", 1),
		`{"module_id":"im","command":"message","params":{"text":"привет \"quoted\" \\ back\\nslash","list":[1,2.5,null,true]},"extra":{}}`,
		command("test", "third", 3),
	}
	var prev Envelope
	for i, body := range bodies {
		publish(t, srv, []string{id}, body)
		f := c.Next(t)
		if f.Op != ws.OpText {
			t.Fatalf("frame opcode %v; want text", f.Op)
		}
		env := parseEnvelopes(t, string(f.Data))
		if len(env) != 1 {
			t.Fatalf("frame holds %d envelopes; want 1: %s", len(env), f.Data)
		}
		checkEnvelope(t, string(f.Data), env[0], id, body)
		if i > 0 && !(env[0].MID > prev.MID && env[0].ID > prev.ID) {
			t.Errorf("message %d: id %d mid %s not after the previous id %d mid %s", i, env[0].ID, env[0].MID, prev.ID, prev.MID)
		}
		prev = env[0]
	}
}

// B8.3: the same over long polling; the request ends with 200 after the
// message.
func TestLongPollDelivery(t *testing.T) {
	srv := startP3(t, "", 30)
	id := newChannelID(t)
	lp, _ := subQuery(srv, id, "")
	pending := startLongPoll(t, lp)
	waitOnline(t, srv, id, true)
	body := command("test", "polled", 1)
	publish(t, srv, []string{id}, body)
	r := awaitResponse(t, pending)
	if r.Status != http.StatusOK {
		t.Fatalf("long poll: status %d body %q; want 200", r.Status, r.Body)
	}
	checkLPHeaders(t, "long poll 200", r)
	env := parseEnvelopes(t, r.Body)
	if len(env) != 1 {
		t.Fatalf("long poll answer holds %d envelopes; want 1: %s", len(env), r.Body)
	}
	checkEnvelope(t, r.Body, env[0], id, body)
}

// B8.4: a long poll with nothing to deliver ends after the hold with 304
// and the headers the clients read.
func TestLongPollTimeout(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	lp, _ := subQuery(srv, id, "")

	check304 := func(what string, r Response, lastID string) {
		t.Helper()
		if r.Status != http.StatusNotModified {
			t.Fatalf("%s: status %d body %q; want 304", what, r.Status, r.Body)
		}
		if got := r.Header.Get("Expires"); got != expires1973 {
			t.Errorf("%s: Expires %q; want %q", what, got, expires1973)
		}
		if got := r.Header.Get("Last-Message-Id"); got != lastID {
			t.Errorf("%s: Last-Message-Id %q; want %q", what, got, lastID)
		}
		if r.Body != "" {
			t.Errorf("%s: body %q; want none", what, r.Body)
		}
		checkLPHeaders(t, what, r)
	}
	check304("fresh channel", longPoll(t, lp), "")

	// With messages stored, the client learns the newest mid from the 304.
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	waitOnline(t, srv, id, true)
	publish(t, srv, []string{id}, command("test", "a", 1))
	publish(t, srv, []string{id}, command("test", "b", 2))
	env := c.NextEnvelopes(t, 2)
	check304("channel with messages", longPoll(t, lp), env[1].MID)
	lpMid, _ := subQuery(srv, id, "mid="+env[1].MID)
	check304("poll from the newest mid", longPoll(t, lpMid), env[1].MID)

	// A mid that is not 26 digits is ignored, as if absent.
	lpBad, _ := subQuery(srv, id, "mid=12345")
	check304("poll with a malformed mid", longPoll(t, lpBad), env[1].MID)
}

// B8.5: reconnecting with mid delivers exactly the later messages, in
// order, once; then live ones.
func TestResume(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	watch := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	waitOnline(t, srv, id, true)
	var bodies []string
	for i := range 5 {
		bodies = append(bodies, command("test", fmt.Sprintf("m%d", i), i))
		publish(t, srv, []string{id}, bodies[i])
	}
	all := watch.NextEnvelopes(t, 5)
	for i, e := range all {
		checkEnvelope(t, "", e, id, bodies[i])
	}
	from := all[1].MID // the client saw m0 and m1

	t.Run("websocket", func(t *testing.T) {
		_, wsURL := subQuery(srv, id, "mid="+from)
		c := mustDialWS(t, wsURL)
		got := c.NextEnvelopes(t, 3)
		for i, e := range got {
			checkEnvelope(t, "", e, id, bodies[i+2])
			if e.MID != all[i+2].MID {
				t.Errorf("replayed message %d: mid %s; want %s", i, e.MID, all[i+2].MID)
			}
		}
		live := command("test", "live-ws", 10)
		publish(t, srv, []string{id}, live)
		next := c.NextEnvelopes(t, 1)
		checkEnvelope(t, "", next[0], id, live)
		watch.NextEnvelopes(t, 1)
		// Nothing more may follow: a sentinel published now must be the
		// very next envelope.
		sentinel := command("test", "sentinel-ws", 11)
		publish(t, srv, []string{id}, sentinel)
		checkEnvelope(t, "", c.NextEnvelopes(t, 1)[0], id, sentinel)
		watch.NextEnvelopes(t, 1)
	})

	t.Run("longpolling", func(t *testing.T) {
		lp, _ := subQuery(srv, id, "mid="+from)
		r := longPoll(t, lp)
		if r.Status != http.StatusOK {
			t.Fatalf("long poll from mid: status %d body %q; want 200 at once", r.Status, r.Body)
		}
		checkLPHeaders(t, "resumed long poll", r)
		got := parseEnvelopes(t, r.Body)
		var mids []string
		for _, e := range got {
			mids = append(mids, e.MID)
		}
		if len(got) < 3 || got[0].MID != all[2].MID || got[1].MID != all[3].MID || got[2].MID != all[4].MID {
			t.Fatalf("long poll from %s delivered %v; want %s %s %s first", from, mids, all[2].MID, all[3].MID, all[4].MID)
		}
		for i := range 3 {
			checkEnvelope(t, "", got[i], id, bodies[i+2])
		}
		// The answer may also hold what was published since (the live
		// messages of the WebSocket case); each once, in order.
		for i := 1; i < len(got); i++ {
			if got[i].MID <= got[i-1].MID {
				t.Fatalf("long poll answer out of order or repeated: %v", mids)
			}
		}
		last := got[len(got)-1].MID
		lp, _ = subQuery(srv, id, "mid="+last)
		pending := startLongPoll(t, lp)
		live := command("test", "live-lp", 20)
		publish(t, srv, []string{id}, live)
		r = awaitResponse(t, pending)
		for polls := 1; r.Status == http.StatusNotModified; polls++ {
			// The hold ended before the publish reached it: poll on
			// from the same mid, as the client does.
			t.Logf("poll %d from %s: 304", polls, last)
			r = longPoll(t, lp)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("long poll for the live message: status %d body %q", r.Status, r.Body)
		}
		next := parseEnvelopes(t, r.Body)
		if len(next) != 1 {
			t.Fatalf("long poll after %s delivered %d envelopes; want 1: %s", last, len(next), r.Body)
		}
		checkEnvelope(t, r.Body, next[0], id, live)
	})
}

// format=json answers a JSON array of the same envelope objects.
func TestFormatJSON(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	watch := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id+"&format=json")
	waitOnline(t, srv, id, true)
	b0, b1 := command("test", "j0", 0), command("test", "j1", 1)
	publish(t, srv, []string{id}, b0)
	publish(t, srv, []string{id}, b1)
	all := watch.NextEnvelopes(t, 2)

	decode := func(what, data string) []Envelope {
		t.Helper()
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(data), &arr); err != nil {
			t.Fatalf("%s: not a JSON array: %v: %q", what, err, data)
		}
		var out []Envelope
		for _, o := range arr {
			out = append(out, parseEnvelopeObject(t, o))
		}
		return out
	}

	var got []Envelope
	for len(got) < 2 {
		f := c.Next(t)
		got = append(got, decode("WebSocket frame", string(f.Data))...)
	}
	if len(got) != 2 || got[0].MID != all[0].MID || got[1].MID != all[1].MID {
		t.Fatalf("WebSocket format=json delivered %+v; want the two messages", got)
	}
	checkEnvelope(t, "", got[0], id, b0)
	checkEnvelope(t, "", got[1], id, b1)

	lp, _ := subQuery(srv, id, "format=json&mid="+all[0].MID)
	r := longPoll(t, lp)
	if r.Status != http.StatusOK {
		t.Fatalf("long poll format=json: status %d body %q", r.Status, r.Body)
	}
	checkLPHeaders(t, "long poll format=json", r)
	got = decode("long poll", r.Body)
	if len(got) != 1 || got[0].MID != all[1].MID {
		t.Fatalf("long poll format=json delivered %+v; want the second message", got)
	}
	checkEnvelope(t, "", got[0], id, b1)
}

// B8.7: several channels in one CHANNEL_ID all deliver; a message to two of
// them arrives once per channel, with the same mid.
func TestSeveralChannels(t *testing.T) {
	const key = "e2e-secret-key"
	srv := startP3(t, key, 1)
	a, b := newChannelID(t), newChannelID(t)
	for _, sep := range []string{"/", "%2F"} {
		t.Run("separator "+sep, func(t *testing.T) {
			_, wsURL := subQuery(srv, signed(key, a)+sep+signed(key, b), "")
			c := mustDialWS(t, wsURL)
			waitOnline(t, srv, a, true)
			waitOnline(t, srv, b, true)

			ba, bb, both := command("test", "to-a", 1), command("test", "to-b", 2), command("test", "to-both", 3)
			sentinel := command("test", "sentinel", 4)
			publish(t, srv, []string{a}, ba)
			publish(t, srv, []string{b}, bb)
			publish(t, srv, []string{a, b}, both)
			publish(t, srv, []string{a}, sentinel)
			var env []Envelope
			for len(env) == 0 || string(env[len(env)-1].Text) != sentinel {
				env = append(env, c.NextEnvelopes(t, 1)...)
			}
			if len(env) < 3 {
				t.Fatalf("got %d envelopes: %+v", len(env), env)
			}
			checkEnvelope(t, "", env[0], a, ba)
			checkEnvelope(t, "", env[1], b, bb)
			copies := env[2 : len(env)-1]
			if len(copies) != 2 {
				t.Errorf("the message published to both channels arrived %d times; want once per channel (2)", len(copies))
			}
			for _, e := range copies {
				if string(e.Text) != both || e.MID != copies[0].MID {
					t.Errorf("envelope %+v; want the message to both channels, one mid", e)
				}
				if e.Channel != a && e.Channel != b {
					t.Errorf("envelope channel %q; want one of the subscribed channels", e.Channel)
				}
			}
			c.Close()
			waitOnline(t, srv, a, false)
		})
	}
}

// B8.8: publish errors.
func TestPublishErrors(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	pub := func(query, body string) Response {
		return request(t, http.MethodPost, srv.PubURL+query, body, nil)
	}
	cases := []struct {
		name   string
		query  string
		body   string
		status int
		text   string
	}{
		{"empty body", "?CHANNEL_ID=" + id, "", 400, "Empty post requests are not allowed."},
		{"bad channel", "?CHANNEL_ID=not-a-channel", command("test", "x", 1), 400, "Channel id is not correct."},
		{"short channel", "?CHANNEL_ID=" + id[:31], command("test", "x", 1), 400, "Channel id is not correct."},
		{"one bad of two", "?CHANNEL_ID=" + id + "/xyz", command("test", "x", 1), 400, "Channel id is not correct."},
		{"missing channel", "", command("test", "x", 1), 400, "No channel id provided."},
		{"empty channel", "?CHANNEL_ID=", command("test", "x", 1), 400, "No channel id provided."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := pub(c.query, c.body)
			if r.Status != c.status || r.Body != c.text {
				t.Errorf("POST %s: status %d body %q; want %d %q", c.query, r.Status, r.Body, c.status, c.text)
			}
			if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin %q; want none on the trusted publish route", got)
			}
			if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
				t.Errorf("Content-Type %q; want text/plain", got)
			}
		})
	}

	t.Run("subscribe errors", func(t *testing.T) {
		for _, c := range []struct{ query, text string }{
			{"?CHANNEL_ID=not-a-channel", "Channel id is not correct."},
			{"", "No channel id provided."},
			{"?CHANNEL_ID=", "No channel id provided."},
		} {
			r := longPoll(t, srv.SubURL+c.query)
			if r.Status != 400 || r.Body != c.text {
				t.Errorf("GET sub %s: status %d body %q; want 400 %q", c.query, r.Status, r.Body, c.text)
			}
			checkLPHeaders(t, "subscribe error", r)
			wrongChannel(t, srv.WSURL+c.query)
		}
		wrongChannel(t, srv.WSURL+"?CHANNEL_ID=%zz")
	})

	t.Run("size limit", func(t *testing.T) {
		c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
		waitOnline(t, srv, id, true)
		// The largest body accepted: 1,000,000 bytes.
		largest := sizedBody(1_000_000)
		r := pub("?CHANNEL_ID="+id, largest)
		if r.Status != http.StatusOK {
			t.Fatalf("publish of 1,000,000 bytes: status %d body %q; want 200", r.Status, r.Body)
		}
		env := c.NextEnvelopes(t, 1)
		if string(env[0].Text) != largest {
			t.Errorf("the 1,000,000-byte body did not arrive intact (got %d bytes)", len(env[0].Text))
		}

		status, header, err := rawPublish(srv, "?CHANNEL_ID="+id, sizedBody(1_000_001))
		if err != nil {
			t.Fatalf("publish of 1,000,001 bytes: %v; want a 413 answer", err)
		}
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("publish of 1,000,001 bytes: status %d; want 413", status)
		}
		if got := header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("413: Access-Control-Allow-Origin %q; want none on the trusted publish route", got)
		}
		// Nothing of the refused message reaches subscribers: the next
		// envelope is the one published after it.
		next := command("test", "after-413", 2)
		publish(t, srv, []string{id}, next)
		checkEnvelope(t, "", c.NextEnvelopes(t, 1)[0], id, next)
	})
}

// sizedBody returns a message body of exactly n bytes.
func sizedBody(n int) string {
	head, tail := `{"module_id":"test","command":"big","params":{"s":"`, `"}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// rawPublish posts body over a bare TCP connection, reading the answer while
// it writes: the server may answer 413 and drop the connection before the
// whole body is sent, which an ordinary HTTP client reports as a write error.
func rawPublish(srv *Server, query, body string) (int, http.Header, error) {
	u, err := url.Parse(srv.PubURL)
	if err != nil {
		return 0, nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, waitTimeout)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		fmt.Fprintf(conn, "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", u.Path, query, u.Host, len(body))
		_, _ = io.WriteString(conn, body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// B8.9: OPTIONS and CORS headers; unknown routes 404 with
// Access-Control-Allow-Origin.
func TestCORS(t *testing.T) {
	srv := startP3(t, "", 1)
	wsRoute := "http" + strings.TrimPrefix(srv.WSURL, "ws")
	for _, u := range []string{srv.SubURL, srv.SubURL + "?CHANNEL_ID=whatever", wsRoute} {
		r := request(t, http.MethodOptions, u, "", map[string]string{"Origin": "https://portal.example", "Access-Control-Request-Method": "GET"})
		if r.Status != http.StatusOK || r.Body != "" {
			t.Errorf("OPTIONS %s: status %d body %q; want 200, empty", u, r.Status, r.Body)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "POST, GET, DELETE, OPTIONS",
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("OPTIONS %s: %s %q; want %q", u, k, got, v)
			}
		}
		allow := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"if-modified-since", "if-none-match"} {
			if !strings.Contains(allow, h) {
				t.Errorf("OPTIONS %s: Access-Control-Allow-Headers %q; want it to list %s", u, allow, h)
			}
		}
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
			t.Errorf("OPTIONS %s: Content-Type %q; want text/plain", u, got)
		}
	}

	base := strings.TrimSuffix(srv.SubURL, "/bitrix/sub/")
	for _, c := range []struct {
		method, url string
		cors        string // the trusted publish route sends none
	}{
		{http.MethodGet, base + "/no/such/route", "*"},
		{http.MethodGet, base + "/", "*"},
		{http.MethodPost, srv.SubURL + "?CHANNEL_ID=" + newChannelID(t), "*"},
		{http.MethodOptions, srv.PubURL, ""},
		{http.MethodPut, srv.PubURL + "?CHANNEL_ID=" + newChannelID(t), ""},
		{http.MethodPut, srv.SubURL, "*"},
		{http.MethodDelete, base + "/no/such/route", "*"},
	} {
		body := ""
		if c.method == http.MethodPost || c.method == http.MethodPut {
			body = command("test", "x", 1)
		}
		r := request(t, c.method, c.url, body, nil)
		if r.Status != http.StatusNotFound {
			t.Errorf("%s %s: status %d; want 404", c.method, c.url, r.Status)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != c.cors {
			t.Errorf("%s %s: Access-Control-Allow-Origin %q; want %q", c.method, c.url, got, c.cors)
		}
		if r.Body != "" {
			t.Errorf("%s %s: body %q; want none", c.method, c.url, r.Body)
		}
	}

	// The trusted routes (publish, online, stats) answer backends without
	// CORS headers, so no page can read them, and refuse what a browser
	// sends on a page's behalf, so no page can forge a publish.
	id := newChannelID(t)
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	defer c.Close()
	waitOnline(t, srv, id, true)
	for _, r := range []struct {
		what string
		r    Response
		want int
	}{
		{"publish", request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+id, command("test", "backend", 1), nil), http.StatusOK},
		{"online", request(t, http.MethodGet, srv.PubURL+"?CHANNEL_ID="+id, "", nil), http.StatusOK},
		{"stats", request(t, http.MethodGet, srv.StatURL, "", nil), http.StatusOK},
		{"forged publish", request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+id, command("test", "forged", 2),
			map[string]string{"Origin": "https://intranet.example", "Content-Type": "text/plain"}), http.StatusForbidden},
		{"form publish", request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+id, command("test", "forged", 3),
			map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden},
		{"page reading stats", request(t, http.MethodGet, srv.StatURL, "", map[string]string{"Origin": "https://intranet.example"}), http.StatusForbidden},
	} {
		if r.r.Status != r.want {
			t.Errorf("%s: status %d; want %d (%q)", r.what, r.r.Status, r.want, r.r.Body)
		}
		if got := r.r.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q; want none", r.what, got)
		}
	}
	// Only the backend's messages arrive, no forged one between them.
	last := command("test", "last", 4)
	publish(t, srv, []string{id}, last)
	env := c.NextEnvelopes(t, 2)
	for i, want := range []string{`"command":"backend"`, `"command":"last"`} {
		if !strings.Contains(string(env[i].Text), want) {
			t.Errorf("message %d: %s; want %s, and no forged one", i+1, env[i].Text, want)
		}
	}
}

// A message published without an expiry (or with Message-Expiry: 0) is
// transient by default, as in the original 2.0: the clients connected get
// it, in id order with the rest, and a client resuming is not sent it.
func TestTransientWithoutExpiry(t *testing.T) {
	for _, engine := range []string{"memory", "redis"} {
		t.Run(engine, func(t *testing.T) {
			storage := map[string]any{"defaultExpiry": 0} // the default, said here over the harness's
			if engine == "redis" {
				r := redistest.Start(t)
				storage = map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port, "defaultExpiry": 0}
			}
			srv := startServer(t, map[string]any{"storage": storage, "polling": map[string]any{"timeout": 1}})
			id := newChannelID(t)
			c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
			waitOnline(t, srv, id, true)
			keep := map[string]string{"Message-Expiry": "60"}
			bodies := []string{command("test", "first", 0), command("test", "live", 1), command("test", "kept", 2), command("test", "live0", 3)}
			publishWith(t, srv, []string{id}, bodies[0], keep)
			publish(t, srv, []string{id}, bodies[1])
			publishWith(t, srv, []string{id}, bodies[2], keep)
			publishWith(t, srv, []string{id}, bodies[3], map[string]string{"Message-Expiry": "0"})
			env := c.NextEnvelopes(t, 4)
			for i := range env {
				checkEnvelope(t, "", env[i], id, bodies[i])
				if i > 0 && env[i].ID <= env[i-1].ID {
					t.Errorf("ids %d then %d; want increasing", env[i-1].ID, env[i].ID)
				}
			}

			lp, wsURL := subQuery(srv, id, "mid="+env[0].MID)
			r := longPoll(t, lp)
			if got := parseEnvelopes(t, r.Body); r.Status != http.StatusOK || len(got) != 1 || got[0].MID != env[2].MID {
				t.Errorf("long poll from the first message: %d %q; want only the kept message %s", r.Status, r.Body, env[2].MID)
			}
			w := mustDialWS(t, wsURL)
			last := command("test", "last", 4)
			publishWith(t, srv, []string{id}, last, keep)
			got := w.NextEnvelopes(t, 2)
			checkEnvelope(t, "", got[0], id, bodies[2])
			checkEnvelope(t, "", got[1], id, last)
		})
	}
}

// B8.10: Message-Expiry shortens a message's life; expired messages are
// not replayed.
func TestMessageExpiry(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	waitOnline(t, srv, id, true)
	first, short, kept := command("test", "first", 0), command("test", "short", 1), command("test", "kept", 2)
	publish(t, srv, []string{id}, first)
	publishWith(t, srv, []string{id}, short, map[string]string{"Message-Expiry": "1"})
	publish(t, srv, []string{id}, kept)
	env := c.NextEnvelopes(t, 3)
	// Delivery to those online is not affected by the expiry.
	checkEnvelope(t, "", env[1], id, short)

	// Resuming from the first message replays the short one until it
	// expires, then only the kept one.
	lp, wsURL := subQuery(srv, id, "mid="+env[0].MID)
	var r Response
	testutil.WaitFor(t, "the message with Message-Expiry: 1 to expire", func() bool {
		r = longPoll(t, lp)
		return r.Status != http.StatusOK || len(parseEnvelopes(t, r.Body)) != 2
	})
	if r.Status != http.StatusOK {
		t.Fatalf("long poll from the first message: status %d body %q; want 200 with the kept message", r.Status, r.Body)
	}
	got := parseEnvelopes(t, r.Body)
	if len(got) != 1 || got[0].MID != env[2].MID {
		t.Errorf("long poll replayed %d envelopes %s; want only the kept message %s", len(got), r.Body, env[2].MID)
	}
	w := mustDialWS(t, wsURL)
	got = w.NextEnvelopes(t, 1)
	checkEnvelope(t, "", got[0], id, kept)
}

// B8.16: GET on the publish route reports online channels; /server-stat/
// reports the process.
func TestOnlineAndStats(t *testing.T) {
	srv := startP3(t, "", 30)
	a, b, offline := newChannelID(t), newChannelID(t), newChannelID(t)
	mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+a)
	mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+a)
	lp, _ := subQuery(srv, b, "")
	pending := startLongPoll(t, lp)
	// A dial returns with the handshake; the server subscribes the
	// connection and counts it right after.
	testutil.WaitFor(t, "both connections and the long poll counted", func() bool {
		counts := online(t, srv, a, b)
		var st []struct{ WebSockets, Pollings int }
		r := request(t, http.MethodGet, srv.StatURL, "", nil)
		return counts[a] == 2 && counts[b] == 1 && json.Unmarshal([]byte(r.Body), &st) == nil &&
			len(st) == 1 && st[0].WebSockets == 2 && st[0].Pollings == 1
	})

	r := request(t, http.MethodGet, srv.PubURL+"?CHANNEL_ID="+a+"/"+b+"/"+offline, "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET publish route: status %d body %q", r.Status, r.Body)
	}
	if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("GET publish route: Content-Type %q; want text/plain", got)
	}
	counts := onlineCounts(t, r.Body)
	if counts[a] != 2 || counts[b] != 1 {
		t.Errorf("online %s; want %s with 2 subscribers and %s with 1", r.Body, a, b)
	}
	if _, ok := counts[offline]; ok {
		t.Errorf("online %s lists the channel nobody reads (%s)", r.Body, offline)
	}

	r = request(t, http.MethodGet, srv.StatURL, "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("stats: status %d body %q", r.Status, r.Body)
	}
	var stats []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Body), &stats); err != nil {
		t.Fatalf("stats is not a JSON array of objects: %v: %q", err, r.Body)
	}
	if len(stats) != 1 {
		t.Fatalf("stats has %d entries; want 1 (one process): %s", len(stats), r.Body)
	}
	var st struct {
		PID             int    `json:"pid"`
		Date            int64  `json:"date"`
		ProcessUniqueID string `json:"processUniqueId"`
		WebSockets      int    `json:"websockets"`
		Pollings        int    `json:"pollings"`
		Channels        int    `json:"channels"`
	}
	for _, k := range []string{"pid", "processUniqueId", "websockets", "pollings", "channels"} {
		if _, ok := stats[0][k]; !ok {
			t.Errorf("stats entry lacks %q: %s", k, r.Body)
		}
	}
	raw, _ := json.Marshal(stats[0])
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("stats entry: %v: %s", err, raw)
	}
	if st.PID != srv.Cmd.Process.Pid {
		t.Errorf("stats pid %d; want the server's %d", st.PID, srv.Cmd.Process.Pid)
	}
	if st.ProcessUniqueID == "" {
		t.Errorf("stats processUniqueId is empty")
	}
	if st.WebSockets != 2 || st.Pollings != 1 || st.Channels != 2 {
		t.Errorf("stats websockets=%d pollings=%d channels=%d; want 2, 1, 2: %s", st.WebSockets, st.Pollings, st.Channels, r.Body)
	}
	publish(t, srv, []string{b}, command("test", "end", 1))
	awaitResponse(t, pending)
}

// PROTOCOL.md B10: clients cut envelopes out with a pattern that stops at
// line breaks, so a body holding raw CR, LF, U+2028 or U+2029 must still
// arrive as one line, meaning the same JSON.
func TestEnvelopeOneLine(t *testing.T) {
	srv := startP3(t, "", 1)
	id := newChannelID(t)
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+id)
	waitOnline(t, srv, id, true)
	body := "{\r\n  \"module_id\": \"test\",\n  \"command\": \"lines\",\n  \"params\": {\"s\": \"a\u2028b\u2029c\"}\n}\n"
	publish(t, srv, []string{id}, body)
	f := c.Next(t)
	env := parseEnvelopes(t, string(f.Data)) // fails on a raw line break
	var got, want any
	if err := json.Unmarshal(env[0].Text, &got); err != nil {
		t.Fatalf("envelope text is not JSON: %v: %s", err, env[0].Text)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("envelope text %s; want the JSON of %q", env[0].Text, body)
	}

	lp, _ := subQuery(srv, id, "mid=00000000000000000000000000")
	r := longPoll(t, lp)
	if r.Status != http.StatusOK {
		t.Fatalf("long poll from the start: status %d body %q", r.Status, r.Body)
	}
	parseEnvelopes(t, r.Body)
}
