package server

import (
	"encoding/hex"
	"encoding/json"
	"testing"

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
