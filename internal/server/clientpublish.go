package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/jsonrpc"
	"github.com/pushpull/pushpull/protocol/pb"
)

// refusal is why a protocol-4 request was refused: a push server 2.x code
// (protocol/closecodes.go), 0 for none. A WebSocket is closed with it and
// its reason; an HTTP request gets 400 with the reason as the body.
type refusal int

func (r refusal) reason() string { return protocol.Reason(int(r)) }

// refuse answers an HTTP request with a refusal, as the push server 2.x
// does: 400, the code and its text.
func refuse(w http.ResponseWriter, r refusal) {
	text(w, http.StatusBadRequest, r.reason())
}

// requestLimits bound one protobuf request: its messages, and the
// receivers of one message or the channels of a channelStats request
// (limits.maxMessagesPerRequest, limits.maxChannelsPerRequest; 0 means
// unlimited).
type requestLimits struct{ messages, channels int }

func (s *Server) requestLimits() requestLimits {
	l := s.limits()
	return requestLimits{l.MaxMessagesPerRequest, l.MaxChannelsPerRequest}
}

func over(n, limit int) bool { return limit > 0 && n > limit }

// command is what a Request asks.
type command int

const (
	cmdNone command = iota
	cmdMessages
	cmdChannelStats
	cmdServerStats
	cmdRegistration // the cloud's RegisterRequest (field 4), which pushpull does not serve
)

// firstRequest decodes a RequestBatch and returns its first Request and
// what it asks. The push server 2.x serves the first Request of a batch
// only, and so does pushpull: the PHP module and the clients send one.
func firstRequest(data []byte) (*pb.Request, command, refusal) {
	var batch pb.RequestBatch
	if err := proto.Unmarshal(data, &batch); err != nil || len(batch.GetRequests()) == 0 {
		return nil, cmdNone, protocol.CloseUnparseable
	}
	req := batch.GetRequests()[0]
	switch req.GetCommand().(type) {
	case *pb.Request_IncomingMessages:
		return req, cmdMessages, 0
	case *pb.Request_ChannelStats:
		return req, cmdChannelStats, 0
	case *pb.Request_ServerStats:
		return req, cmdServerStats, 0
	}
	// Field 4 (registration) is not in pushpull's schema: it is among the
	// unknown fields.
	for b := req.ProtoReflect().GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == 4 && typ == protowire.BytesType {
			return req, cmdRegistration, 0
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			break
		}
		b = b[n:]
	}
	return nil, cmdNone, protocol.CloseUnparseable
}

// publicChannel checks a public id and its signature, both hex, as a
// client names a receiver, and returns the hub channel. Signatures cover
// "public:<id>" (CPullChannel::SignPublicChannel); without a key, bare ids
// are accepted as the PHP module then sends no signatures.
func publicChannel(t *tenant, id, sig string) (string, bool) {
	if !protocol.ValidID(id) || t.signer.Enabled() && !t.signer.Verify("public:"+id, sig) {
		return "", false
	}
	return t.ch(id), true
}

// clientRequest is a protocol-4 client's request once checked: messages
// to publish, or channels whose online status it asks.
type clientRequest struct {
	msgs []*protocol.Message

	stats    bool
	asked    []*pb.ChannelId // channelStats: the channels, in the order asked
	askedIDs []string        // and their hub channels
}

// parseClientRequest checks a client's protobuf RequestBatch, sent by a
// connection (or a rest CHANNEL_ID) whose public id is sender ("" if it
// has none), in the push server 2.x's order: a sender, a Request, a
// command clients may send, then the command's limits, receivers and
// signatures. A message body must also be a JSON object (pushpull: the
// clients drop any other, and text subscribers get it raw). Every message
// must be acceptable, or none is published.
func parseClientRequest(t *tenant, sender string, data []byte, lim requestLimits) (*clientRequest, refusal) {
	if sender == "" {
		return nil, protocol.ClosePublicRequired
	}
	req, cmd, bad := firstRequest(data)
	if bad != 0 {
		return nil, bad
	}
	switch cmd {
	case cmdMessages:
	case cmdChannelStats:
		asked := req.GetChannelStats().GetChannels()
		if bad := checkCount(len(asked), lim.channels); bad != 0 {
			return nil, bad
		}
		out := &clientRequest{stats: true, asked: asked, askedIDs: make([]string, len(asked))}
		for i, c := range asked {
			if c.GetIsPrivate() {
				return nil, protocol.ClosePrivate
			}
			ch, ok := publicChannel(t, hex.EncodeToString(c.GetId()), hex.EncodeToString(c.GetSignature()))
			if !ok {
				return nil, protocol.CloseSignature
			}
			out.askedIDs[i] = ch
		}
		return out, 0
	default:
		return nil, protocol.CloseNotAllowed
	}
	in := req.GetIncomingMessages().GetMessages()
	if over(len(in), lim.messages) {
		return nil, protocol.CloseTooManyMessages
	}
	out := &clientRequest{}
	for _, im := range in {
		if bad := checkCount(len(im.GetReceivers()), lim.channels); bad != 0 {
			return nil, bad
		}
		m := &protocol.Message{
			Expiry: im.GetExpiry(),
			Sender: protocol.Sender{Type: protocol.SenderClient, ID: sender},
		}
		for _, rc := range im.GetReceivers() {
			if rc.GetIsPrivate() {
				return nil, protocol.ClosePrivate
			}
			ch, ok := publicChannel(t, hex.EncodeToString(rc.GetId()), hex.EncodeToString(rc.GetSignature()))
			if !ok {
				return nil, protocol.CloseSignature
			}
			m.Channels = append(m.Channels, ch)
		}
		m.Channels = protocol.UniqueIDs(m.Channels)
		body := []byte(im.GetBody())
		if !json.Valid(body) || !protocol.IsJSONObject(body) {
			return nil, protocol.CloseUnparseable
		}
		m.Body = body
		out.msgs = append(out.msgs, m)
	}
	return out, 0
}

// checkCount checks the number of receivers of a message, or of channels
// of a channelStats request: at least one, at most limit.
func checkCount(n, limit int) refusal {
	switch {
	case n == 0:
		return protocol.CloseNoReceivers
	case over(n, limit):
		return protocol.CloseTooManyChannels
	}
	return 0
}

// channelStats answers which of the asked channels (ids their hub
// channels) are online, every one of them in the order asked.
func (s *Server) channelStats(ctx context.Context, asked []*pb.ChannelId, ids []string) (*pb.ResponseBatch, error) {
	counts, err := s.engine.Online(ctx, ids)
	if err != nil {
		return nil, err
	}
	stats := make([]*pb.ChannelStats, len(asked))
	for i, c := range asked {
		stats[i] = &pb.ChannelStats{Id: c.GetId(), IsPrivate: proto.Bool(c.GetIsPrivate()), IsOnline: proto.Bool(counts[i] > 0)}
	}
	return channelStatsBatch(stats), nil
}

func channelStatsBatch(stats []*pb.ChannelStats) *pb.ResponseBatch {
	return &pb.ResponseBatch{Responses: []*pb.Response{{
		Command: &pb.Response_ChannelStats{ChannelStats: &pb.ChannelStatsResponse{Channels: stats}},
	}}}
}

// clientStats answers a client's channelStats request. When the online
// status is unavailable the answer lists no channel, as the push server
// 2.x's does.
func (s *Server) clientStats(req *clientRequest) *pb.ResponseBatch {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	b, err := s.channelStats(ctx, req.asked, req.askedIDs)
	if err != nil {
		s.log.Warn("online status unavailable", "err", err)
		return channelStatsBatch(nil)
	}
	return b
}

// restRoute serves what clients send over HTTP (/bitrix/rest/,
// /bitrix/pubweb/, the config's server.publish), the sender named by its
// signed CHANNEL_ID: a protocol-4 client's RequestBatch, as over a
// WebSocket; and what a protocol-5 client's long-polling connector sends
// there in place of WebSocket frames: JSON-RPC requests, answered as on
// a WebSocket, and the mack:<mid> acknowledgements and pong, which need
// nothing.
func (s *Server) restRoute(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		preflight(w, "POST, OPTIONS", "Content-Type")
		return
	case http.MethodPost:
	default:
		notFound(w)
		return
	}
	t, ok := s.tenantOf(r)
	if !ok {
		text(w, http.StatusUnauthorized, "Unknown client id.")
		return
	}
	// A CHANNEL_ID that does not parse names no sender: refused below
	// with 4012, once the body is read, as the push server 2.x does.
	sender := ""
	channels, parseErr := t.signer.ParseChannels(r.URL.Query().Get("CHANNEL_ID"))
	for _, c := range channels {
		if c.Public != "" {
			sender = c.Public
			break
		}
	}
	body, ok := s.readAnyBody(w, r)
	if !ok {
		return
	}
	host := s.clientAddr(r)
	switch {
	case isRPCKeepalive(body):
		text(w, http.StatusOK, "")
		return
	case isJSON(body) && parseErr != nil:
		// JSON-RPC comes from the long-polling connector, which always
		// names its channels; calls on no channel are not served.
		text(w, http.StatusBadRequest, parseErr.Error())
		return
	case isJSON(body):
		s.restRPC(w, r, &rpcCaller{t: t, public: sender, private: bareIDs(channels), rate: senderKey(sender, host)}, body)
		return
	}
	req, bad := parseClientRequest(t, sender, body, s.requestLimits())
	if bad != 0 {
		refuse(w, bad)
		return
	}
	if req.stats {
		writeProto(w, s.clientStats(req))
		return
	}
	if !s.clientRate.allow(senderKey(sender, host), len(req.msgs)) {
		w.Header().Set("Retry-After", "1")
		text(w, http.StatusTooManyRequests, s.clientRate.errTooFast())
		return
	}
	ctx, cancel := s.publishContext(r)
	defer cancel()
	if err := s.publishAll(ctx, req.msgs); err != nil {
		text(w, http.StatusServiceUnavailable, msgNotStored)
		return
	}
	text(w, http.StatusOK, "")
}

// restRPC answers the JSON-RPC requests a protocol-5 long-polling client
// POSTs, as its WebSocket would (its connector drops the answer; a
// batch of notifications gets an empty body).
func (s *Server) restRPC(w http.ResponseWriter, r *http.Request, cl *rpcCaller, body []byte) {
	ctx, cancel := s.publishContext(r)
	defer cancel()
	out := s.rpcAnswer(ctx, body, false, func(ctx context.Context, req *jsonrpc.Request) (any, *jsonrpc.Error) {
		return s.clientCall(ctx, cl, req)
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func bareIDs(channels []protocol.Channel) []string {
	out := make([]string, len(channels))
	for i, c := range channels {
		out[i] = c.ID
	}
	return out
}

// isRPCKeepalive reports whether body is one of the bare-text frames of
// protocol 5: a delivery acknowledgement mack:<mid>, or pong. Neither
// can be a client's RequestBatch, whose first byte is 0x0a (the tag of
// its field 1, requests).
func isRPCKeepalive(body []byte) bool {
	return string(body) == "pong" || bytes.HasPrefix(body, []byte("mack:"))
}

// isJSON reports whether body starts as a JSON-RPC request or batch does.
// A client's RequestBatch starts with 0x0a (its field 1), which JSON counts
// as white space, and its next byte (a length) may be '{' or '[': the
// first byte alone tells them apart.
func isJSON(body []byte) bool {
	return len(body) > 0 && (body[0] == '{' || body[0] == '[')
}
