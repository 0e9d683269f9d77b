package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// routeFixture is a Server without listeners whose routes are called
// directly; polls are held for hold.
type routeFixture struct {
	t      testing.TB
	s      *Server
	engine *engine.Local
}

func newRouteFixture(t testing.TB, hold time.Duration) *routeFixture {
	t.Helper()
	cfg := config.Default()
	cfg.Polling.Timeout = hold.Seconds()
	h := hub.New()
	e := engine.NewLocal(store.NewMemory(store.DefaultTTLs, nil), h, noCounters{}, "test")
	s, err := New(cfg, e, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &routeFixture{t: t, s: s, engine: e}
}

func (f *routeFixture) publish(body string, channels ...string) *protocol.Message {
	f.t.Helper()
	m := &protocol.Message{Channels: channels, Body: []byte(body)}
	if err := f.engine.Publish(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

// get serves one subscribe request.
func (f *routeFixture) get(query string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/bitrix/sub/?"+query, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.s.subscribe(w, r)
	return w
}

// post serves one POST to the rest route.
func (f *routeFixture) post(query, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/bitrix/pubweb/?"+query, strings.NewReader(body))
	w := httptest.NewRecorder()
	f.s.restRoute(w, r)
	return w
}

// A version 1-2 client whose first poll names no position continues from
// the Etag and Last-Modified of the answer, as nginx-push-stream-module
// set them: exactly after the last message it got, nothing repeated.
// The answer stays a version 3 answer (envelopes), and browsers are told
// not to store it.
func TestFirstPollPosition(t *testing.T) {
	f := newRouteFixture(t, time.Hour)
	f.publish(`{"n":1}`, chA)
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- f.get("CHANNEL_ID="+chA, nil) }()
	testutil.WaitFor(t, "the first poll to subscribe", func() bool { return f.s.hub.Count(chA) != 0 })
	second := f.publish(`{"n":2}`, chA)
	w := <-done
	if want := string(format.Text.AppendMessage(nil, second, chA)); w.Code != http.StatusOK || w.Body.String() != want {
		t.Fatalf("first poll: status %d body %q; want the version 3 envelope of message 2: %q", w.Code, w.Body, want)
	}
	checkPositionHeaders(t, "first poll", w, second.MID, second.HTTPTime())
	if got := w.Header().Get("Access-Control-Expose-Headers"); got != LegacyExposeHeaders {
		t.Errorf("Access-Control-Expose-Headers %q; want %q", got, LegacyExposeHeaders)
	}

	// The client sends back what it was given and gets only what came
	// after.
	third := f.publish(`{"n":3}`, chA)
	back := map[string]string{"If-None-Match": w.Header().Get("Etag"), "If-Modified-Since": w.Header().Get("Last-Modified")}
	w = f.get("CHANNEL_ID="+chA, back)
	if want := string(format.PushStream.AppendMessage(nil, third, chA)); w.Code != http.StatusOK || w.Body.String() != want {
		t.Fatalf("poll from the first answer's headers: status %d body %q; want message 3 alone: %q", w.Code, w.Body, want)
	}
	checkPositionHeaders(t, "continued poll", w, third.MID, third.HTTPTime())
}

// The 304 that ends the hold of a first poll: Etag the newest mid, the one
// Last-Message-Id offers, Last-Modified the second the poll arrived; on an
// empty channel only Last-Modified, from which a client gets what is
// published later.
func TestFirstPollNotModified(t *testing.T) {
	f := newRouteFixture(t, 10*time.Millisecond)
	arrived := time.Now().UTC().Truncate(time.Second)
	w := f.get("CHANNEL_ID="+chB, nil)
	if w.Code != http.StatusNotModified {
		t.Fatalf("empty channel: status %d; want 304", w.Code)
	}
	if _, ok := w.Header()["Etag"]; ok || w.Header().Get("Last-Message-Id") != "" || w.Header().Get("Expires") != ExpiresNever {
		t.Errorf("empty channel: headers %v; want no Etag, an empty Last-Message-Id and the 1973 Expires", w.Header())
	}
	if w.Header().Get("Cache-Control") != noStore {
		t.Errorf("304 Cache-Control %q; want %q", w.Header().Get("Cache-Control"), noStore)
	}
	lm, err := http.ParseTime(w.Header().Get("Last-Modified"))
	if err != nil || lm.Before(arrived) || lm.After(time.Now()) {
		t.Errorf("empty channel: Last-Modified %q; want the second the poll arrived", w.Header().Get("Last-Modified"))
	}

	later := f.publish(`{"n":1}`, chB)
	w2 := f.get("CHANNEL_ID="+chB, map[string]string{"If-Modified-Since": w.Header().Get("Last-Modified")})
	if want := string(format.PushStream.AppendMessage(nil, later, chB)); w2.Code != http.StatusOK || w2.Body.String() != want {
		t.Errorf("poll from the 304's Last-Modified: status %d body %q; want the later message", w2.Code, w2.Body)
	}

	f.publish(`{"n":2}`, chA) // another channel's: not the newest of chB
	w = f.get("CHANNEL_ID="+chB, nil)
	if w.Code != http.StatusNotModified || w.Header().Get("Etag") != later.MID || w.Header().Get("Last-Message-Id") != later.MID {
		t.Errorf("304 after the hold: status %d headers %v; want Etag and Last-Message-Id %s", w.Code, w.Header(), later.MID)
	}
}

// Requests that name a position, or ask for another mode, get no Etag: no
// version 1-2 client sends them, and Etag is of no use to the others.
func TestNoEtagForLaterClients(t *testing.T) {
	f := newRouteFixture(t, 10*time.Millisecond)
	f.publish(`{"module_id":"m","command":"c","params":{}}`, chA)
	before := protocol.FormatMID(1, 0)
	for _, q := range []string{"mid=" + before, "mid=" + before + "&format=json", "mid=" + before + "&binaryMode=true", "mid=" + before + "&jsonRpc=true",
		"format=json", "binaryMode=true", "jsonRpc=true"} {
		w := f.get("CHANNEL_ID="+chA+"&"+q, nil)
		if w.Code != http.StatusOK && w.Code != http.StatusNotModified {
			t.Errorf("%s: status %d body %q; want 200 or 304", q, w.Code, w.Body)
			continue
		}
		for _, h := range []string{"Etag", "Last-Modified"} {
			if _, ok := w.Header()[h]; ok {
				t.Errorf("%s: answer carries %s %q", q, h, w.Header().Get(h))
			}
		}
	}
}

func checkPositionHeaders(t *testing.T, what string, w *httptest.ResponseRecorder, etag, lastModified string) {
	t.Helper()
	if w.Header().Get("Etag") != etag || w.Header().Get("Last-Modified") != lastModified {
		t.Errorf("%s: Etag %q Last-Modified %q; want %q %q", what, w.Header().Get("Etag"), w.Header().Get("Last-Modified"), etag, lastModified)
	}
	if w.Header().Get("Cache-Control") != noStore {
		t.Errorf("%s: Cache-Control %q; want %q", what, w.Header().Get("Cache-Control"), noStore)
	}
}

// A protocol-5 long poll is answered in JSON-RPC: every message due as
// one array of incoming.message notifications; a poll with the last mid
// is held and ends in 304 with that mid, the message not repeated.
func TestJSONRPCLongPoll(t *testing.T) {
	f := newRouteFixture(t, 10*time.Millisecond)
	a := f.publish(`{"module_id":"m","command":"a","params":{}}`, chA)
	b := f.publish(`{"module_id":"m","command":"b","params":{}}`, chB)
	w := f.get("CHANNEL_ID="+chA+"/"+chB+"&jsonRpc=true&revision=19&mid="+protocol.FormatMID(1, 0), nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d Content-Type %q; want 200 application/json", w.Code, w.Header().Get("Content-Type"))
	}
	want := string(format.JSONRPC.AppendBody(nil, []format.Delivery{{Msg: a, Channel: chA}, {Msg: b, Channel: chB}}))
	if w.Body.String() != want {
		t.Fatalf("body %s; want %s", w.Body, want)
	}
	var batch []struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		ID      json.RawMessage `json:"id"`
		Params  struct {
			MID  string          `json:"mid"`
			Body json.RawMessage `json:"body"`
		} `json:"params"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &batch); err != nil || len(batch) != 2 {
		t.Fatalf("body %s is not an array of two notifications: %v", w.Body, err)
	}
	for i, m := range []*protocol.Message{a, b} {
		n := batch[i]
		if n.JSONRPC != "2.0" || n.Method != "incoming.message" || n.ID != nil || n.Params.MID != m.MID || string(n.Params.Body) != string(m.Body) {
			t.Errorf("element %d: %+v; want the notification of %s", i, n, m.MID)
		}
	}

	w = f.get("CHANNEL_ID="+chA+"/"+chB+"&jsonRpc=true&revision=19&mid="+b.MID, nil)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("Last-Message-Id") != b.MID || w.Header().Get("Expires") != ExpiresNever {
		t.Errorf("poll with the last mid: status %d headers %v body %q; want 304 with Last-Message-Id %s", w.Code, w.Header(), w.Body, b.MID)
	}
}

// What a protocol-5 long-polling client POSTs to the rest route
// (server.publish): mack:<mid> and pong need nothing; JSON-RPC requests
// are answered as on a WebSocket, a publish reaching the public channel
// with the poster's public id as sender.
func TestRestRouteJSONRPC(t *testing.T) {
	f := newRouteFixture(t, 10*time.Millisecond)
	const pub = "00112233445566778899aabbccddeeff"
	query := "CHANNEL_ID=" + chA + ":" + pub
	for _, body := range []string{"mack:" + protocol.FormatMID(1700000000, 1), "pong"} {
		if w := f.post(query, body); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("%q: status %d body %q; want 200, empty", body, w.Code, w.Body)
		}
	}

	// JSON-RPC on no channel is refused, as the long-polling connector
	// always names its channels.
	for _, q := range []string{"", "CHANNEL_ID=nonsense"} {
		if w := f.post(q, `{"jsonrpc":"2.0","method":"ping","params":{},"id":1}`); w.Code != http.StatusBadRequest {
			t.Errorf("JSON-RPC with %q: status %d body %q; want 400", q, w.Code, w.Body)
		}
	}

	batch := `[{"jsonrpc":"2.0","method":"publish","params":{"channelList":["` + chB + `"],"body":{"module_id":"chat","command":"typing","params":{}}},"id":1},` +
		`{"jsonrpc":"2.0","method":"ping","params":{},"id":2},` +
		`{"jsonrpc":"2.0","method":"listChannels","params":{},"id":3},` +
		`{"jsonrpc":"2.0","method":"subscribeStatusChange","params":{"userId":5},"id":4},` +
		`{"jsonrpc":"2.0","method":"publish","params":{"userList":[5],"body":{}},"id":5}]`
	w := f.post(query, batch)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("batch: status %d Content-Type %q body %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var answers []struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &answers); err != nil || len(answers) != 5 {
		t.Fatalf("batch answer %q; want five answers", w.Body)
	}
	want := []string{`true`, `"pong"`, `{"channels":["` + chA + `"]}`, "-32000", "-32602"}
	for i, a := range answers {
		got := string(a.Result)
		if a.Error != nil {
			got = strconv.Itoa(a.Error.Code)
		}
		if a.ID != i+1 || got != want[i] {
			t.Errorf("answer %d: id %d %s; want id %d %s", i, a.ID, got, i+1, want[i])
		}
	}
	stored, err := f.engine.Since(context.Background(), []string{chB}, "")
	if err != nil || len(stored) != 1 || stored[0].Sender.Type != protocol.SenderClient || stored[0].Sender.ID != pub {
		t.Fatalf("published %+v, %v; want one message from client %s", stored, err, pub)
	}

	// A protocol-4 body still goes the protobuf way.
	if w := f.post(query, "garbage"); w.Code != http.StatusBadRequest {
		t.Errorf("garbage: status %d; want 400", w.Code)
	}
}
