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
		msgs, bad := backendMessages(fuzzTenant(t), &in, clientTestLimits)
		if bad != 0 {
			if msgs != nil || bad.reason() == "" {
				t.Fatalf("refusal %d with %v", bad, msgs)
			}
			return
		}
		if len(msgs) > clientTestLimits.messages {
			t.Fatalf("%d messages accepted", len(msgs))
		}
		for _, m := range msgs {
			// The publish gate makes every body envelope-safe JSON.
			if len(m.Channels) == 0 || len(m.Channels) > clientTestLimits.channels || !json.Valid(protocol.SanitizeBody(m.Body)) {
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

// The backend's requests are refused with the push server 2.x's codes.
func TestBackendRefusals(t *testing.T) {
	tn := fuzzTenant(t)
	id, _ := hex.DecodeString(fuzzPub)
	rcv := &pb.Receiver{Id: id, IsPrivate: proto.Bool(true)}
	msg := func(body string, rs ...*pb.Receiver) *pb.IncomingMessage {
		return &pb.IncomingMessage{Receivers: rs, Body: proto.String(body)}
	}
	in := func(ms ...*pb.IncomingMessage) *pb.IncomingMessagesRequest {
		return &pb.IncomingMessagesRequest{Messages: ms}
	}
	for _, c := range []struct {
		name string
		in   *pb.IncomingMessagesRequest
		want refusal
		n    int
	}{
		{"ok", in(msg("{}", rcv), msg("{}", rcv, rcv)), 0, 2},
		{"none", in(), 0, 0},
		{"empty body dropped", in(msg("", rcv), msg("{}", rcv)), 0, 1},
		{"too many messages", in(msg("{}", rcv), msg("{}", rcv), msg("{}", rcv), msg("{}", rcv)), protocol.CloseTooManyMessages, 0},
		{"no receivers", in(msg("{}", rcv), msg("{}")), protocol.CloseNoReceivers, 0},
		{"no receivers, empty body", in(msg("")), protocol.CloseNoReceivers, 0},
		{"too many receivers", in(msg("{}", rcv, rcv, rcv)), protocol.CloseTooManyChannels, 0},
		{"short id", in(msg("{}", &pb.Receiver{Id: id[:15]})), protocol.CloseBadChannelID, 0},
	} {
		msgs, bad := backendMessages(tn, c.in, clientTestLimits)
		if bad != c.want || len(msgs) != c.n {
			t.Errorf("%s: refusal %d, %d messages; want %d, %d", c.name, bad, len(msgs), c.want, c.n)
		}
	}
	for _, c := range []struct {
		name  string
		asked []*pb.ChannelId
		want  refusal
	}{
		{"ok", []*pb.ChannelId{{Id: id}, {Id: id, IsPrivate: proto.Bool(true)}}, 0},
		{"none", nil, protocol.CloseNoReceivers},
		{"too many", []*pb.ChannelId{{Id: id}, {Id: id}, {Id: id}}, protocol.CloseTooManyChannels},
		{"long id", []*pb.ChannelId{{Id: append(id, 0)}}, protocol.CloseBadChannelID},
	} {
		ids, bad := backendChannels(tn, c.asked, clientTestLimits)
		if bad != c.want || bad == 0 && (len(ids) != len(c.asked) || ids[0] != tn.ch(fuzzPub)) {
			t.Errorf("channelStats %s: refusal %d, %q; want %d", c.name, bad, ids, c.want)
		}
	}
}
