package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/jsonrpc"
)

// Method names, as the SDK's RpcMethod enum spells them.
const (
	methodPublish     = "publish"
	methodLastSeen    = "getUsersLastSeen"
	methodPing        = "ping"
	methodList        = "listChannels"
	methodSubscribe   = "subscribeStatusChange"
	methodUnsubscribe = "unsubscribeStatusChange"
)

// maxUsers bounds the users of one request.
const maxUsers = 1000

// rpcRequest handles a protocol-5 client frame: a JSON-RPC request or a
// batch. Answers go back as one text frame, a batch's as one array.
func (c *conn) rpcRequest(data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cl := c.caller()
	out := c.s.rpcAnswer(ctx, data, false, func(ctx context.Context, req *jsonrpc.Request) (any, *jsonrpc.Error) {
		return c.s.clientCall(ctx, cl, req)
	})
	if out != nil {
		c.sess.Send(ws.TextFrame(out))
	}
}

// rpcAnswer parses data, calls each request and returns the answer, nil
// when nothing is to be answered. always answers a single request even
// without an id (the backend's getUsersLastSeen expects one).
func (s *Server) rpcAnswer(ctx context.Context, data []byte, always bool, call func(context.Context, *jsonrpc.Request) (any, *jsonrpc.Error)) []byte {
	reqs, batch, perr := jsonrpc.Parse(data)
	if perr != nil {
		b, _ := json.Marshal((&jsonrpc.Request{}).Fail(perr))
		return b
	}
	var resps []jsonrpc.Response
	for i := range reqs {
		req := &reqs[i]
		if req.Err != nil {
			resps = append(resps, req.Fail(req.Err))
			continue
		}
		result, err := call(ctx, req)
		if req.Notification() && !(always && !batch) {
			continue
		}
		if err != nil {
			resps = append(resps, req.Fail(err))
		} else {
			resps = append(resps, req.Result(result))
		}
	}
	var b []byte
	switch {
	case batch:
		if len(resps) == 0 {
			if !always {
				return nil
			}
			resps = []jsonrpc.Response{}
		}
		b, _ = json.Marshal(resps)
	case len(resps) == 1:
		b, _ = json.Marshal(resps[0])
	default:
		return nil
	}
	return b
}

// rpcCaller is who sends a protocol-5 client request: a WebSocket
// connection, or a long-polling client POSTing to a rest route.
type rpcCaller struct {
	t       *tenant
	public  string   // the sender's public id, "" if none
	user    string   // the token's user, "" if none
	private []string // the bare private ids it reads, for listChannels
	rate    string   // its bucket in the client publish rate limit
	// follow subscribes the caller to a status channel or unsubscribes
	// it (false: too many followed); nil for a caller without a
	// connection to deliver status changes on.
	follow func(ch string, on bool) bool
}

// caller is the connection as the sender of JSON-RPC requests.
func (c *conn) caller() *rpcCaller {
	return &rpcCaller{
		t: c.sub.t, public: c.sub.public, user: c.sub.user, private: c.sub.private,
		rate: senderKey(c.sub.public, c.id), follow: c.follow,
	}
}

// errNoConnection answers a status subscription sent over HTTP: status
// changes are delivered on a WebSocket connection only.
var errNoConnection = &jsonrpc.Error{Code: jsonrpc.CodeServerError, Message: "status subscriptions need a WebSocket connection"}

// clientCall runs one client request of cl.
func (s *Server) clientCall(ctx context.Context, cl *rpcCaller, req *jsonrpc.Request) (any, *jsonrpc.Error) {
	t := cl.t
	switch req.Method {
	case methodPing:
		return "pong", nil
	case methodPublish:
		var p clientPublishParams
		if !decodeParams(req, &p) || len(p.Body) == 0 {
			return nil, jsonrpc.ErrInvalidParams
		}
		m := &protocol.Message{Expiry: p.Expiry, Sender: protocol.Sender{Type: protocol.SenderClient, ID: cl.public}}
		for _, raw := range p.ChannelList {
			id, sig, ok := publicDescriptor(raw)
			if !ok {
				return nil, jsonrpc.InvalidParams("channelList: want \"<publicId>.<signature>\" or {publicId, signature}")
			}
			ch, ok := publicChannel(t, id, sig)
			if !ok {
				return nil, jsonrpc.InvalidParams("bad channel signature")
			}
			m.Channels = append(m.Channels, ch)
		}
		if len(p.UserList) > 0 && cl.user == "" {
			// Users are known by their tokens: only a connection with
			// one may address users.
			return nil, jsonrpc.InvalidParams("userList needs a connection with a token")
		}
		for _, u := range p.UserList {
			m.Channels = append(m.Channels, t.userChannel(strconv.FormatUint(u, 10)))
		}
		m.Channels = protocol.UniqueIDs(m.Channels)
		if len(m.Channels) == 0 {
			return nil, jsonrpc.InvalidParams("no receivers")
		}
		if !protocol.IsJSONObject(p.Body) {
			return nil, jsonrpc.InvalidParams("body must be an object")
		}
		m.Body = p.Body
		if !s.clientRate.allow(cl.rate, 1) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeServerError, Message: s.clientRate.errTooFast()}
		}
		if err := s.publishAll(ctx, []*protocol.Message{m}); err != nil {
			return nil, jsonrpc.ErrInternal
		}
		return true, nil
	case methodLastSeen:
		return s.lastSeen(ctx, t, req)
	case methodList:
		return map[string]any{"channels": cl.private}, nil
	case methodSubscribe, methodUnsubscribe:
		var p struct {
			UserID json.Number `json:"userId"`
		}
		if !decodeParams(req, &p) {
			return nil, jsonrpc.ErrInvalidParams
		}
		user, err := strconv.ParseUint(p.UserID.String(), 10, 63)
		if err != nil {
			return nil, jsonrpc.InvalidParams("userId must be a user id")
		}
		if cl.follow == nil {
			return nil, errNoConnection
		}
		if !cl.follow(t.statusChannel(strconv.FormatUint(user, 10)), req.Method == methodSubscribe) {
			return nil, jsonrpc.InvalidParams(errTooManyFollowed)
		}
		return struct{}{}, nil
	}
	return nil, jsonrpc.ErrMethodNotFound
}

// maxFollowed bounds the users whose status one connection follows: each
// is a hub subscription here and, on Redis, a key kept alive.
const maxFollowed = 1000

var errTooManyFollowed = "a connection follows at most " + strconv.Itoa(maxFollowed) + " users' statuses"

// follow subscribes the connection to a status channel, or unsubscribes
// it; false when the connection already follows maxFollowed users.
func (c *conn) follow(ch string, on bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	_, have := c.statuses[ch]
	switch {
	case on && !have && len(c.statuses) >= maxFollowed:
		return false
	case on && !have:
		if c.statuses == nil {
			c.statuses = make(map[string]struct{})
		}
		c.statuses[ch] = struct{}{}
		c.s.hub.Subscribe(c.sess, []string{ch})
	case !on && have:
		delete(c.statuses, ch)
		c.s.hub.Unsubscribe(c.sess, []string{ch})
	}
	return true
}

type clientPublishParams struct {
	ChannelList []json.RawMessage `json:"channelList"`
	UserList    []uint64          `json:"userList"`
	Body        json.RawMessage   `json:"body"`
	Expiry      uint32            `json:"expiry"`
}

// publicDescriptor reads a channelList entry: "<publicId>.<signature>"
// or {"publicId": ..., "signature": ...}.
func publicDescriptor(raw json.RawMessage) (id, sig string, ok bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		id, sig, _ = strings.Cut(s, ".")
		return id, sig, true
	}
	var o struct {
		PublicID  string `json:"publicId"`
		Signature string `json:"signature"`
	}
	if json.Unmarshal(raw, &o) == nil && o.PublicID != "" {
		return o.PublicID, o.Signature, true
	}
	return "", "", false
}

func decodeParams(req *jsonrpc.Request, v any) bool {
	if req.Params == nil {
		return false
	}
	return json.Unmarshal(req.Params, v) == nil
}

// lastSeen answers getUsersLastSeen: {"<user>": seconds}, 0 for online,
// users never seen left out.
func (s *Server) lastSeen(ctx context.Context, t *tenant, req *jsonrpc.Request) (any, *jsonrpc.Error) {
	// The backend may write user ids as numbers or strings.
	var p struct {
		UserList []json.Number `json:"userList"`
	}
	if !decodeParams(req, &p) || len(p.UserList) > maxUsers {
		return nil, jsonrpc.ErrInvalidParams
	}
	users := make([]uint64, len(p.UserList))
	keys := make([]string, len(p.UserList))
	for i, u := range p.UserList {
		n, err := strconv.ParseUint(u.String(), 10, 63)
		if err != nil {
			return nil, jsonrpc.InvalidParams("userList must hold user ids")
		}
		users[i] = n
		keys[i] = t.user(strconv.FormatUint(n, 10))
	}
	seen, err := s.engine.LastSeen(ctx, keys)
	if err != nil {
		s.log.Warn("last seen", "err", err)
		return nil, jsonrpc.ErrInternal
	}
	out := make(map[string]int64, len(seen))
	for i, u := range users {
		if v, ok := seen[keys[i]]; ok {
			out[strconv.FormatUint(u, 10)] = v
		}
	}
	return out, nil
}

// apiRoute serves the backend's JSON-RPC over HTTP (jsonrpctransport.php):
// a batch of publish notifications, or one getUsersLastSeen. The body is
// signed with the key (?signature=, hex HMAC of the exact bytes).
func (s *Server) apiRoute(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		notFound(w)
		return
	}
	t, ok := s.tenantOf(r)
	if !ok {
		text(w, http.StatusUnauthorized, "Unknown client id.")
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if t.signer.Enabled() && !t.signer.VerifyBytes(body, r.URL.Query().Get("signature")) {
		text(w, http.StatusForbidden, "Signature is not correct.")
		return
	}
	ctx, cancel := s.publishContext(r)
	defer cancel()
	out := s.rpcAnswer(ctx, body, true, func(ctx context.Context, req *jsonrpc.Request) (any, *jsonrpc.Error) {
		switch req.Method {
		case methodPublish:
			return s.backendPublish(ctx, t, req)
		case methodLastSeen:
			return s.lastSeen(ctx, t, req)
		}
		return nil, jsonrpc.ErrMethodNotFound
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// backendPublish publishes the backend's message to private channels
// (unsigned ids) and users, with per-user params and a dictionary that
// the receivers' notifications carry.
func (s *Server) backendPublish(ctx context.Context, t *tenant, req *jsonrpc.Request) (any, *jsonrpc.Error) {
	var p struct {
		ChannelList []string        `json:"channelList"`
		UserList    []json.Number   `json:"userList"`
		Body        json.RawMessage `json:"body"`
		Expiry      uint32          `json:"expiry"`
		UserParams  json.RawMessage `json:"user_params"`
		Dictionary  json.RawMessage `json:"dictionary"`
	}
	if !decodeParams(req, &p) || !protocol.IsJSONObject(p.Body) {
		return nil, jsonrpc.ErrInvalidParams
	}
	m := &protocol.Message{Expiry: p.Expiry, Sender: protocol.Sender{Type: protocol.SenderBackend}}
	for _, c := range p.ChannelList {
		id, _, _ := strings.Cut(c, ".")
		if !protocol.ValidID(id) {
			return nil, jsonrpc.InvalidParams(protocol.ErrBadChannel.Error())
		}
		m.Channels = append(m.Channels, t.ch(id))
	}
	for _, u := range p.UserList {
		n, err := strconv.ParseUint(u.String(), 10, 63)
		if err != nil {
			return nil, jsonrpc.InvalidParams("userList must hold user ids")
		}
		m.Channels = append(m.Channels, t.userChannel(strconv.FormatUint(n, 10)))
	}
	m.Channels = protocol.UniqueIDs(m.Channels)
	if len(m.Channels) == 0 {
		return nil, jsonrpc.InvalidParams("no receivers")
	}
	// PHP writes an empty map as [], so only objects count.
	var userParams map[string]json.RawMessage
	if protocol.IsJSONObject(p.UserParams) && json.Unmarshal(p.UserParams, &userParams) != nil {
		return nil, jsonrpc.ErrInvalidParams
	}
	for u, v := range userParams {
		if protocol.IsJSONObject(v) {
			if m.UserParams == nil {
				m.UserParams = make(map[string]json.RawMessage, len(userParams))
			}
			m.UserParams[u] = v
		}
	}
	if protocol.IsJSONObject(p.Dictionary) {
		m.Dictionary = p.Dictionary
	}
	m.Body = p.Body
	if err := s.publishAll(ctx, []*protocol.Message{m}); err != nil {
		return nil, jsonrpc.ErrInternal
	}
	return true, nil
}
