package server

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// FuzzClientMessages feeds a client's protobuf frame to the checks every
// client publish passes: a refusal or messages that are safe to deliver.
func FuzzClientMessages(f *testing.F) {
	tn := fuzzTenant(f)
	id, _ := hex.DecodeString(fuzzPub)
	sig, _ := hex.DecodeString(tn.signer.Sign("public:" + fuzzPub))
	good, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
			Receivers: []*pb.Receiver{{Id: id, Signature: sig}}, Body: proto.String(`{"module_id":"m"}`),
		}}}}}}})
	f.Add(good)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, bad := clientMessages(tn, fuzzPub, data)
		if bad != nil {
			if msgs != nil || bad.code < protocol.CloseUnparseable || bad.code > protocol.CloseSignature {
				t.Fatalf("refusal %v with messages %v", bad, msgs)
			}
			return
		}
		for _, m := range msgs {
			if len(m.Channels) == 0 || !json.Valid(m.Body) || !protocol.IsJSONObject(m.Body) || m.Sender.Type != protocol.SenderClient {
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
