package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol/pb"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

const key45 = "e2e-v45-key"

// routes45 are the stock routes plus the client publish and JSON-RPC ones.
func routes45() map[string]any {
	r := map[string]any{}
	for k, v := range defaultRoutes {
		r[k] = v
	}
	r["rest"] = []any{"/bitrix/rest/", "/bitrix/pubweb/"}
	r["api"] = []any{"/bitrix/api/"}
	return r
}

// engineCase is one engine the protocol 4-5 tests run on.
type engineCase struct {
	name  string
	store func(t *testing.T) map[string]any
}

var engines45 = []engineCase{
	{"memory", func(*testing.T) map[string]any { return map[string]any{"type": "memory"} }},
	{"redis", func(t *testing.T) map[string]any {
		r := redistest.Start(t)
		return map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port}
	}},
}

// start45 starts a server with key45 and the given store and extra config.
func start45(t *testing.T, store map[string]any, extra map[string]any) *Server {
	t.Helper()
	cfg := map[string]any{
		"security": map[string]any{"key": key45},
		"storage":  store,
		"polling":  map[string]any{"timeout": 5},
		"servers":  []any{map[string]any{"name": "e2e", "routes": routes45()}},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return startServer(t, cfg)
}

func (s *Server) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.Ports[0]) + path
}

// pair is a user's private and public channel as the PHP module signs
// them for protocol 4: "<priv>:<pub>.<sig(priv:pub)>".
type pair struct{ priv, pub string }

func newPair(t *testing.T) pair { return pair{newChannelID(t), newChannelID(t)} }

func (p pair) entry(key string) string { return signed(key, p.priv+":"+p.pub) }

// publicSig is the signature of the public id, as publicChannels carry it.
func (p pair) publicSig(key string) string { return sign(key, "public:"+p.pub) }

func binaryURL(srv *Server, channelID, more string) string {
	_, u := subQuery(srv, channelID, "binaryMode=true"+more)
	return u
}

func (c *WSClient) sendBinary(t testing.TB, data []byte) {
	t.Helper()
	if err := wsutil.WriteClientBinary(c.conn, data); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// outgoingOf is one OutgoingMessage with the raw bytes it came in.
type outgoingOf struct {
	msg *pb.OutgoingMessage
	raw []byte
}

// nextOutgoing reads binary frames until n messages arrived.
func nextOutgoing(t *testing.T, c *WSClient, n int) []outgoingOf {
	t.Helper()
	var out []outgoingOf
	for len(out) < n {
		f := c.Next(t)
		if f.Op != ws.OpBinary {
			t.Fatalf("frame opcode %v; want binary: %q", f.Op, f.Data)
		}
		out = append(out, decodeOutgoing(t, f.Data)...)
	}
	return out
}

func decodeOutgoing(t *testing.T, data []byte) []outgoingOf {
	t.Helper()
	var batch pb.ResponseBatch
	if err := proto.Unmarshal(data, &batch); err != nil {
		t.Fatalf("frame is not a ResponseBatch: %v", err)
	}
	var out []outgoingOf
	for _, r := range batch.GetResponses() {
		om := r.GetOutgoingMessages()
		if om == nil {
			t.Fatalf("response without outgoingMessages: %v", r)
		}
		for _, m := range om.GetMessages() {
			raw, _ := proto.Marshal(m)
			out = append(out, outgoingOf{m, raw})
		}
	}
	return out
}

// createdWireType returns the wire type field 4 (created) came with.
func createdWireType(t *testing.T, raw []byte) protowire.Type {
	t.Helper()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			t.Fatal("bad tag")
		}
		raw = raw[n:]
		if num == 4 {
			return typ
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			t.Fatal("bad field")
		}
		raw = raw[m:]
	}
	t.Fatal("no created field")
	return 0
}

func midOf(m *pb.OutgoingMessage) string { return hex.EncodeToString(m.GetId()) }

// backendBatch is a RequestBatch as the PHP module sends it.
func backendBatch(body string, expiry uint32, channels ...string) []byte {
	var rcv []*pb.Receiver
	for _, c := range channels {
		id, _ := hex.DecodeString(c)
		rcv = append(rcv, &pb.Receiver{Id: id, IsPrivate: proto.Bool(true)})
	}
	b, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
			Receivers: rcv, Body: proto.String(body), Expiry: proto.Uint32(expiry), Type: proto.String("test_cmd"),
		}}},
	}}}})
	return b
}

// clientBatch is a RequestBatch as the SDK sends it: public receivers.
func clientBatch(body string, receivers ...*pb.Receiver) []byte {
	b, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
			Receivers: receivers, Body: proto.String(body), Expiry: proto.Uint32(0),
		}}},
	}}}})
	return b
}

func publicReceiver(id, sig string) *pb.Receiver {
	i, _ := hex.DecodeString(id)
	s, _ := hex.DecodeString(sig)
	return &pb.Receiver{Id: i, Signature: s}
}

func postBinary(t *testing.T, url string, body []byte) Response {
	t.Helper()
	resp, err := httpClient.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: buf.String()}
}

func TestProtocol4(t *testing.T) {
	for _, e := range engines45 {
		t.Run(e.name, func(t *testing.T) {
			srv := start45(t, e.store(t), nil)
			t.Run("receive-and-resume", func(t *testing.T) { binaryReceiveResume(t, srv) })
			t.Run("backend-publish", func(t *testing.T) { binaryBackendPublish(t, srv) })
			t.Run("expiry", func(t *testing.T) { binaryExpiry(t, srv) })
			t.Run("stats", func(t *testing.T) { binaryStats(t, srv) })
			t.Run("client-publish", func(t *testing.T) { binaryClientPublish(t, srv) })
			t.Run("client-refusals", func(t *testing.T) { binaryRefusals(t, srv) })
			t.Run("text-mode", func(t *testing.T) { v4TextMode(t, srv) })
			t.Run("long-polling", func(t *testing.T) { binaryLongPoll(t, srv) })
		})
	}
}

// Checklist 1-5: binary frames, the body byte for byte, created as
// fixed32, ids that resume, resume in order.
func binaryReceiveResume(t *testing.T, srv *Server) {
	p := newPair(t)
	c := mustDialWS(t, binaryURL(srv, p.entry(key45), ""))
	waitOnline(t, srv, p.priv, true)
	body := command("test", "one", 1)
	before := time.Now().Unix()
	publish(t, srv, []string{p.priv}, body)
	got := nextOutgoing(t, c, 1)[0]
	m := got.msg
	if m.GetBody() != body {
		t.Errorf("body %q; want %q", m.GetBody(), body)
	}
	if typ := createdWireType(t, got.raw); typ != protowire.Fixed32Type {
		t.Errorf("created wire type %v; want fixed32", typ)
	}
	if d := int64(m.GetCreated()) - before; d < -2 || d > 2 {
		t.Errorf("created %d; accepted at %d", m.GetCreated(), before)
	}
	if m.GetSender().GetType() != pb.SenderType_BACKEND {
		t.Errorf("sender %v; want BACKEND", m.GetSender())
	}
	mid := midOf(m)
	if !validMID(mid) {
		t.Fatalf("id hex-encodes to %q; want a 26-digit mid", mid)
	}
	// Messages published while the old connection closes are history
	// for the new one either way.
	c.Close()
	for i := 2; i <= 4; i++ {
		publish(t, srv, []string{p.priv}, command("test", "later", i))
	}
	c = mustDialWS(t, binaryURL(srv, p.entry(key45), "&mid="+mid))
	later := nextOutgoing(t, c, 3)
	for i, o := range later {
		var b struct{ Params struct{ N int } }
		_ = json.Unmarshal([]byte(o.msg.GetBody()), &b)
		if b.Params.N != i+2 {
			t.Errorf("resumed message %d has n=%d; want %d", i, b.Params.N, i+2)
		}
		if midOf(o.msg) <= mid {
			t.Errorf("resumed message %s is not after %s", midOf(o.msg), mid)
		}
	}
	// Nothing else is replayed: the next frame is the next live message.
	publish(t, srv, []string{p.priv}, command("test", "live", 5))
	if o := nextOutgoing(t, c, 1)[0]; !strings.Contains(o.msg.GetBody(), `"live"`) {
		t.Errorf("after the resumed messages got %q; want the live one", o.msg.GetBody())
	}
}

// Checklist 6 and B8.13: the backend's protobuf publish reaches binary
// and text subscribers of each receiver.
func binaryBackendPublish(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	ca := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
	_, textURL := subQuery(srv, b.entry(key45), "")
	cb := mustDialWS(t, textURL)
	waitOnline(t, srv, a.priv, true)
	waitOnline(t, srv, b.priv, true)
	body := command("test", "backend", 1)
	r := postBinary(t, srv.PubURL+"?binaryMode=true", backendBatch(body, 60, a.priv, b.priv))
	if r.Status != http.StatusOK || r.Body != "" {
		t.Fatalf("binary publish: %d %q; want 200 and no body", r.Status, r.Body)
	}
	m := nextOutgoing(t, ca, 1)[0].msg
	if m.GetBody() != body || m.GetSender().GetType() != pb.SenderType_BACKEND || m.GetExpiry() != 60 {
		t.Errorf("binary subscriber got %v", m)
	}
	env := cb.NextEnvelopes(t, 1)[0]
	if string(env.Text) != body || env.Channel != b.priv {
		t.Errorf("text subscriber got %+v", env)
	}
	if r := postBinary(t, srv.PubURL+"?binaryMode=true", []byte("\xff\xff garbage")); r.Status != http.StatusBadRequest || r.Body != "4013: Wrong Request Data." {
		t.Errorf("garbage binary publish: %d %q; want 400 and 4013", r.Status, r.Body)
	}
	if status, _, err := rawPublish(srv, "?binaryMode=true", string(backendBatch(sizedBody(1000001), 0, a.priv))); err != nil || status != http.StatusRequestEntityTooLarge {
		t.Errorf("binary publish over the cap: %d, %v; want 413", status, err)
	}
	two, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{
		{Command: &pb.Request_ServerStats{ServerStats: &pb.ServerStatsRequest{}}},
		{Command: &pb.Request_ServerStats{ServerStats: &pb.ServerStatsRequest{}}},
	}})
	// The first Request of a batch is served, as the push server 2.x does.
	if r := postBinary(t, srv.PubURL+"?binaryMode=true", two); r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("binary publish of two requests: %d %q; want the first answered", r.Status, r.Body)
	}
}

// Checklist 7: expiry=1 is gone for a client reconnecting once it passed.
func binaryExpiry(t *testing.T, srv *Server) {
	p := newPair(t)
	c := mustDialWS(t, binaryURL(srv, p.entry(key45), ""))
	waitOnline(t, srv, p.priv, true)
	publish(t, srv, []string{p.priv}, command("test", "first", 1))
	mid := midOf(nextOutgoing(t, c, 1)[0].msg)
	c.Close()
	if r := postBinary(t, srv.PubURL+"?binaryMode=true", backendBatch(command("test", "short", 2), 1, p.priv)); r.Status != http.StatusOK {
		t.Fatalf("publish: %d", r.Status)
	}
	publish(t, srv, []string{p.priv}, command("test", "kept", 3))
	// Reconnecting after the first message gets the short one until it
	// expires, then only the kept one.
	var o *pb.OutgoingMessage
	testutil.WaitFor(t, "the message with expiry 1 to expire", func() bool {
		c = mustDialWS(t, binaryURL(srv, p.entry(key45), "&mid="+mid))
		o = nextOutgoing(t, c, 1)[0].msg
		c.Close()
		return !strings.Contains(o.GetBody(), `"short"`)
	})
	if !strings.Contains(o.GetBody(), `"kept"`) {
		t.Errorf("after reconnecting got %q; want only the unexpired message", o.GetBody())
	}
}

// Checklist 8 and 9.
func binaryStats(t *testing.T, srv *Server) {
	on, off := newPair(t), newPair(t)
	mustDialWS(t, binaryURL(srv, on.entry(key45), ""))
	waitOnline(t, srv, on.priv, true)
	var ids []*pb.ChannelId
	for _, c := range []string{off.priv, on.priv} {
		id, _ := hex.DecodeString(c)
		ids = append(ids, &pb.ChannelId{Id: id, IsPrivate: proto.Bool(true)})
	}
	req, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_ChannelStats{
		ChannelStats: &pb.ChannelStatsRequest{Channels: ids}}}}})
	r := postBinary(t, srv.PubURL+"?binaryMode=true", req)
	var batch pb.ResponseBatch
	if r.Status != http.StatusOK || proto.Unmarshal([]byte(r.Body), &batch) != nil || len(batch.GetResponses()) != 1 {
		t.Fatalf("channelStats: %d %q", r.Status, r.Body)
	}
	stats := batch.GetResponses()[0].GetChannelStats().GetChannels()
	if len(stats) != 2 || hex.EncodeToString(stats[0].GetId()) != off.priv || stats[0].GetIsOnline() ||
		hex.EncodeToString(stats[1].GetId()) != on.priv || !stats[1].GetIsOnline() {
		t.Errorf("channelStats %v; want %s offline, %s online", stats, off.priv, on.priv)
	}

	req, _ = proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_ServerStats{ServerStats: &pb.ServerStatsRequest{}}}}})
	r = postBinary(t, srv.PubURL+"?binaryMode=true", req)
	batch.Reset()
	if r.Status != http.StatusOK || proto.Unmarshal([]byte(r.Body), &batch) != nil || len(batch.GetResponses()) != 1 {
		t.Fatalf("serverStats: %d %q", r.Status, r.Body)
	}
	var st []map[string]any
	if err := json.Unmarshal([]byte(batch.GetResponses()[0].GetServerStats().GetJson()), &st); err != nil || len(st) == 0 {
		t.Errorf("serverStats json %q: %v", batch.GetResponses()[0].GetServerStats().GetJson(), err)
	}
}

// Checklist 11: a client publish to public ids reaches each of them,
// the sender included, marked as a client's with the sender's public id.
func binaryClientPublish(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	ca := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
	cb := mustDialWS(t, binaryURL(srv, b.entry(key45), ""))
	waitOnline(t, srv, a.priv, true)
	waitOnline(t, srv, b.priv, true)
	body := `{"module_id":"chat","command":"typing","params":{"x":1}}`
	ca.sendBinary(t, clientBatch(body, publicReceiver(b.pub, b.publicSig(key45)), publicReceiver(a.pub, a.publicSig(key45))))
	for name, c := range map[string]*WSClient{"receiver": cb, "sender": ca} {
		m := nextOutgoing(t, c, 1)[0].msg
		if m.GetBody() != body || m.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(m.GetSender().GetId()) != a.pub {
			t.Errorf("%s got %v; want the body from CLIENT %s", name, m, a.pub)
		}
	}
	// The same over HTTP, on both client publish routes.
	for _, route := range []string{"/bitrix/rest/", "/bitrix/pubweb/"} {
		r := postBinary(t, srv.url(route)+"?CHANNEL_ID="+a.entry(key45), clientBatch(body, publicReceiver(b.pub, b.publicSig(key45))))
		if r.Status != http.StatusOK {
			t.Fatalf("POST %s: %d %q", route, r.Status, r.Body)
		}
		if m := nextOutgoing(t, cb, 1)[0].msg; hex.EncodeToString(m.GetSender().GetId()) != a.pub {
			t.Errorf("HTTP client publish sender %v; want %s", m.GetSender(), a.pub)
		}
	}
	r := postBinary(t, srv.url("/bitrix/rest/")+"?CHANNEL_ID="+a.entry(key45), clientBatch(body, publicReceiver(b.pub, strings.Repeat("00", 20))))
	if r.Status != http.StatusBadRequest || r.Body != "4021: Channel has an invalid signature." {
		t.Errorf("HTTP client publish with a bad signature: %d %q; want 400 and 4021", r.Status, r.Body)
	}
}

// Checklist 12: refused client frames close with the push server's codes.
func binaryRefusals(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	privID, _ := hex.DecodeString(b.priv)
	body := `{"module_id":"m","command":"c","params":{}}`
	for _, c := range []struct {
		name string
		data []byte
		code ws.StatusCode
	}{
		{"private", clientBatch(body, &pb.Receiver{Id: privID, IsPrivate: proto.Bool(true)}), 4020},
		{"bad signature", clientBatch(body, publicReceiver(b.pub, b.publicSig("other key"))), 4021},
		{"no receivers", clientBatch(body), 4017},
		{"garbage", []byte("\x0a\xff\xff\xff\xff\xff"), 4013},
		{"not JSON", clientBatch("nope", publicReceiver(b.pub, b.publicSig(key45))), 4013},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
			conn.sendBinary(t, c.data)
			for range conn.Frames {
			}
			if got := conn.CloseCode(); got != c.code {
				t.Errorf("close code %d; want %d", got, c.code)
			}
		})
	}
	// The server carries on.
	conn := mustDialWS(t, binaryURL(srv, b.entry(key45), ""))
	waitOnline(t, srv, b.priv, true)
	publish(t, srv, []string{b.priv}, body)
	nextOutgoing(t, conn, 1)
}

// Checklist 13: without binaryMode a protocol-4 client gets text frames,
// also for what is published to its public id.
func v4TextMode(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	_, u := subQuery(srv, a.entry(key45), "")
	c := mustDialWS(t, u)
	waitOnline(t, srv, a.priv, true)
	publish(t, srv, []string{a.priv}, command("test", "text", 1))
	if e := c.NextEnvelopes(t, 1)[0]; e.Channel != a.priv {
		t.Errorf("envelope %+v", e)
	}
	sender := mustDialWS(t, binaryURL(srv, b.entry(key45), ""))
	waitOnline(t, srv, b.priv, true)
	sender.sendBinary(t, clientBatch(`{"module_id":"m","command":"to-public","params":{}}`, publicReceiver(a.pub, a.publicSig(key45))))
	if e := c.NextEnvelopes(t, 1)[0]; !strings.Contains(string(e.Text), "to-public") {
		t.Errorf("envelope %+v; want the client's message", e)
	}
}

// Binary long polling answers protobuf bodies.
func binaryLongPoll(t *testing.T, srv *Server) {
	p := newPair(t)
	lp, _ := subQuery(srv, p.entry(key45), "binaryMode=true")
	ch := startLongPoll(t, lp)
	waitOnline(t, srv, p.priv, true)
	body := command("test", "lp", 1)
	publish(t, srv, []string{p.priv}, body)
	r := awaitResponse(t, ch)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("binary long poll: %d %v", r.Status, r.Header)
	}
	got := decodeOutgoing(t, []byte(r.Body))
	if len(got) != 1 || got[0].msg.GetBody() != body {
		t.Fatalf("binary long poll got %v", got)
	}
	publish(t, srv, []string{p.priv}, command("test", "lp", 2))
	r = longPoll(t, lp+"&mid="+midOf(got[0].msg))
	if got := decodeOutgoing(t, []byte(r.Body)); r.Status != http.StatusOK || len(got) != 1 || !strings.Contains(got[0].msg.GetBody(), `"n":2`) {
		t.Fatalf("resumed binary long poll: %d %v", r.Status, got)
	}
}

// Checklist 10 and 24: the shared mode.
func TestSharedMode(t *testing.T) {
	tagged := engineCase{"redis cluster, installation tags", func(t *testing.T) map[string]any {
		seeds := redistest.StartCluster(t, 3, 0).Seeds()
		return map[string]any{"type": "redis", "addrs": seeds, "cluster": true, "tags": "installation"}
	}}
	for _, e := range append(engines45, tagged) {
		t.Run(e.name, func(t *testing.T) {
			keys := map[string]any{"client-one": "key-one", "client-two": "key-two"}
			srv := start45(t, e.store(t), map[string]any{"security": map[string]any{"clients": keys}})
			p := newPair(t)
			if _, err := dialWS(t, binaryURL(srv, p.entry("key-one"), "")); err == nil {
				t.Fatal("connection without clientId accepted")
			}
			if _, err := dialWS(t, binaryURL(srv, p.entry("key-one"), "&clientId=unknown")); err == nil {
				t.Fatal("connection with an unknown clientId accepted")
			}
			// Signed with another client's key: a wrong channel.
			wrongChannel(t, binaryURL(srv, p.entry("key-two"), "&clientId=client-one"))
			one := mustDialWS(t, binaryURL(srv, p.entry("key-one"), "&clientId=client-one"))
			two := mustDialWS(t, binaryURL(srv, p.entry("key-two"), "&clientId=client-two"))
			waitOnlineAs(t, srv, "client-one", p.priv)
			waitOnlineAs(t, srv, "client-two", p.priv)

			body := command("test", "shared", 1)
			batch := backendBatch(body, 0, p.priv)
			base := srv.PubURL + "?binaryMode=true&clientId=client-one"
			if r := postBinary(t, base, batch); r.Status != http.StatusForbidden {
				t.Errorf("unsigned shared publish: %d; want 403", r.Status)
			}
			if r := postBinary(t, base+"&signature="+hex.EncodeToString(make([]byte, 20)), batch); r.Status != http.StatusForbidden {
				t.Errorf("badly signed shared publish: %d; want 403", r.Status)
			}
			if r := postBinary(t, base+"&signature="+signBytes("key-two", batch), batch); r.Status != http.StatusForbidden {
				t.Errorf("shared publish signed with another client's key: %d; want 403", r.Status)
			}
			if r := postBinary(t, base+"&signature="+signBytes("key-one", batch), batch); r.Status != http.StatusOK {
				t.Fatalf("signed shared publish: %d %q; want 200", r.Status, r.Body)
			}
			if m := nextOutgoing(t, one, 1)[0].msg; m.GetBody() != body {
				t.Errorf("client-one got %q", m.GetBody())
			}
			// client-two's channel of the same id got nothing: its next
			// message is its own.
			body2 := command("test", "two", 2)
			batch2 := backendBatch(body2, 0, p.priv)
			if r := postBinary(t, srv.PubURL+"?binaryMode=true&clientId=client-two&signature="+signBytes("key-two", batch2), batch2); r.Status != http.StatusOK {
				t.Fatalf("client-two publish: %d", r.Status)
			}
			if m := nextOutgoing(t, two, 1)[0].msg; m.GetBody() != body2 {
				t.Errorf("client-two got %q; want only its own message", m.GetBody())
			}

			// Tokens are checked with the client's key.
			tok := func(key string) string {
				return rpcURL(srv, jwtFor(key, "3", []string{p.priv}, time.Now().Add(time.Hour))) + "&clientId=client-one"
			}
			if _, err := dialWS(t, tok("key-two")); err == nil {
				t.Error("token signed with another client's key accepted")
			}
			mustDialWS(t, tok("key-one"))

			// The SDK in the shared mode sends its clientId.
			q := newPair(t)
			opts := srv.SDKOptions(q.entry("key-one"), 4)
			opts.Extra = map[string]any{"mode": "shared", "clientId": "client-one"}
			sdk := startSDK(t, opts)
			events := sdk.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
			if u := events[len(events)-1].URL; !strings.Contains(u, "clientId=client-one") {
				t.Errorf("SDK URL %s; want clientId", u)
			}
			waitOnlineAs(t, srv, "client-one", q.priv)
			body3 := command("test", "sdk-shared", 3)
			batch3 := backendBatch(body3, 0, q.priv)
			if r := postBinary(t, srv.PubURL+"?binaryMode=true&clientId=client-one&signature="+signBytes("key-one", batch3), batch3); r.Status != http.StatusOK {
				t.Fatalf("publish to the SDK: %d", r.Status)
			}
			events = sdk.WaitCommand(t, "sdk-shared")
			checkSDKMessage(t, events[len(events)-1], "sdk-shared", 3)
		})
	}
}

func signBytes(key string, b []byte) string { return sign(key, string(b)) }

// waitOnlineAs is waitOnline for a channel of a shared-mode client.
func waitOnlineAs(t *testing.T, srv *Server, clientID, channel string) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("channel %s of %s online", channel, clientID), func() bool {
		r := request(t, http.MethodGet, srv.PubURL+"?clientId="+clientID+"&CHANNEL_ID="+channel, "", nil)
		return strings.Contains(r.Body, channel)
	})
}

// A client may publish limits.clientMessagesPerSecond messages a second
// with bursts of limits.clientBurst: a request past the burst is answered
// 429 with Retry-After, and one within it goes through.
func TestClientPublishRate(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, map[string]any{
		"limits": map[string]any{"clientMessagesPerSecond": 1, "clientBurst": 3},
	})
	a, b := newPair(t), newPair(t)
	msg := &pb.IncomingMessage{Receivers: []*pb.Receiver{publicReceiver(b.pub, b.publicSig(key45))},
		Body: proto.String(`{"module_id":"chat","command":"x","params":{}}`), Expiry: proto.Uint32(0)}
	four, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{msg, msg, msg, msg}},
	}}}})
	url := srv.url("/bitrix/rest/") + "?CHANNEL_ID=" + a.entry(key45)
	if r := postBinary(t, url, four); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "per second") {
		t.Fatalf("four messages with a burst of three: %d %v %q; want 429 with Retry-After and the rate", r.Status, r.Header, r.Body)
	}
	if r := postBinary(t, url, clientBatch(`{"module_id":"chat","command":"y","params":{}}`, publicReceiver(b.pub, b.publicSig(key45)))); r.Status != http.StatusOK {
		t.Fatalf("one message: %d %q; want 200", r.Status, r.Body)
	}
}
