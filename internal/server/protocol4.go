package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// publishBinary serves the backend's protobuf request on the publish
// route (?binaryMode=true): a RequestBatch whose first Request is served,
// as the push server 2.x does (the PHP module, protobuftransport.php,
// sends one). Refusals are the push server's: 400 with "<code>: <text>".
func (s *Server) publishBinary(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(r)
	if !ok {
		text(w, http.StatusUnauthorized, "Unknown client id.")
		return
	}
	body, ok := s.readAnyBody(w, r)
	if !ok {
		return
	}
	// The shared mode signs every body with the client's key; the
	// personal mode only when signed publishes are asked for.
	if (s.shared() || s.live.Load().signedPublish) && !t.signer.VerifyBytes(body, r.URL.Query().Get("signature")) {
		text(w, http.StatusForbidden, "Signature is not correct.")
		return
	}
	req, cmd, bad := firstRequest(body)
	if bad != 0 {
		refuse(w, bad)
		return
	}
	ctx, cancel := s.publishContext(r)
	defer cancel()
	switch cmd {
	case cmdMessages:
		msgs, bad := backendMessages(t, req.GetIncomingMessages(), s.requestLimits())
		if bad != 0 {
			refuse(w, bad)
			return
		}
		if err := s.publishAll(ctx, msgs); err != nil {
			text(w, http.StatusServiceUnavailable, msgNotStored)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	case cmdChannelStats:
		asked := req.GetChannelStats().GetChannels()
		ids, bad := backendChannels(t, asked, s.requestLimits())
		if bad != 0 {
			refuse(w, bad)
			return
		}
		b, err := s.channelStats(ctx, asked, ids)
		if err != nil {
			text(w, http.StatusServiceUnavailable, "Online status is unavailable.")
			return
		}
		writeProto(w, b)
	case cmdServerStats:
		st, err := s.engine.Stats(ctx)
		if err != nil {
			text(w, http.StatusServiceUnavailable, "Statistics are unavailable.")
			return
		}
		js, _ := json.Marshal(st) // plain structs: cannot fail
		writeProto(w, &pb.ResponseBatch{Responses: []*pb.Response{{
			Command: &pb.Response_ServerStats{ServerStats: &pb.JsonResponse{Json: proto.String(string(js))}},
		}}})
	default:
		refuse(w, protocol.CloseUnknownCommand)
	}
}

// idBytes is the length of a channel id in protobuf: 32 hex digits.
const idBytes = protocol.ChannelIDLen / 2

// backendMessages turns the backend's IncomingMessages into messages,
// checked as the push server 2.x checks them: at most lim.messages
// messages, each with 1 to lim.channels receivers of 16-byte ids (private
// channel ids, or public ones). A message with an empty body is dropped:
// there is nothing to deliver.
func backendMessages(t *tenant, in *pb.IncomingMessagesRequest, lim requestLimits) ([]*protocol.Message, refusal) {
	if over(len(in.GetMessages()), lim.messages) {
		return nil, protocol.CloseTooManyMessages
	}
	var out []*protocol.Message
	for _, im := range in.GetMessages() {
		rcv := im.GetReceivers()
		if bad := checkCount(len(rcv), lim.channels); bad != 0 {
			return nil, bad
		}
		m := &protocol.Message{Expiry: im.GetExpiry(), Sender: protocol.Sender{Type: protocol.SenderBackend}}
		for _, rc := range rcv {
			if len(rc.GetId()) != idBytes {
				return nil, protocol.CloseBadChannelID
			}
			m.Channels = append(m.Channels, t.ch(hex.EncodeToString(rc.GetId())))
		}
		if im.GetBody() == "" {
			continue
		}
		m.Channels = protocol.UniqueIDs(m.Channels)
		m.Body = []byte(im.GetBody())
		out = append(out, m)
	}
	return out, 0
}

// backendChannels checks the channels of the backend's channelStats
// request (1 to lim.channels, 16-byte ids) and returns their hub
// channels.
func backendChannels(t *tenant, asked []*pb.ChannelId, lim requestLimits) ([]string, refusal) {
	if bad := checkCount(len(asked), lim.channels); bad != 0 {
		return nil, bad
	}
	ids := make([]string, len(asked))
	for i, c := range asked {
		if len(c.GetId()) != idBytes {
			return nil, protocol.CloseBadChannelID
		}
		ids[i] = t.ch(hex.EncodeToString(c.GetId()))
	}
	return ids, 0
}

// binaryRequest handles a protocol-4 client frame: messages for public
// channels, or a channelStats request, answered with a binary frame. A
// refused request closes the connection with the push server's code.
func (c *conn) binaryRequest(data []byte) {
	req, bad := parseClientRequest(c.sub.t, c.sub.public, data, c.s.requestLimits())
	if bad != 0 {
		c.sess.Close(int(bad), bad.reason())
		return
	}
	if req.stats {
		b, _ := proto.Marshal(c.s.clientStats(req)) // built here: cannot fail
		c.sess.Send(ws.BinaryFrame(b))
		return
	}
	if len(req.msgs) == 0 {
		return
	}
	if !c.s.clientRate.allow(senderKey(c.sub.public, c.id), len(req.msgs)) {
		c.sess.Close(protocol.ClosePolicy, c.s.clientRate.errTooFast())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := c.s.publishAll(ctx, req.msgs); err != nil {
		c.sess.Close(protocol.CloseInternalError, "message could not be stored")
	}
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		text(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
