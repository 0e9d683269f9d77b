package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Protocol 5 over long polling, raw: what the stock clients' long-polling
// connector gets (GET on the subscribe route with jsonRpc=true, answered
// with an array of incoming.message notifications, 304 with
// Last-Message-Id when the hold ends) and what it sends (POSTs to
// server.publish: mack:<mid> after each message, JSON-RPC batches from
// sendMessageBatch). docs/protocols.md, "Version 5".
func TestLongPollJSONRPC(t *testing.T) {
	for _, e := range engines45 {
		t.Run(e.name, func(t *testing.T) {
			srv := start45(t, e.store(t), map[string]any{"polling": map[string]any{"timeout": 1}})
			t.Run("token", func(t *testing.T) {
				p := newPair(t)
				base := srv.SubURL + "?token=" + jwtFor(key45, "", []string{p.priv + ":" + p.pub}, time.Now().Add(time.Hour)) + "&jsonRpc=true&revision=19"
				lpRPCResume(t, srv, base, []string{p.priv})
			})
			t.Run("CHANNEL_ID", func(t *testing.T) {
				p, shared := newPair(t), newChannelID(t)
				lp, _ := subQuery(srv, p.entry(key45)+"/"+signed(key45, shared), "jsonRpc=true")
				lpRPCResume(t, srv, lp, []string{shared, p.priv})
			})
			t.Run("client-posts", func(t *testing.T) { lpRPCPosts(t, srv) })
		})
	}
}

// lpNotifications reads a 200 of a JSON-RPC long poll: JSON, an array of
// incoming.message notifications (no ids: the clients answer nothing).
func lpNotifications(t *testing.T, r Response) []notification {
	t.Helper()
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("status %d headers %v body %q; want 200, application/json, any origin", r.Status, r.Header, r.Body)
	}
	var batch []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Body), &batch); err != nil || len(batch) == 0 {
		t.Fatalf("body %q is not a JSON array of notifications: %v", r.Body, err)
	}
	out := make([]notification, len(batch))
	for i, m := range batch {
		if string(m["jsonrpc"]) != `"2.0"` || string(m["method"]) != `"incoming.message"` || m["id"] != nil {
			t.Fatalf("element %d of %s is not an incoming.message notification", i, r.Body)
		}
		if err := json.Unmarshal(m["params"], &out[i]); err != nil || !validMID(out[i].MID) {
			t.Fatalf("element %d params %s: %v", i, m["params"], err)
		}
	}
	return out
}

// lp304 checks the end of a hold: 304, no body, the mid to resume from.
func lp304(t *testing.T, r Response, mid string) {
	t.Helper()
	if r.Status != http.StatusNotModified || r.Body != "" || r.Header.Get("Last-Message-Id") != mid || r.Header.Get("Expires") != expires1973 {
		t.Fatalf("status %d headers %v body %q; want 304 with Last-Message-Id %q and the 1973 Expires", r.Status, r.Header, r.Body, mid)
	}
	if r.Header.Get("Etag") != "" {
		t.Errorf("304 of a JSON-RPC poll carries Etag %q", r.Header.Get("Etag"))
	}
}

// lpRPCResume polls as the connector does: held, then a message; again
// with its mid: held to 304, the message not repeated; messages published
// between polls come in one array, in order, once; channels each get one.
func lpRPCResume(t *testing.T, srv *Server, base string, channels []string) {
	pending := startLongPoll(t, base)
	waitOnline(t, srv, channels[0], true)
	publish(t, srv, channels[:1], command("test", "held", 0))
	got := lpNotifications(t, awaitResponse(t, pending))
	if len(got) != 1 || got[0].Body.Command != "held" || got[0].Sender.Type != 2 {
		t.Fatalf("held poll got %+v; want the one message", got)
	}
	mid := got[0].MID
	lp304(t, longPoll(t, base+"&mid="+mid), mid)

	var want []string
	for i := 1; i <= 3; i++ {
		cmd := fmt.Sprintf("m%d", i)
		publish(t, srv, channels[(i-1)%len(channels):][:1], command("test", cmd, i))
		want = append(want, cmd)
	}
	got = lpNotifications(t, longPoll(t, base+"&mid="+mid))
	var cmds []string
	for i, n := range got {
		cmds = append(cmds, n.Body.Command)
		if i > 0 && n.MID <= got[i-1].MID {
			t.Errorf("mid %s after %s", n.MID, got[i-1].MID)
		}
	}
	if fmt.Sprint(cmds) != fmt.Sprint(want) {
		t.Fatalf("resumed poll got %v; want %v", cmds, want)
	}
	last := got[len(got)-1].MID
	lp304(t, longPoll(t, base+"&mid="+last), last)

	// A poll without a mid (a client's first) names the newest.
	lp304(t, longPoll(t, base), last)
}

// lpRPCPosts: the POSTs of a long-polling client to server.publish
// (/bitrix/pubweb/, with its CHANNEL_ID): acknowledgements and pong
// answered 200 with nothing; a JSON-RPC publish batch answered as on a
// WebSocket and delivered with the poster's public id as sender; a bad
// signature refused in the answer, nothing delivered.
func lpRPCPosts(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	post := srv.url("/bitrix/pubweb/") + "?CHANNEL_ID=" + a.entry(key45)
	for _, body := range []string{"mack:17961365130000000000000001", "pong"} {
		if r := request(t, http.MethodPost, post, body, nil); r.Status != http.StatusOK || r.Body != "" {
			t.Errorf("POST %q: status %d body %q; want 200, empty", body, r.Status, r.Body)
		}
	}
	lpB, _ := subQuery(srv, b.entry(key45), "jsonRpc=true")
	pending := startLongPoll(t, lpB)
	waitOnline(t, srv, b.priv, true)

	batch := func(sig string) string {
		return `[{"jsonrpc":"2.0","method":"publish","params":{"channelList":["` + b.pub + "." + sig +
			`"],"body":{"module_id":"chat","command":"typing","params":{"n":1}}},"id":1}]`
	}
	r := request(t, http.MethodPost, post, batch(strings.Repeat("00", 20)), nil)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"code":-32602`) {
		t.Errorf("publish with a bad signature: status %d body %q; want 200 with error -32602", r.Status, r.Body)
	}
	r = request(t, http.MethodPost, post, batch(b.publicSig(key45)), nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" || r.Body != `[{"jsonrpc":"2.0","id":1,"result":true}]` {
		t.Fatalf("publish: status %d %v body %q; want 200 with the result true", r.Status, r.Header, r.Body)
	}
	got := lpNotifications(t, awaitResponse(t, pending))
	if len(got) != 1 || got[0].Body.Command != "typing" || got[0].Sender.Type != 1 || got[0].Sender.ID != a.pub {
		t.Fatalf("B got %+v; want the one message from client %s", got, a.pub)
	}
}
