package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/jsonrpc"
	"github.com/pushpull/pushpull/protocol/pb"
)

const fuzzPub = "0123456789abcdef0123456789abcdef"

func fuzzTenant(t testing.TB) *tenant {
	signer, err := protocol.NewSigner("k", "sha1")
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{id: "c", signer: signer, key: []byte("k")}
}

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

// FuzzRPCAnswer checks that any frame gets nothing or one JSON answer.
func FuzzRPCAnswer(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"ping","id":1}`, `[{"jsonrpc":"2.0","method":"publish","params":{}}]`,
		`[]`, `{`, `[1,2]`, `{"jsonrpc":"2.0","result":1,"id":1}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, always bool) {
		calls := 0
		out := (&Server{}).rpcAnswer(context.Background(), data, always, func(_ context.Context, r *jsonrpc.Request) (any, *jsonrpc.Error) {
			calls++
			if strings.HasPrefix(r.Method, "e") {
				return nil, jsonrpc.ErrInvalidParams
			}
			return map[string]any{"m": r.Method}, nil
		})
		if out == nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("answer %q is not JSON", out)
		}
	})
}

// FuzzBackendMessages checks the backend's protobuf publish decoding.
func FuzzBackendMessages(f *testing.F) {
	id, _ := hex.DecodeString(fuzzPub)
	good, _ := proto.Marshal(&pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
		Receivers: []*pb.Receiver{{Id: id, IsPrivate: proto.Bool(true)}}, Body: proto.String("{}"), Expiry: proto.Uint32(5),
	}}})
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		var in pb.IncomingMessagesRequest
		if proto.Unmarshal(data, &in) != nil {
			return
		}
		msgs, err := backendMessages(fuzzTenant(t), &in)
		if err != nil {
			return
		}
		for _, m := range msgs {
			// The publish gate makes every body envelope-safe JSON.
			if len(m.Channels) == 0 || !json.Valid(protocol.SanitizeBody(m.Body)) {
				t.Fatalf("accepted %+v", m)
			}
			for _, c := range m.Channels {
				if !protocol.ValidID(bareChannel(c)) {
					t.Fatalf("channel %q", c)
				}
			}
		}
	})
}
