package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
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

// restRoute serves client publishes over HTTP (/bitrix/rest/,
// /bitrix/pubweb/): the same RequestBatch as over a WebSocket, the sender
// named by its signed CHANNEL_ID.
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
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
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
