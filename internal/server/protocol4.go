package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// publishBinary serves the backend's protobuf request on the publish
// route (?binaryMode=true): a RequestBatch with exactly one Request, as
// the PHP module (protobuftransport.php) sends them.
func (s *Server) publishBinary(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(r)
	if !ok {
		text(w, http.StatusUnauthorized, "Unknown client id.")
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	// The shared mode signs every body with the client's key; the
	// personal mode only when signed publishes are asked for.
	if (s.shared() || s.cfg.Security.SignedPublish) && !t.signer.VerifyBytes(body, r.URL.Query().Get("signature")) {
		text(w, http.StatusForbidden, "Signature is not correct.")
		return
	}
	var batch pb.RequestBatch
	if err := proto.Unmarshal(body, &batch); err != nil || len(batch.GetRequests()) != 1 {
		text(w, http.StatusBadRequest, "Request is not a RequestBatch of one Request.")
		return
	}
	req := batch.GetRequests()[0]
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
	defer cancel()
	switch {
	case req.GetIncomingMessages() != nil:
		msgs, err := backendMessages(t, req.GetIncomingMessages())
		if err != nil {
			text(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := s.publishAll(ctx, msgs); err != nil {
			text(w, http.StatusServiceUnavailable, msgNotStored)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	case req.GetChannelStats() != nil:
		s.channelStats(ctx, w, t, req.GetChannelStats())
	case req.GetServerStats() != nil:
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
		text(w, http.StatusBadRequest, "Request is empty.")
	}
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

// backendMessages turns the backend's IncomingMessages into messages.
// Receivers are private channel ids (isPrivate), or public ones.
func backendMessages(t *tenant, in *pb.IncomingMessagesRequest) ([]*protocol.Message, error) {
	var out []*protocol.Message
	for _, im := range in.GetMessages() {
		m := &protocol.Message{Expiry: im.GetExpiry(), Sender: protocol.Sender{Type: protocol.SenderBackend}}
		for _, rc := range im.GetReceivers() {
			id := hex.EncodeToString(rc.GetId())
			if !protocol.ValidID(id) {
				return nil, badRequest(protocol.ErrBadChannel.Error())
			}
			m.Channels = append(m.Channels, t.ch(id))
		}
		m.Channels = protocol.UniqueIDs(m.Channels)
		if len(m.Channels) == 0 || im.GetBody() == "" {
			continue // nothing to deliver, or nothing to say
		}
		m.Body = []byte(im.GetBody())
		out = append(out, m)
	}
	return out, nil
}

// channelStats answers which of the asked channels are online, every one
// of them in the order asked.
func (s *Server) channelStats(ctx context.Context, w http.ResponseWriter, t *tenant, req *pb.ChannelStatsRequest) {
	asked := req.GetChannels()
	ids := make([]string, len(asked))
	for i, c := range asked {
		ids[i] = t.ch(hex.EncodeToString(c.GetId()))
	}
	counts, err := s.engine.Online(ctx, ids)
	if err != nil {
		text(w, http.StatusServiceUnavailable, "Online status is unavailable.")
		return
	}
	stats := make([]*pb.ChannelStats, len(asked))
	for i, c := range asked {
		stats[i] = &pb.ChannelStats{Id: c.GetId(), IsPrivate: proto.Bool(c.GetIsPrivate()), IsOnline: proto.Bool(counts[i] > 0)}
	}
	writeProto(w, &pb.ResponseBatch{Responses: []*pb.Response{{
		Command: &pb.Response_ChannelStats{ChannelStats: &pb.ChannelStatsResponse{Channels: stats}},
	}}})
}

// binaryRequest handles a protocol-4 client frame: a RequestBatch of
// messages for public channels. A refused batch closes the connection
// with the push server's code.
func (c *conn) binaryRequest(data []byte) {
	msgs, bad := clientMessages(c.sub.t, c.sub.public, data)
	if bad != nil {
		c.sess.Close(bad.code, bad.msg)
		return
	}
	if !c.s.clientRate.allow(senderKey(c.sub.public, c.id), len(msgs)) {
		c.sess.Close(protocol.ClosePolicy, c.s.clientRate.errTooFast())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := c.s.publishAll(ctx, msgs); err != nil {
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
