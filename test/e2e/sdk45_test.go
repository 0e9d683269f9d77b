package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The official SDK's pull client in protocol 4 (protobuf, over WebSocket
// and long polling) and protocol 5 (JSON-RPC with a JWT, over WebSocket
// and long polling): it receives, resumes after a reconnect, and
// publishes to another client's public channel.
func TestSDKProtocols45(t *testing.T) {
	for _, e := range engines45 {
		t.Run(e.name, func(t *testing.T) {
			srv := start45(t, e.store(t), nil)
			for _, m := range []struct {
				name      string
				version   int
				webSocket bool
			}{
				{"v4-websocket", 4, true},
				{"v4-longpolling", 4, false},
				{"v5-websocket", 5, true},
				{"v5-longpolling", 5, false},
			} {
				t.Run(m.name+"/receive", func(t *testing.T) {
					c, p := startSDK45(t, srv, m.version, m.webSocket, "")
					publish(t, srv, []string{p.priv}, command("test", "hello", 1))
					events := c.WaitCommand(t, "hello")
					checkSDKMessage(t, events[len(events)-1], "hello", 1)
				})
				t.Run(m.name+"/resume", func(t *testing.T) {
					sdkResume45(t, srv, m.version, m.webSocket)
				})
				t.Run(m.name+"/publish", func(t *testing.T) {
					sdkPublish45(t, srv, m.version, m.webSocket)
				})
				t.Run(m.name+"/shared", func(t *testing.T) {
					sdkShared45(t, srv, m.version, m.webSocket)
				})
				if m.version == 5 && m.webSocket {
					t.Run(m.name+"/users", func(t *testing.T) { sdkUsers5(t, srv) })
				}
			}
		})
	}
}

// startSDK45 starts an SDK client of a fresh channel pair and waits until
// the server counts it online. user, when set, is the token's subject
// (protocol 5).
func startSDK45(t *testing.T, srv *Server, version int, webSocket bool, user string) (*SDKClient, pair) {
	t.Helper()
	p := newPair(t)
	opts := srv.SDKOptions(p.entry(key45), version)
	opts.WebSocketEnabled = webSocket
	// Long-polling clients publish by POSTing to the publish URL.
	opts.Extra = map[string]any{"publish_enabled": true, "publish": srv.url("/bitrix/pubweb/")}
	if version >= 5 {
		opts.Extra["jwt"] = jwtFor(key45, user, []string{p.priv + ":" + p.pub}, time.Now().Add(time.Hour))
	}
	c := startSDK(t, opts)
	events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	u := events[len(events)-1].URL
	want := map[int]string{4: "binaryMode=true", 5: "jsonRpc=true"}[version]
	if !strings.Contains(u, want) {
		t.Fatalf("SDK URL %s; want %s", u, want)
	}
	waitOnline(t, srv, p.priv, true)
	return c, p
}

// sdkShared45: a client of two channels (private and shared, as the
// config gives them) gets what is published to either.
func sdkShared45(t *testing.T, srv *Server, version int, webSocket bool) {
	p, shared := newPair(t), newPair(t)
	opts := srv.SDKOptions(p.entry(key45), version)
	opts.SharedChannel = shared.entry(key45)
	opts.WebSocketEnabled = webSocket
	if version >= 5 {
		opts.Extra = map[string]any{"jwt": jwtFor(key45, "", []string{p.priv + ":" + p.pub, shared.priv + ":" + shared.pub}, time.Now().Add(time.Hour))}
	}
	c := startSDK(t, opts)
	c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	waitOnline(t, srv, p.priv, true)
	waitOnline(t, srv, shared.priv, true)
	publish(t, srv, []string{shared.priv}, command("test", "to-shared", 1))
	events := c.WaitCommand(t, "to-shared")
	checkSDKMessage(t, events[len(events)-1], "to-shared", 1)
	publish(t, srv, []string{p.priv}, command("test", "to-private", 2))
	events = c.WaitCommand(t, "to-private")
	checkSDKMessage(t, events[len(events)-1], "to-private", 2)
}

func sdkResume45(t *testing.T, srv *Server, version int, webSocket bool) {
	c, p := startSDK45(t, srv, version, webSocket, "")
	publish(t, srv, []string{p.priv}, command("test", "before", 0))
	env := envelopesOf(c.WaitCommand(t, "before"))
	if len(env) != 1 || !validMID(env[0].MID) {
		t.Fatalf("envelopes before going offline: %s; want one with a mid", eventLines(env))
	}
	lastMID := env[0].MID
	c.Send("disconnect")
	c.Collect(t, "going offline", func(e SDKEvent) bool { return e.Type == "status" && e.Status == "offline" })
	for i := 1; i <= 3; i++ {
		publish(t, srv, []string{p.priv}, command("test", fmt.Sprintf("missed%d", i), i))
	}
	c.Send("connect")
	events := c.WaitCommand(t, "missed3")
	publish(t, srv, []string{p.priv}, command("test", "live", 4))
	events = append(events, c.WaitCommand(t, "live")...)

	var reconnect string
	for _, e := range events {
		if e.Type == "request" {
			reconnect = e.URL
			break
		}
	}
	u, err := url.Parse(reconnect)
	if err != nil || u.Query().Get("mid") != lastMID {
		t.Errorf("SDK reconnected with %q; want mid=%s", reconnect, lastMID)
	}
	var got []string
	for _, e := range events {
		if e.Type == "message" {
			got = append(got, e.Command)
			checkSDKMessage(t, e, e.Command, len(got))
		}
	}
	if want := []string{"missed1", "missed2", "missed3", "live"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("messages after reconnecting: %v; want %v", got, want)
	}
	seen := map[string]bool{lastMID: true}
	for _, e := range envelopesOf(events) {
		if seen[e.MID] {
			t.Errorf("message %s delivered more than once", e.MID)
		}
		seen[e.MID] = true
	}
}

// sdkPublish45: client A publishes (over its WebSocket, or by HTTP to the
// client publish route when long polling) to B's public channel with the
// descriptor "<publicId>.<signature>" from publicChannels; B gets it as a
// client event from A. A protocol-5 client sends its JSON-RPC requests
// (sendMessageToChannels and the like) on its WebSocket connector only,
// so over long polling it publishes with sendMessageBatch, which POSTs
// the JSON-RPC batch to server.publish.
func sdkPublish45(t *testing.T, srv *Server, version int, webSocket bool) {
	a, pa := startSDK45(t, srv, version, webSocket, "")
	b, pb := startSDK45(t, srv, version, webSocket, "")
	cmd, _ := json.Marshal(map[string]any{
		"channels": []string{pb.pub + "." + pb.publicSig(key45)},
		"module":   "chat", "command": "typing", "params": map[string]any{"n": 1},
	})
	how := "publish "
	if version >= 5 && !webSocket {
		how = "publishbatch "
	}
	a.Send(how + string(cmd))
	a.Collect(t, "published", func(e SDKEvent) bool {
		if e.Type == "publish_failed" {
			t.Fatalf("publish failed: %s", e.Line)
		}
		return e.Type == "published"
	})
	events := b.WaitCommand(t, "typing")
	m := events[len(events)-1]
	var extra struct {
		Sender struct {
			Type int    `json:"type"`
			ID   string `json:"id"`
		} `json:"sender"`
	}
	_ = json.Unmarshal(m.Extra, &extra)
	if m.ModuleID != "chat" || extra.Sender.Type != 1 || extra.Sender.ID != pa.pub {
		t.Errorf("B got %s; want chat/typing from client %s", m.Line, pa.pub)
	}
}

// sdkUsers5: the SDK's user features in protocol 5: following a user's
// status, publishing to a user, asking last-seen times.
func sdkUsers5(t *testing.T, srv *Server) {
	watcherID := fmt.Sprint(100000 + time.Now().UnixNano()%100000)
	userID := fmt.Sprint(200000 + time.Now().UnixNano()%100000)
	w, _ := startSDK45(t, srv, 5, true, watcherID)
	w.WaitStatus(t, "online")
	w.Send("watch " + userID)
	w.Collect(t, "watching", func(e SDKEvent) bool { return e.Type == "watching" })

	u, _ := startSDK45(t, srv, 5, true, userID)
	status := func(online bool) {
		t.Helper()
		w.Collect(t, fmt.Sprintf("user %s online=%v", userID, online), func(e SDKEvent) bool {
			if e.Type != "user_status" {
				return false
			}
			var s struct {
				UserID   json.Number `json:"userId"`
				IsOnline bool        `json:"isOnline"`
			}
			_ = json.Unmarshal([]byte(e.Line), &s)
			if s.UserID.String() != userID || s.IsOnline != online {
				t.Fatalf("status event %s; want user %s online=%v", e.Line, userID, online)
			}
			return true
		})
	}
	status(true)

	cmd, _ := json.Marshal(map[string]any{"users": []json.Number{json.Number(userID)}, "module": "im", "command": "poke", "params": map[string]any{"n": 1}})
	w.Send("publish " + string(cmd))
	w.Collect(t, "published", func(e SDKEvent) bool {
		if e.Type == "publish_failed" {
			t.Fatalf("publish to a user failed: %s", e.Line)
		}
		return e.Type == "published"
	})
	events := u.WaitCommand(t, "poke")
	if m := events[len(events)-1]; m.ModuleID != "im" {
		t.Errorf("user got %s", m.Line)
	}

	w.Send("lastseen [" + userID + "]")
	w.Collect(t, "last seen", func(e SDKEvent) bool { return e.Type == "lastseen" })

	u.Send("disconnect")
	status(false)
}
