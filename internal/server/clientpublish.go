package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/jsonrpc"
	"github.com/pushpull/pushpull/protocol/pb"
)

// refusal is why a client publish was refused, with the close code a
// WebSocket client gets for it.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

var (
	errUnparseable = &refusal{protocol.CloseUnparseable, "unparseable request"}
	errNoReceivers = &refusal{protocol.CloseNoReceivers, "no receivers"}
	errPrivate     = &refusal{protocol.ClosePrivate, "clients may not publish to private channels"}
	errSignature   = &refusal{protocol.CloseSignature, "bad channel signature"}
)

// publicChannel checks a public id and its signature, both hex, as a
// client names a receiver, and returns the hub channel. Signatures cover
// "public:<id>" (CPullChannel::SignPublicChannel); without a key, bare ids
// are accepted as the PHP module then sends no signatures.
func publicChannel(t *tenant, id, sig string) (string, *refusal) {
	if !protocol.ValidID(id) {
		return "", errSignature
	}
	if t.signer.Enabled() && !t.signer.Verify("public:"+id, sig) {
		return "", errSignature
	}
	return t.ch(id), nil
}

// clientMessages turns a client's protobuf RequestBatch into messages
// from sender (a public id, "" if the connection has none). Every message
// must be acceptable, or none is published.
func clientMessages(t *tenant, sender string, data []byte) ([]*protocol.Message, *refusal) {
	var batch pb.RequestBatch
	if err := proto.Unmarshal(data, &batch); err != nil || len(batch.GetRequests()) == 0 {
		return nil, errUnparseable
	}
	var out []*protocol.Message
	for _, req := range batch.GetRequests() {
		in := req.GetIncomingMessages()
		if in == nil {
			return nil, errUnparseable
		}
		for _, im := range in.GetMessages() {
			if len(im.GetReceivers()) == 0 {
				return nil, errNoReceivers
			}
			m := &protocol.Message{
				Expiry: im.GetExpiry(),
				Sender: protocol.Sender{Type: protocol.SenderClient, ID: sender},
			}
			for _, rc := range im.GetReceivers() {
				if rc.GetIsPrivate() {
					return nil, errPrivate
				}
				ch, bad := publicChannel(t, hex.EncodeToString(rc.GetId()), hex.EncodeToString(rc.GetSignature()))
				if bad != nil {
					return nil, bad
				}
				m.Channels = append(m.Channels, ch)
			}
			m.Channels = protocol.UniqueIDs(m.Channels)
			body := []byte(im.GetBody())
			if !json.Valid(body) || !protocol.IsJSONObject(body) {
				return nil, errUnparseable
			}
			m.Body = body
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, errNoReceivers
	}
	return out, nil
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
	channels, err := t.signer.ParseChannels(r.URL.Query().Get("CHANNEL_ID"))
	if err != nil {
		text(w, http.StatusBadRequest, err.Error())
		return
	}
	sender := ""
	for _, c := range channels {
		if c.Public != "" {
			sender = c.Public
			break
		}
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	switch {
	case isRPCKeepalive(body):
		text(w, http.StatusOK, "")
		return
	case isJSON(body):
		s.restRPC(w, r, &rpcCaller{t: t, public: sender, private: bareIDs(channels), rate: senderKey(sender, host)}, body)
		return
	}
	msgs, bad := clientMessages(t, sender, body)
	switch bad {
	case nil:
	case errSignature, errPrivate:
		text(w, http.StatusForbidden, bad.msg)
		return
	default:
		text(w, http.StatusBadRequest, bad.msg)
		return
	}
	if !s.clientRate.allow(senderKey(sender, host), len(msgs)) {
		w.Header().Set("Retry-After", "1")
		text(w, http.StatusTooManyRequests, s.clientRate.errTooFast())
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
	defer cancel()
	if err := s.publishAll(ctx, msgs); err != nil {
		text(w, http.StatusServiceUnavailable, msgNotStored)
		return
	}
	text(w, http.StatusOK, "")
}

// restRPC answers the JSON-RPC requests a protocol-5 long-polling client
// POSTs, as its WebSocket would (its connector drops the answer; a
// batch of notifications gets an empty body).
func (s *Server) restRPC(w http.ResponseWriter, r *http.Request, cl *rpcCaller, body []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
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

// isJSON reports whether body starts like a JSON-RPC request or batch,
// which a client's RequestBatch (first byte 0x0a) never does.
func isJSON(body []byte) bool {
	body = bytes.TrimLeft(body, " \t\r\n")
	return len(body) > 0 && (body[0] == '{' || body[0] == '[')
}
