package e2e

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol/pb"
)

// The official SDK given a channel the server refuses gets 4010 and
// fetches a new config, then connects with it: a refused upgrade it would
// retry with the config it has.
func TestSDKWrongChannel(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, nil)
	p := newPair(t)
	c := startSDK(t, srv.SDKOptions(p.entry("not the key"), 4))
	c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	good := srv.SDKOptions(p.entry(key45), 4)
	b, _ := json.Marshal(good)
	c.Send("config " + string(b))
	// The client waits 5-35 s after a 4010 before it fetches the config.
	deadline := time.After(35*time.Second + waitTimeout)
	var got []SDKEvent
	for connected := false; !connected; {
		select {
		case e, ok := <-c.Events:
			if !ok {
				t.Fatalf("SDK client exited; events: %s", eventLines(got))
			}
			got = append(got, e)
			connected = e.Type == "request" && strings.Contains(e.URL, sign(key45, p.priv+":"+p.pub))
		case <-deadline:
			t.Fatalf("the SDK did not connect with its new config; events: %s", eventLines(got))
		}
	}
	waitOnline(t, srv, p.priv, true)
	publish(t, srv, []string{p.priv}, command("test", "after-4010", 1))
	events := c.WaitCommand(t, "after-4010")
	checkSDKMessage(t, events[len(events)-1], "after-4010", 1)
}

// The backend's protobuf publish is refused as the push server 2.x
// refuses it: 400 and "<code>: <text>", within limits.maxMessagesPerRequest
// and limits.maxChannelsPerRequest; a batch is served by its first
// Request.
func TestBackendProtobufRefusals(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, map[string]any{
		"limits": map[string]any{"maxMessagesPerRequest": 2, "maxChannelsPerRequest": 2},
	})
	a := newPair(t)
	c := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
	waitOnline(t, srv, a.priv, true)
	id, _ := hex.DecodeString(a.priv)
	rcv := &pb.Receiver{Id: id, IsPrivate: proto.Bool(true)}
	msg := func(body string, rs ...*pb.Receiver) *pb.IncomingMessage {
		return &pb.IncomingMessage{Receivers: rs, Body: proto.String(body)}
	}
	incoming := func(ms ...*pb.IncomingMessage) *pb.Request {
		return &pb.Request{Command: &pb.Request_IncomingMessages{IncomingMessages: &pb.IncomingMessagesRequest{Messages: ms}}}
	}
	stats := func(ids ...[]byte) *pb.Request {
		var cs []*pb.ChannelId
		for _, i := range ids {
			cs = append(cs, &pb.ChannelId{Id: i, IsPrivate: proto.Bool(true)})
		}
		return &pb.Request{Command: &pb.Request_ChannelStats{ChannelStats: &pb.ChannelStatsRequest{Channels: cs}}}
	}
	batch := func(reqs ...*pb.Request) []byte {
		b, _ := proto.Marshal(&pb.RequestBatch{Requests: reqs})
		return b
	}
	body := command("test", "refused", 0)
	for _, r := range []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte("\xff\xff garbage"), "4013: Wrong Request Data."},
		{"no request", batch(), "4013: Wrong Request Data."},
		{"no command", batch(&pb.Request{}), "4013: Wrong Request Data."},
		{"registration", []byte{0x0a, 0x02, 0x22, 0x00}, "4015: Wrong Request Command."},
		{"too many messages", batch(incoming(msg(body, rcv), msg(body, rcv), msg(body, rcv))), "4016: Request exceeded the maximum number of messages."},
		{"no receivers", batch(incoming(msg(body, rcv), msg(body))), "4017: No channels found."},
		{"too many receivers", batch(incoming(msg(body, rcv, rcv, rcv))), "4018: Request exceeded the maximum number of channels."},
		{"bad receiver id", batch(incoming(msg(body, &pb.Receiver{Id: []byte("short")}))), "4019: Request has an invalid channel id."},
		{"stats of nothing", batch(stats()), "4017: No channels found."},
		{"stats of too many", batch(stats(id, id, id)), "4018: Request exceeded the maximum number of channels."},
		{"stats of a bad id", batch(stats(id[:8])), "4019: Request has an invalid channel id."},
	} {
		got := postBinary(t, srv.PubURL+"?binaryMode=true", r.data)
		if got.Status != http.StatusBadRequest || got.Body != r.want || got.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("%s: %d %q (%s); want 400 %q", r.name, got.Status, got.Body, got.Header.Get("Content-Type"), r.want)
		}
	}

	// Two messages of two receivers each, then a second Request, which is
	// not served: only the first Request's messages arrive.
	first, second := command("test", "first", 1), command("test", "second", 2)
	r := postBinary(t, srv.PubURL+"?binaryMode=true", batch(incoming(msg(first, rcv, rcv), msg(second, rcv)), incoming(msg(command("test", "ignored", 3), rcv))))
	if r.Status != http.StatusOK || r.Body != "" {
		t.Fatalf("publish within the limits: %d %q; want 200 and no body", r.Status, r.Body)
	}
	got := nextOutgoing(t, c, 2)
	if got[0].msg.GetBody() != first || got[1].msg.GetBody() != second {
		t.Fatalf("got %q, %q; want the first request's two messages", got[0].msg.GetBody(), got[1].msg.GetBody())
	}
	// The next message is the next published: the second Request's never
	// came.
	publish(t, srv, []string{a.priv}, command("test", "next", 4))
	if m := nextOutgoing(t, c, 1)[0].msg; !strings.Contains(m.GetBody(), `"next"`) {
		t.Errorf("after the batch got %q; want the next message", m.GetBody())
	}
	// Two stats requests: the first is answered.
	r = postBinary(t, srv.PubURL+"?binaryMode=true", batch(stats(id), stats(id, id)))
	var rb pb.ResponseBatch
	if r.Status != http.StatusOK || proto.Unmarshal([]byte(r.Body), &rb) != nil || len(rb.GetResponses()) != 1 ||
		len(rb.GetResponses()[0].GetChannelStats().GetChannels()) != 1 {
		t.Errorf("two stats requests: %d %q; want the first answered", r.Status, r.Body)
	}
}

// A client's requests over WebSocket and the rest route are refused with
// the push server 2.x's codes and limits; a channelStats request is
// answered over the WebSocket (and the rest route) with the online status
// of each public channel asked.
func TestClientProtobufRequests(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, map[string]any{
		"limits": map[string]any{"maxMessagesPerRequest": 2, "maxChannelsPerRequest": 2},
	})
	a, b, off := newPair(t), newPair(t), newPair(t)
	cb := mustDialWS(t, binaryURL(srv, b.entry(key45), ""))
	waitOnline(t, srv, b.priv, true)
	body := `{"module_id":"m","command":"c","params":{}}`
	toB := publicReceiver(b.pub, b.publicSig(key45))
	msgs := func(n int, rs ...*pb.Receiver) []byte {
		var ms []*pb.IncomingMessage
		for range n {
			ms = append(ms, &pb.IncomingMessage{Receivers: rs, Body: proto.String(body)})
		}
		data, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
			IncomingMessages: &pb.IncomingMessagesRequest{Messages: ms}}}}})
		return data
	}
	stats := func(ps ...pair) []byte {
		var cs []*pb.ChannelId
		for _, p := range ps {
			r := publicReceiver(p.pub, p.publicSig(key45))
			cs = append(cs, &pb.ChannelId{Id: r.Id, Signature: r.Signature})
		}
		data, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_ChannelStats{
			ChannelStats: &pb.ChannelStatsRequest{Channels: cs}}}}})
		return data
	}
	serverStats, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_ServerStats{ServerStats: &pb.ServerStatsRequest{}}}}})
	for _, r := range []struct {
		name  string
		entry string // the sender's CHANNEL_ID
		data  []byte
		code  int
		text  string
	}{
		{"no public id", signed(key45, a.priv), msgs(1, toB), 4012, "Public Channel Id is Required."},
		{"server stats", a.entry(key45), serverStats, 4014, "Request command is not allowed."},
		{"too many messages", a.entry(key45), msgs(3, toB), 4016, "Request exceeded the maximum number of messages."},
		{"too many receivers", a.entry(key45), msgs(1, toB, toB, toB), 4018, "Request exceeded the maximum number of channels."},
		{"no receivers", a.entry(key45), msgs(1), 4017, "No channels found."},
		{"bad signature", a.entry(key45), msgs(1, publicReceiver(b.pub, b.publicSig("other"))), 4021, "Channel has an invalid signature."},
		{"stats of too many", a.entry(key45), stats(a, b, off), 4018, "Request exceeded the maximum number of channels."},
	} {
		t.Run(r.name, func(t *testing.T) {
			want := strconv.Itoa(r.code) + ": " + r.text
			c := mustDialWS(t, binaryURL(srv, r.entry, ""))
			c.sendBinary(t, r.data)
			closedWith(t, c, ws.StatusCode(r.code), want)
			got := postBinary(t, srv.url("/bitrix/rest/")+"?CHANNEL_ID="+r.entry, r.data)
			if got.Status != http.StatusBadRequest || got.Body != want {
				t.Errorf("rest: %d %q; want 400 %q", got.Status, got.Body, want)
			}
		})
	}

	// Two messages within the limits arrive.
	ca := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
	waitOnline(t, srv, a.priv, true)
	ca.sendBinary(t, msgs(2, toB, toB))
	if got := nextOutgoing(t, cb, 2); got[1].msg.GetBody() != body || hex.EncodeToString(got[1].msg.GetSender().GetId()) != a.pub {
		t.Errorf("got %v", got[1].msg)
	}

	// channelStats over the WebSocket: online for b's public channel (b
	// is connected), offline for one nobody uses, in the order asked.
	ca.sendBinary(t, stats(off, b))
	f := ca.Next(t)
	var rb pb.ResponseBatch
	if f.Op != ws.OpBinary || proto.Unmarshal(f.Data, &rb) != nil || len(rb.GetResponses()) != 1 {
		t.Fatalf("channelStats answer: %v %q", f.Op, f.Data)
	}
	checkPublicStats(t, rb.GetResponses()[0].GetChannelStats().GetChannels(), off, b)
	// The same over the rest route.
	r := postBinary(t, srv.url("/bitrix/rest/")+"?CHANNEL_ID="+a.entry(key45), stats(off, b))
	rb.Reset()
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/octet-stream" || proto.Unmarshal([]byte(r.Body), &rb) != nil || len(rb.GetResponses()) != 1 {
		t.Fatalf("rest channelStats: %d %q", r.Status, r.Body)
	}
	checkPublicStats(t, rb.GetResponses()[0].GetChannelStats().GetChannels(), off, b)
	// b leaves: its public channel goes offline.
	cb.Close()
	testutil.WaitFor(t, "b's public channel offline", func() bool {
		ca.sendBinary(t, stats(b))
		rb.Reset()
		f := ca.Next(t)
		// Answers queued together may come as one frame: the last counts.
		if proto.Unmarshal(f.Data, &rb) != nil || len(rb.GetResponses()) == 0 {
			return false
		}
		last := rb.GetResponses()[len(rb.GetResponses())-1].GetChannelStats().GetChannels()
		return len(last) == 1 && !last[0].GetIsOnline()
	})
}

func checkPublicStats(t *testing.T, got []*pb.ChannelStats, offline, online pair) {
	t.Helper()
	if len(got) != 2 || hex.EncodeToString(got[0].GetId()) != offline.pub || got[0].GetIsOnline() || got[0].GetIsPrivate() ||
		hex.EncodeToString(got[1].GetId()) != online.pub || !got[1].GetIsOnline() {
		t.Errorf("channelStats %v; want %s offline, %s online", got, offline.pub, online.pub)
	}
}

// limits.maxConnPerChannel: a connection naming a private channel with its
// public id, past the limit, closes the channel's oldest connection
// (WebSocket: 4029, long poll: 429), whatever kind it is; one without a
// public id only counts.
func TestMaxConnPerChannel(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, map[string]any{
		"limits": map[string]any{"maxConnPerChannel": 2},
	})
	p := newPair(t)
	// Each connection also names a channel of its own, online from when
	// the server counts the connection until it stops counting it.
	withOwn := func(entry string) (string, string) {
		own := newChannelID(t)
		return entry + "/" + signed(key45, own), own
	}
	dial := func(entry string) (*WSClient, string) {
		e, own := withOwn(entry)
		c := mustDialWS(t, binaryURL(srv, e, ""))
		waitOnline(t, srv, own, true)
		return c, own
	}
	oldest, _ := dial(p.entry(key45))
	e, own := withOwn(p.entry(key45))
	lpURL, _ := subQuery(srv, e, "binaryMode=true")
	lp := startLongPoll(t, lpURL)
	waitOnline(t, srv, own, true)
	bare, _ := dial(signed(key45, p.priv))    // no public id: evicts nothing
	second, secondOwn := dial(p.entry(key45)) // evicts the oldest
	closedWith(t, oldest, 4029, "4029: Too many connections")
	third, _ := dial(p.entry(key45)) // evicts the long poll
	r := awaitResponse(t, lp)
	if r.Status != http.StatusTooManyRequests || r.Body != "4029: Too many connections" {
		t.Errorf("evicted long poll: %d %q; want 429 %q", r.Status, r.Body, "4029: Too many connections")
	}
	body := command("test", "after-eviction", 1)
	publish(t, srv, []string{p.priv}, body)
	for name, c := range map[string]*WSClient{"without a public id": bare, "second": second, "third": third} {
		if m := nextOutgoing(t, c, 1)[0].msg; m.GetBody() != body {
			t.Errorf("%s got %q", name, m.GetBody())
		}
	}
	// A connection that left no longer counts: the next one evicts the
	// oldest of those left, bare.
	second.Close()
	waitOnline(t, srv, secondOwn, false)
	fourth, _ := dial(p.entry(key45))
	closedWith(t, bare, 4029, "4029: Too many connections")
	publish(t, srv, []string{p.priv}, command("test", "still", 2))
	for name, c := range map[string]*WSClient{"third": third, "fourth": fourth} {
		if m := nextOutgoing(t, c, 1)[0].msg; !strings.Contains(m.GetBody(), `"still"`) {
			t.Errorf("%s got %q", name, m.GetBody())
		}
	}
}

// A client message of up to websocket.maxFrameBytes (1 MiB, the original's
// maxPayload) is taken; one byte more closes the connection with 1009.
func TestClientMessageSize(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, map[string]any{
		"limits": map[string]any{"clientMessagesPerSecond": 0},
	})
	a, b := newPair(t), newPair(t)
	cb := mustDialWS(t, binaryURL(srv, b.entry(key45), ""))
	waitOnline(t, srv, b.priv, true)
	// sized is a client message of exactly n bytes.
	sized := func(n int) ([]byte, string) {
		for pad := n; pad > 0; {
			body := `{"module_id":"m","command":"big","params":{"s":"` + strings.Repeat("x", pad) + `"}}`
			data := clientBatch(body, publicReceiver(b.pub, b.publicSig(key45)))
			if len(data) == n {
				return data, body
			}
			pad -= len(data) - n
		}
		t.Fatalf("no body makes a %d-byte message", n)
		return nil, ""
	}
	ca := mustDialWS(t, binaryURL(srv, a.entry(key45), ""))
	data, body := sized(1 << 20)
	ca.sendBinary(t, data)
	if m := nextOutgoing(t, cb, 1)[0].msg; m.GetBody() != body {
		t.Fatalf("the 1 MiB message arrived as %d bytes", len(m.GetBody()))
	}
	// One byte more is refused from its header on: the client sends only
	// that (a socket closed with unread bytes is reset, which would lose
	// the close frame).
	h := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 1<<20 + 1}
	if err := ws.WriteHeader(ca.conn, h); err != nil {
		t.Fatal(err)
	}
	closedWith(t, ca, 1009, "frame exceeds the size limit")
}
