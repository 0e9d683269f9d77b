package pb

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

func generated(msgs ...Outgoing) *ResponseBatch {
	var out []*OutgoingMessage
	for _, m := range msgs {
		s := &Sender{Type: m.SenderType.Enum()}
		if m.SenderID != nil {
			s.Id = m.SenderID
		}
		out = append(out, &OutgoingMessage{
			Id: m.ID, Body: proto.String(string(m.Body)), Expiry: proto.Uint32(m.Expiry),
			Created: proto.Uint32(m.Created), Sender: s,
		})
	}
	return &ResponseBatch{Responses: []*Response{{Command: &Response_OutgoingMessages{
		OutgoingMessages: &OutgoingMessagesResponse{Messages: out}}}}}
}

func TestAppendResponseBatchMatchesGenerated(t *testing.T) {
	for _, msgs := range [][]Outgoing{
		{{ID: []byte{1, 2}, Body: []byte(`{"a":1}`), Expiry: 86400, Created: 1700000000, SenderType: SenderType_BACKEND}},
		{
			{ID: bytes.Repeat([]byte{9}, 13), Body: bytes.Repeat([]byte("x"), 300), Created: 1, SenderType: SenderType_CLIENT, SenderID: bytes.Repeat([]byte{0xab}, 16)},
			{ID: []byte{}, Body: []byte{}, SenderType: SenderType_UNKNOWN},
		},
	} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(generated(msgs...))
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendResponseBatch(nil, msgs...); !bytes.Equal(got, want) {
			t.Errorf("AppendResponseBatch = %x\nproto.Marshal    = %x", got, want)
		}
	}
}

func FuzzAppendResponseBatch(f *testing.F) {
	f.Add([]byte("id"), []byte(`{"a":1}`), uint32(5), uint32(1700000000), int32(2), []byte{})
	f.Fuzz(func(t *testing.T, id, body []byte, expiry, created uint32, typ int32, sender []byte) {
		if len(sender) == 0 {
			sender = nil
		}
		m := Outgoing{ID: id, Body: body, Expiry: expiry, Created: created, SenderType: SenderType(typ & 3), SenderID: sender}
		got := AppendResponseBatch(nil, m)
		var back ResponseBatch
		if err := proto.Unmarshal(got, &back); err != nil {
			t.Fatalf("does not decode: %v", err)
		}
		om := back.GetResponses()[0].GetOutgoingMessages().GetMessages()[0]
		if !bytes.Equal(om.GetId(), id) || om.GetExpiry() != expiry || om.GetCreated() != created ||
			!bytes.Equal(om.GetSender().GetId(), sender) || int32(om.GetSender().GetType()) != typ&3 {
			t.Fatalf("round trip changed %+v into %v", m, om)
		}
	})
}

// FuzzRequestBatch checks that decoding whatever a client or backend sends
// fails cleanly or gives a batch that encodes again.
func FuzzRequestBatch(f *testing.F) {
	b, _ := proto.Marshal(&RequestBatch{Requests: []*Request{{Command: &Request_IncomingMessages{
		IncomingMessages: &IncomingMessagesRequest{Messages: []*IncomingMessage{{
			Receivers: []*Receiver{{Id: []byte{1}, Signature: []byte{2}}}, Body: proto.String("{}"),
		}}}}}}})
	f.Add(b)
	f.Add([]byte{0x0a, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rb RequestBatch
		if proto.Unmarshal(data, &rb) != nil {
			return
		}
		if _, err := proto.Marshal(&rb); err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
	})
}
