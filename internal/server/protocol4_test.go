package server

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

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
