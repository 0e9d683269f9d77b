package server

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// clientTestLimits are small limits, so that tests and the fuzzer reach
// them.
var clientTestLimits = requestLimits{messages: 3, channels: 2}

// FuzzClientMessages feeds a client's protobuf frame to the checks every
// client request passes: a refusal of the push server's, or messages that
// are safe to deliver, or channels whose status may be told.
func FuzzClientMessages(f *testing.F) {
	tn := fuzzTenant(f)
	f.Add(batchOf(&pb.Request{Command: &pb.Request_IncomingMessages{IncomingMessages: &pb.IncomingMessagesRequest{
		Messages: []*pb.IncomingMessage{signedMessage(tn, `{"module_id":"m"}`)}}}}))
	f.Add(batchOf(&pb.Request{Command: &pb.Request_ChannelStats{ChannelStats: &pb.ChannelStatsRequest{
		Channels: []*pb.ChannelId{signedChannel(tn)}}}}))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x02, 0x22, 0x00})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, bad := parseClientRequest(tn, fuzzPub, data, clientTestLimits)
		if bad != 0 {
			if req != nil || bad.reason() == "" {
				t.Fatalf("refusal %d with %+v", bad, req)
			}
			return
		}
		if req.stats {
			if len(req.asked) == 0 || len(req.asked) > clientTestLimits.channels || len(req.asked) != len(req.askedIDs) || req.msgs != nil {
				t.Fatalf("channelStats %+v", req)
			}
			for _, c := range req.askedIDs {
				if c != tn.ch(fuzzPub) {
					t.Fatalf("status of %q, which is not signed", c)
				}
			}
			return
		}
		if len(req.msgs) > clientTestLimits.messages {
			t.Fatalf("%d messages accepted", len(req.msgs))
		}
		for _, m := range req.msgs {
			if len(m.Channels) == 0 || !json.Valid(m.Body) || !protocol.IsJSONObject(m.Body) || m.Sender != (protocol.Sender{Type: protocol.SenderClient, ID: fuzzPub}) {
				t.Fatalf("accepted %+v", m)
			}
			for _, c := range m.Channels {
				if c != tn.ch(fuzzPub) {
					t.Fatalf("delivered to %q, which is not signed", c)
				}
			}
		}
	})
}

func batchOf(reqs ...*pb.Request) []byte {
	b, _ := proto.Marshal(&pb.RequestBatch{Requests: reqs})
	return b
}

func messages(ms ...*pb.IncomingMessage) *pb.Request {
	return &pb.Request{Command: &pb.Request_IncomingMessages{IncomingMessages: &pb.IncomingMessagesRequest{Messages: ms}}}
}

func signedReceiver(tn *tenant) *pb.Receiver {
	id, _ := hex.DecodeString(fuzzPub)
	sig, _ := hex.DecodeString(tn.signer.Sign("public:" + fuzzPub))
	return &pb.Receiver{Id: id, Signature: sig}
}

func signedMessage(tn *tenant, body string, receivers ...*pb.Receiver) *pb.IncomingMessage {
	if receivers == nil {
		receivers = []*pb.Receiver{signedReceiver(tn)}
	}
	return &pb.IncomingMessage{Receivers: receivers, Body: proto.String(body)}
}

func signedChannel(tn *tenant) *pb.ChannelId {
	r := signedReceiver(tn)
	return &pb.ChannelId{Id: r.Id, Signature: r.Signature}
}

// Client requests are refused with the push server 2.x's codes, in its
// order of checks, and within the configured limits.
func TestClientRequestRefusals(t *testing.T) {
	tn := fuzzTenant(t)
	body := `{"module_id":"m","command":"c","params":{}}`
	good := signedMessage(tn, body)
	priv := signedReceiver(tn)
	priv.IsPrivate = proto.Bool(true)
	badSig := signedReceiver(tn)
	badSig.Signature = make([]byte, 20)
	registration := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), nil)
	stats := func(cs ...*pb.ChannelId) *pb.Request {
		return &pb.Request{Command: &pb.Request_ChannelStats{ChannelStats: &pb.ChannelStatsRequest{Channels: cs}}}
	}
	privChannel := signedChannel(tn)
	privChannel.IsPrivate = proto.Bool(true)
	for _, c := range []struct {
		name   string
		sender string
		data   []byte
		want   refusal
	}{
		{"no sender", "", batchOf(messages(good)), protocol.ClosePublicRequired},
		{"garbage", fuzzPub, []byte("\x0a\xff\xff"), protocol.CloseUnparseable},
		{"no request", fuzzPub, batchOf(), protocol.CloseUnparseable},
		{"no command", fuzzPub, batchOf(&pb.Request{}), protocol.CloseUnparseable},
		{"server stats", fuzzPub, batchOf(&pb.Request{Command: &pb.Request_ServerStats{ServerStats: &pb.ServerStatsRequest{}}}), protocol.CloseNotAllowed},
		{"registration", fuzzPub, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), registration), protocol.CloseNotAllowed},
		{"too many messages", fuzzPub, batchOf(messages(good, good, good, good)), protocol.CloseTooManyMessages},
		{"no receivers", fuzzPub, batchOf(messages(good, &pb.IncomingMessage{Body: proto.String(body)})), protocol.CloseNoReceivers},
		{"too many receivers", fuzzPub, batchOf(messages(signedMessage(tn, body, good.Receivers[0], good.Receivers[0], good.Receivers[0]))), protocol.CloseTooManyChannels},
		{"private receiver", fuzzPub, batchOf(messages(signedMessage(tn, body, priv))), protocol.ClosePrivate},
		{"bad signature", fuzzPub, batchOf(messages(signedMessage(tn, body, badSig))), protocol.CloseSignature},
		{"body not an object", fuzzPub, batchOf(messages(signedMessage(tn, `[1]`))), protocol.CloseUnparseable},
		{"stats without channels", fuzzPub, batchOf(stats()), protocol.CloseNoReceivers},
		{"stats of too many", fuzzPub, batchOf(stats(signedChannel(tn), signedChannel(tn), signedChannel(tn))), protocol.CloseTooManyChannels},
		{"stats of a private channel", fuzzPub, batchOf(stats(privChannel)), protocol.ClosePrivate},
		{"stats unsigned", fuzzPub, batchOf(stats(&pb.ChannelId{Id: priv.Id})), protocol.CloseSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			if req, bad := parseClientRequest(tn, c.sender, c.data, clientTestLimits); bad != c.want {
				t.Errorf("refusal %d (%+v); want %d", bad, req, c.want)
			}
		})
	}

	// Within the limits; only the first request of a batch is served, and
	// an empty list of messages is nothing to publish.
	req, bad := parseClientRequest(tn, fuzzPub, batchOf(messages(good, good, good), messages(good)), clientTestLimits)
	if bad != 0 || len(req.msgs) != 3 {
		t.Errorf("three messages and a second request: %d, %+v; want the three", bad, req)
	}
	if req, bad := parseClientRequest(tn, fuzzPub, batchOf(messages()), clientTestLimits); bad != 0 || len(req.msgs) != 0 {
		t.Errorf("no messages: %d, %+v; want nothing to publish", bad, req)
	}
	if req, bad := parseClientRequest(tn, fuzzPub, batchOf(messages(good, good, good, good)), requestLimits{}); bad != 0 || len(req.msgs) != 4 {
		t.Errorf("unlimited: %d, %+v", bad, req)
	}
	req, bad = parseClientRequest(tn, fuzzPub, batchOf(stats(signedChannel(tn), signedChannel(tn))), clientTestLimits)
	if bad != 0 || !req.stats || len(req.askedIDs) != 2 || req.askedIDs[0] != tn.ch(fuzzPub) {
		t.Errorf("channelStats: %d, %+v", bad, req)
	}
	if got := protocol.Reason(int(protocol.CloseTooManyMessages)); got != "4016: Request exceeded the maximum number of messages." {
		t.Errorf("reason %q", got)
	}
}

// FuzzRestRoute posts any body to the rest route as a client would: a
// protobuf batch, JSON-RPC, an acknowledgement or garbage gets a status
// of the route, and a JSON answer is JSON.
func FuzzRestRoute(f *testing.F) {
	fx := newRouteFixture(f, time.Millisecond)
	for _, s := range []string{
		"mack:" + protocol.FormatMID(1700000000, 1), "pong", "mack:", `[{"jsonrpc":"2.0","method":"ping","id":1}]`,
		`{"jsonrpc":"2.0","method":"publish","params":{"channelList":["` + chB + `"],"body":{}},"id":"x"}`,
		"\x0a\x02\x0a\x00", " [", "{}", "garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := fx.post("CHANNEL_ID="+chA+":00112233445566778899aabbccddeeff", string(body))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusTooManyRequests:
		default:
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if w.Header().Get("Content-Type") == "application/json" && w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answer %q is not JSON", w.Body)
		}
	})
}
