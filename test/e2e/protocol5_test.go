package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/testutil"
)

// jwtFor returns a token as the PHP module (auth/jwt.php) issues it: HS256
// with the signature key, chan the comma-joined unsigned channel ids.
func jwtFor(key, user string, channels []string, exp time.Time) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`))
	claims := map[string]any{"iss": "host-id", "iat": time.Now().Unix(), "exp": exp.Unix(), "chan": strings.Join(channels, ",")}
	if user != "" {
		claims["sub"] = user
	}
	b, _ := json.Marshal(claims)
	s := head + "." + base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// rpcClient is a protocol-5 connection.
type rpcClient struct {
	*WSClient
	pings  int
	nextID int
	queue  []map[string]json.RawMessage
}

func rpcURL(srv *Server, token string) string {
	return srv.WSURL + "?token=" + token + "&jsonRpc=true&revision=19"
}

func dialRPC(t *testing.T, srv *Server, user string, channels []string) *rpcClient {
	t.Helper()
	return &rpcClient{WSClient: mustDialWS(t, rpcURL(srv, jwtFor(key45, user, channels, time.Now().Add(time.Hour))))}
}

// next returns the next JSON-RPC object, counting and skipping pings.
func (c *rpcClient) next(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	for len(c.queue) == 0 {
		f := c.Next(t)
		if f.Op != ws.OpText {
			t.Fatalf("frame opcode %v; want text", f.Op)
		}
		if string(f.Data) == "ping" {
			c.pings++
			continue
		}
		var one map[string]json.RawMessage
		if json.Unmarshal(f.Data, &one) == nil {
			c.queue = append(c.queue, one)
			continue
		}
		var many []map[string]json.RawMessage
		if err := json.Unmarshal(f.Data, &many); err != nil {
			t.Fatalf("frame is not JSON-RPC: %q", f.Data)
		}
		c.queue = append(c.queue, many...)
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	return m
}

// notification is the params of an incoming.message.
type notification struct {
	MID  string `json:"mid"`
	Body struct {
		ModuleID string          `json:"module_id"`
		Command  string          `json:"command"`
		Params   json.RawMessage `json:"params"`
	} `json:"body"`
	Sender struct {
		Type int    `json:"type"`
		ID   string `json:"id"`
	} `json:"sender"`
	UserParams json.RawMessage `json:"user_params"`
	Dictionary json.RawMessage `json:"dictionary"`
}

func (c *rpcClient) incoming(t *testing.T) notification {
	t.Helper()
	m := c.next(t)
	if string(m["method"]) != `"incoming.message"` || string(m["jsonrpc"]) != `"2.0"` {
		t.Fatalf("got %v; want an incoming.message notification", m)
	}
	if _, ok := m["id"]; ok {
		t.Errorf("notification carries an id: %s", m["id"])
	}
	var n notification
	if err := json.Unmarshal(m["params"], &n); err != nil {
		t.Fatalf("params %s: %v", m["params"], err)
	}
	return n
}

// call sends a request and returns its response.
func (c *rpcClient) call(t *testing.T, method string, params any) map[string]json.RawMessage {
	t.Helper()
	c.nextID++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": c.nextID})
	c.Send(t, string(b))
	return c.response(t, fmt.Sprint(c.nextID))
}

func (c *rpcClient) response(t *testing.T, id string) map[string]json.RawMessage {
	t.Helper()
	for {
		m := c.next(t)
		if _, ok := m["method"]; ok {
			continue // a notification meanwhile
		}
		if string(m["id"]) != id {
			t.Fatalf("response %v; want id %s", m, id)
		}
		return m
	}
}

func errorCode(m map[string]json.RawMessage) int {
	var e struct{ Code int }
	_ = json.Unmarshal(m["error"], &e)
	return e.Code
}

func TestProtocol5(t *testing.T) {
	for _, e := range engines45 {
		t.Run(e.name, func(t *testing.T) {
			srv := start45(t, e.store(t), nil)
			t.Run("notifications", func(t *testing.T) { rpcNotifications(t, srv) })
			t.Run("methods", func(t *testing.T) { rpcMethods(t, srv) })
			t.Run("client-publish", func(t *testing.T) { rpcClientPublish(t, srv) })
			t.Run("presence", func(t *testing.T) { rpcPresence(t, srv, srv) })
			t.Run("follow-cap", func(t *testing.T) { rpcFollowCap(t, srv) })
			t.Run("backend", func(t *testing.T) { rpcBackend(t, srv) })
			t.Run("tokens", func(t *testing.T) { rpcTokens(t, srv) })
		})
	}
}

// Presence across processes: two servers on one Redis.
func TestProtocol5PresenceAcrossProcesses(t *testing.T) {
	store := engines45[1].store(t)
	a := start45(t, store, nil)
	b := start45(t, store, nil)
	rpcPresence(t, a, b)
}

// Checklist 14, 15: notifications with an object body and a mid; text
// pings every 10 s; pong and mack are accepted.
func rpcNotifications(t *testing.T, srv *Server) {
	p := newPair(t)
	c := dialRPC(t, srv, "", []string{p.priv})
	waitOnline(t, srv, p.priv, true)
	body := command("test", "rpc", 1)
	publish(t, srv, []string{p.priv}, body)
	n := c.incoming(t)
	if !validMID(n.MID) || n.Body.ModuleID != "test" || n.Body.Command != "rpc" || n.Sender.Type != 2 {
		t.Errorf("notification %+v", n)
	}
	c.Send(t, "mack:"+n.MID)
	c.Send(t, "pong")
	// Wait for a keepalive ping, answer it, and the connection stays.
	start := time.Now()
	for c.pings == 0 {
		select {
		case f, ok := <-c.Frames:
			if !ok {
				t.Fatalf("connection closed while waiting for a ping (close code %d)", c.CloseCode())
			}
			if string(f.Data) == "ping" {
				c.pings++
			}
		case <-time.After(16 * time.Second):
			t.Fatalf("no ping within 16 s (waited since %v)", start)
		}
	}
	c.Send(t, "pong")
	publish(t, srv, []string{p.priv}, command("test", "after", 2))
	c2 := c.incoming(t)
	if c2.Body.Command != "after" || c2.MID <= n.MID {
		t.Errorf("after ping: %+v", c2)
	}
	// Resume by mid.
	c.Close()
	publish(t, srv, []string{p.priv}, command("test", "missed", 3))
	c = &rpcClient{WSClient: mustDialWS(t, rpcURL(srv, jwtFor(key45, "", []string{p.priv}, time.Now().Add(time.Hour)))+"&mid="+c2.MID)}
	if m := c.incoming(t); m.Body.Command != "missed" {
		t.Errorf("resumed with %+v; want the missed message", m)
	}
}

// Checklist 16, 20.
func rpcMethods(t *testing.T, srv *Server) {
	c := dialRPC(t, srv, "", []string{newChannelID(t)})
	if r := c.call(t, "ping", map[string]any{}); r["result"] == nil {
		t.Errorf("ping: %v", r)
	}
	if r := c.call(t, "noSuchMethod", map[string]any{}); errorCode(r) != -32601 {
		t.Errorf("unknown method: %v", r)
	}
	if r := c.call(t, "getUsersLastSeen", map[string]any{"userList": "x"}); errorCode(r) != -32602 {
		t.Errorf("wrong params: %v", r)
	}
	c.Send(t, `{"jsonrpc":"2.0","method":`)
	if r := c.response(t, "null"); errorCode(r) != -32700 {
		t.Errorf("malformed JSON: %v", r)
	}
	c.Send(t, `[{"jsonrpc":"2.0","method":"ping","params":{},"id":"a"},{"jsonrpc":"2.0","method":"nope","id":"b"},5]`)
	got := map[string]int{}
	for i := 0; i < 3; i++ {
		m := c.next(t)
		got[string(m["id"])] = errorCode(m)
	}
	if got[`"a"`] != 0 || got[`"b"`] != -32601 || got["null"] != -32600 {
		t.Errorf("batch answers %v", got)
	}
	if r := c.call(t, "listChannels", map[string]any{}); r["result"] == nil {
		t.Errorf("listChannels: %v", r)
	}
}

// Checklist 17.
func rpcClientPublish(t *testing.T, srv *Server) {
	a, b := newPair(t), newPair(t)
	ca := dialRPC(t, srv, "", []string{a.priv + ":" + a.pub})
	cb := dialRPC(t, srv, "", []string{b.priv + ":" + b.pub})
	waitOnline(t, srv, a.priv, true)
	waitOnline(t, srv, b.priv, true)
	body := map[string]any{"module_id": "chat", "command": "hi", "params": map[string]any{"x": 1}}
	r := ca.call(t, "publish", map[string]any{"channelList": []any{b.pub + "." + b.publicSig(key45)}, "body": body})
	if r["error"] != nil {
		t.Fatalf("publish: %v", r)
	}
	n := cb.incoming(t)
	if n.Sender.Type != 1 || n.Sender.ID != a.pub || n.Body.Command != "hi" {
		t.Errorf("receiver got %+v; want hi from client %s", n, a.pub)
	}
	r = ca.call(t, "publish", map[string]any{"channelList": []any{map[string]any{"publicId": b.pub, "signature": b.publicSig(key45)}}, "body": body})
	if r["error"] != nil {
		t.Fatalf("publish with an object descriptor: %v", r)
	}
	cb.incoming(t)
	for name, list := range map[string][]any{
		"unsigned":      {b.pub},
		"bad signature": {b.pub + "." + b.publicSig("other")},
		"private":       {b.priv + "." + sign(key45, b.priv)},
		"none":          {},
	} {
		if r := ca.call(t, "publish", map[string]any{"channelList": list, "body": body}); errorCode(r) != -32602 {
			t.Errorf("%s: %v; want -32602", name, r)
		}
	}
	if r := ca.call(t, "publish", map[string]any{"userList": []int{5}, "body": body}); errorCode(r) != -32602 {
		t.Errorf("userList without a token user: %v; want -32602", r)
	}
}

// Checklist 18, 19: last seen and status changes, watched on other (the
// same server or another process on the same Redis).
func rpcPresence(t *testing.T, srv, other *Server) {
	user := fmt.Sprint(time.Now().UnixNano() % 1000000000)
	watcher := dialRPC(t, other, "1", []string{newChannelID(t)})
	if r := watcher.call(t, "subscribeStatusChange", map[string]any{"userId": json.Number(user)}); r["error"] != nil {
		t.Fatalf("subscribeStatusChange: %v", r)
	}
	lastSeen := func() map[string]int64 {
		r := watcher.call(t, "getUsersLastSeen", map[string]any{"userList": []json.Number{json.Number(user), "999999999999"}})
		var m map[string]int64
		if err := json.Unmarshal(r["result"], &m); err != nil {
			t.Fatalf("getUsersLastSeen: %v", r)
		}
		return m
	}
	if m := lastSeen(); len(m) != 0 {
		t.Errorf("before the user connected: %v; want no entries", m)
	}
	u := dialRPC(t, srv, user, []string{newChannelID(t)})
	n := watcher.incoming(t)
	var st struct {
		UserID int64 `json:"user_id"`
		Online bool  `json:"online"`
	}
	_ = json.Unmarshal(n.Body.Params, &st)
	if n.Body.ModuleID != "online" || n.Body.Command != "userStatusChange" || fmt.Sprint(st.UserID) != user || !st.Online {
		t.Errorf("status change %+v %s; want %s online", n, n.Body.Params, user)
	}
	if m := lastSeen(); len(m) != 1 || m[user] != 0 {
		t.Errorf("online user: %v; want %s: 0", m, user)
	}
	u.Close()
	n = watcher.incoming(t)
	_ = json.Unmarshal(n.Body.Params, &st)
	if n.Body.Command != "userStatusChange" || st.Online {
		t.Errorf("status change %+v %s; want offline", n, n.Body.Params)
	}
	if m := lastSeen(); len(m) != 1 || m[user] < 0 {
		t.Errorf("past user: %v; want seconds for %s", m, user)
	}
	if r := watcher.call(t, "unsubscribeStatusChange", map[string]any{"userId": json.Number(user)}); r["error"] != nil {
		t.Errorf("unsubscribeStatusChange: %v", r)
	}
}

// One connection follows at most 1,000 users' statuses: the next follow
// is refused with -32602 and a reason; unfollowing one makes room.
func rpcFollowCap(t *testing.T, srv *Server) {
	c := dialRPC(t, srv, "", []string{newChannelID(t)})
	follow := func(method string, user int) map[string]json.RawMessage {
		return c.call(t, method, map[string]any{"userId": user})
	}
	for u := 1; u <= 1000; u++ {
		if r := follow("subscribeStatusChange", u); r["error"] != nil {
			t.Fatalf("follow %d: %v", u, r)
		}
	}
	if r := follow("subscribeStatusChange", 1001); errorCode(r) != -32602 || !strings.Contains(string(r["error"]), "at most") {
		t.Fatalf("follow 1001: %s; want -32602 with the limit", r["error"])
	}
	if r := follow("subscribeStatusChange", 7); r["error"] != nil {
		t.Fatalf("following a user already followed: %v", r)
	}
	if r := follow("unsubscribeStatusChange", 7); r["error"] != nil {
		t.Fatalf("unfollow: %v", r)
	}
	if r := follow("subscribeStatusChange", 1001); r["error"] != nil {
		t.Fatalf("follow after an unfollow: %v", r)
	}
}

func postAPI(t *testing.T, srv *Server, body, signature string) Response {
	t.Helper()
	return request(t, http.MethodPost, srv.url("/bitrix/api/")+"?signature="+signature, body,
		map[string]string{"X-HostId": "0123456789abcdef0123456789abcdef", "Content-Type": "application/json"})
}

// Checklist 21, 22: the backend's JSON-RPC over HTTP.
func rpcBackend(t *testing.T, srv *Server) {
	p := newPair(t)
	byChannel := dialRPC(t, srv, "", []string{p.priv})
	u7 := dialRPC(t, srv, "7", []string{newChannelID(t)})
	u8 := dialRPC(t, srv, "8", []string{newChannelID(t)})
	waitOnline(t, srv, p.priv, true)
	// Connected users: wait until both count as online.
	testutil.WaitFor(t, "users 7 and 8 online", func() bool {
		q := `{"jsonrpc":"2.0","method":"getUsersLastSeen","params":{"userList":[7,"8"]}}`
		r := postAPI(t, srv, q, sign(key45, q))
		var ans struct {
			JSONRPC string           `json:"jsonrpc"`
			Result  map[string]int64 `json:"result"`
		}
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &ans) != nil || ans.JSONRPC != "2.0" {
			t.Fatalf("getUsersLastSeen: %d %q", r.Status, r.Body)
		}
		v7, ok7 := ans.Result["7"]
		v8, ok8 := ans.Result["8"]
		return ok7 && v7 == 0 && ok8 && v8 == 0
	})
	body := `[{"jsonrpc":"2.0","method":"publish","params":{"channelList":["` + p.priv + `"],"userList":[7,8],` +
		`"body":{"module_id":"im","command":"message","params":{"text":"hi"},"extra":{"server_time_unix":1}},` +
		`"user_params":{"7":{"mine":"seven"}},"dictionary":{"shared":"all"},"expiry":86400}},` +
		// PHP writes empty maps as [] and user ids from the database as strings.
		`{"jsonrpc":"2.0","method":"publish","params":{"channelList":["` + p.priv + `"],"userList":["8"],` +
		`"body":{"module_id":"im","command":"empty","params":[],"extra":[]},"user_params":[],"dictionary":[],"expiry":86400}}]`
	if r := postAPI(t, srv, body, sign(key45, body+" ")); r.Status != http.StatusForbidden {
		t.Errorf("wrong signature: %d; want 403", r.Status)
	}
	r := postAPI(t, srv, body, sign(key45, body))
	if r.Status != http.StatusOK || !json.Valid([]byte(r.Body)) || r.Body == "" {
		t.Fatalf("publish: %d %q; want 200 with a JSON body", r.Status, r.Body)
	}
	check := func(name string, n notification, userParams string) {
		t.Helper()
		if n.Body.Command != "message" || n.Sender.Type != 2 || string(n.Dictionary) != `{"shared":"all"}` || string(n.UserParams) != userParams {
			t.Errorf("%s got %+v; want the message with user_params %q", name, n, userParams)
		}
	}
	check("channel", byChannel.incoming(t), "")
	check("user 7", u7.incoming(t), `{"mine":"seven"}`)
	check("user 8", u8.incoming(t), "")
	for name, c := range map[string]*rpcClient{"channel": byChannel, "user 8": u8} {
		if n := c.incoming(t); n.Body.Command != "empty" || n.UserParams != nil || n.Dictionary != nil {
			t.Errorf("%s got %+v; want the message with empty maps", name, n)
		}
	}
}

// Checklist 23: tokens.
func rpcTokens(t *testing.T, srv *Server) {
	a, b := newChannelID(t), newChannelID(t)
	c := dialRPC(t, srv, "", []string{a, b})
	waitOnline(t, srv, a, true)
	waitOnline(t, srv, b, true)
	publish(t, srv, []string{b}, command("test", "second", 1))
	if n := c.incoming(t); n.Body.Command != "second" {
		t.Errorf("got %+v", n)
	}
	for name, token := range map[string]string{
		"expired":     jwtFor(key45, "1", []string{a}, time.Now().Add(-time.Hour)),
		"mis-signed":  jwtFor("other", "1", []string{a}, time.Now().Add(time.Hour)),
		"not a token": "abc.def.ghi",
	} {
		_, err := dialWS(t, rpcURL(srv, token))
		var se ws.StatusError
		if err == nil || !asStatus(err, &se) || int(se) != http.StatusUnauthorized {
			t.Errorf("%s token: %v; want HTTP 401", name, err)
		}
	}
}

func asStatus(err error, se *ws.StatusError) bool {
	s, ok := err.(ws.StatusError)
	if ok {
		*se = s
	}
	return ok
}
