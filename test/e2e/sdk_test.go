package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// The official SDK's pull client, in protocol-3 mode (text envelopes), over
// WebSocket and long polling, with unsigned and signed channel ids.
func TestSDKProtocol3(t *testing.T) {
	for _, keyed := range []struct {
		name string
		key  string
	}{
		{"unsigned", ""},
		{"signed", "e2e-secret-key"},
	} {
		t.Run(keyed.name, func(t *testing.T) {
			cfg := map[string]any{}
			if keyed.key != "" {
				cfg["security"] = map[string]any{"key": keyed.key}
			}
			srv := startServer(t, cfg)
			for _, transport := range []string{"websocket", "longpolling"} {
				t.Run(transport+"/receive", func(t *testing.T) {
					sdkReceive(t, srv, transport == "websocket")
				})
				t.Run(transport+"/resume", func(t *testing.T) {
					sdkResume(t, srv, transport == "websocket")
				})
				t.Run(transport+"/shared", func(t *testing.T) {
					sdkShared(t, srv, transport == "websocket")
				})
			}
		})
	}
}

// startSDKOnline starts an SDK client of a fresh channel and waits until
// both the client and the server consider it connected, so that what is
// published next is live for it.
func startSDKOnline(t *testing.T, srv *Server, webSocket bool) (*SDKClient, string) {
	t.Helper()
	id := newChannelID(t)
	opts := srv.SDKOptions(signed(srv.Key, id), 3)
	opts.WebSocketEnabled = webSocket
	c := startSDK(t, opts)
	events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	req := events[len(events)-1]
	want := "websocket"
	if !webSocket {
		want = "longpolling"
	}
	if req.Transport != want {
		t.Fatalf("SDK connects by %s; want %s", req.Transport, want)
	}
	waitOnline(t, srv, id, true)
	return c, id
}

func sdkReceive(t *testing.T, srv *Server, webSocket bool) {
	c, id := startSDKOnline(t, srv, webSocket)
	publish(t, srv, []string{id}, command("test", "hello", 1))
	events := c.WaitCommand(t, "hello")
	checkSDKMessage(t, events[len(events)-1], "hello", 1)
	env := envelopesOf(events)
	if len(env) != 1 || env[0].Channel != id {
		t.Fatalf("envelopes the SDK got: %s; want one on channel %s", eventLines(env), id)
	}
}

// sdkResume checks that a client that went offline gets, when it comes
// back, each message it missed exactly once and in order, then live ones.
func sdkResume(t *testing.T, srv *Server, webSocket bool) {
	c, id := startSDKOnline(t, srv, webSocket)
	publish(t, srv, []string{id}, command("test", "before", 0))
	events := c.WaitCommand(t, "before")
	env := envelopesOf(events)
	if len(env) != 1 {
		t.Fatalf("envelopes before going offline: %s; want one", eventLines(env))
	}
	lastMID := env[0].MID

	c.Send("disconnect")
	if webSocket {
		// The server has dropped the connection, so the next messages
		// are missed, not delivered into a closing socket.
		waitOnline(t, srv, id, false)
	}
	for i := 1; i <= 3; i++ {
		publish(t, srv, []string{id}, command("test", fmt.Sprintf("missed%d", i), i))
	}
	c.Send("connect")
	events = c.WaitCommand(t, "missed3")
	// A long-polling client polls again right after "before"; the
	// reconnection is the first request after the client reports it is
	// connecting again.
	connecting := -1
	for i, e := range events {
		if e.Type == "status" && e.Status == "connect" {
			connecting = i
			break
		}
	}
	if connecting < 0 {
		t.Fatalf("SDK did not report connecting after the connect command; events: %s", eventLines(events))
	}
	publish(t, srv, []string{id}, command("test", "live", 4))
	events = append(events, c.WaitCommand(t, "live")...)
	// A sentinel: the server sends in order, so any repeat of the messages
	// above would arrive before it.
	publish(t, srv, []string{id}, command("test", "sentinel", 5))
	events = append(events, c.WaitCommand(t, "sentinel")...)

	var reconnect *SDKEvent
	for i := connecting; i < len(events); i++ {
		if events[i].Type == "request" {
			reconnect = &events[i]
			break
		}
	}
	if reconnect == nil {
		t.Fatalf("no reconnection seen; events: %s", eventLines(events))
	}
	u, err := url.Parse(reconnect.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("mid"); got != lastMID {
		t.Errorf("SDK reconnected with mid=%q; want %q (URL %s)", got, lastMID, reconnect.URL)
	}

	want := []string{"missed1", "missed2", "missed3", "live", "sentinel"}
	var got []string
	for _, e := range events {
		if e.Type == "message" {
			got = append(got, e.Command)
			checkSDKMessage(t, e, e.Command, len(got))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("messages after reconnecting: %v; want %v", got, want)
	}
	env = envelopesOf(events)
	seen := map[string]bool{lastMID: true}
	for _, e := range env {
		if seen[e.MID] {
			t.Errorf("message %s delivered more than once; envelopes: %s", e.MID, eventLines(env))
		}
		seen[e.MID] = true
		if e.Channel != id {
			t.Errorf("envelope channel %q; want %q", e.Channel, id)
		}
	}
	if len(env) != len(want) {
		t.Errorf("%d envelopes after reconnecting; want %d: %s", len(env), len(want), eventLines(env))
	}
}

func envelopesOf(events []SDKEvent) []SDKEvent {
	var out []SDKEvent
	for _, e := range events {
		if e.Type == "envelope" {
			out = append(out, e)
		}
	}
	return out
}

// checkSDKMessage checks what the SDK handed the application for a body
// made by command("test", cmd, n).
func checkSDKMessage(t *testing.T, e SDKEvent, cmd string, n int) {
	t.Helper()
	if e.ModuleID != "test" || e.Command != cmd {
		t.Errorf("SDK message %s/%s; want test/%s", e.ModuleID, e.Command, cmd)
	}
	var params struct{ N int }
	if err := json.Unmarshal(e.Params, &params); err != nil || params.N != n {
		t.Errorf("SDK message params %s; want {\"n\":%d}", e.Params, n)
	}
	var extra struct {
		ServerTimeUnix int64 `json:"server_time_unix"`
		RevisionWeb    int   `json:"revision_web"`
	}
	if err := json.Unmarshal(e.Extra, &extra); err != nil || extra.ServerTimeUnix == 0 || extra.RevisionWeb != 19 {
		t.Errorf("SDK message extra %s; want the published extra", e.Extra)
	}
}

// sdkShared checks a client with a private and a shared channel, which the
// SDK joins into one CHANNEL_ID as "<private>/<shared>" (URL-encoded "%2F"),
// gets the messages of both.
func sdkShared(t *testing.T, srv *Server, webSocket bool) {
	priv, shared := newChannelID(t), newChannelID(t)
	opts := srv.SDKOptions(signed(srv.Key, priv), 3)
	opts.SharedChannel = signed(srv.Key, shared)
	opts.WebSocketEnabled = webSocket
	c := startSDK(t, opts)
	events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	if u := events[len(events)-1].URL; !strings.Contains(u, "%2F") {
		t.Errorf("SDK URL %s; want the channels joined by %%2F", u)
	}
	waitOnline(t, srv, priv, true)
	waitOnline(t, srv, shared, true)

	publish(t, srv, []string{shared}, command("test", "to-shared", 1))
	events = c.WaitCommand(t, "to-shared")
	checkSDKMessage(t, events[len(events)-1], "to-shared", 1)
	publish(t, srv, []string{priv}, command("test", "to-private", 2))
	events = append(events, c.WaitCommand(t, "to-private")...)
	checkSDKMessage(t, events[len(events)-1], "to-private", 2)
	env := envelopesOf(events)
	if len(env) != 2 || env[0].Channel != shared || env[1].Channel != priv {
		t.Errorf("envelopes %s; want one on %s, then one on %s", eventLines(env), shared, priv)
	}
}
