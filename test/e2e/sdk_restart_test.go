package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// The official SDK in every protocol mode and transport rides out a
// server restart: it gets server_restart, reconnects (the client waits
// 15 s) to the server come back on the same ports with its snapshot, and
// resumes with its mid: what was published before it came back arrives
// once, in order, then live messages.
func TestSDKRestart(t *testing.T) {
	for _, m := range []struct {
		name      string
		version   int
		webSocket bool
	}{
		{"v3-websocket", 3, true},
		{"v3-longpolling", 3, false},
		{"v4-websocket", 4, true},
		{"v4-longpolling", 4, false},
		{"v5-websocket", 5, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			snapshot := map[string]any{"type": "memory", "snapshot": filepath.Join(t.TempDir(), "history.snapshot")}
			first := start45(t, snapshot, nil)
			first.ExitExpected = true
			var c *SDKClient
			var channel string
			if m.version == 3 {
				channel = newChannelID(t)
				opts := first.SDKOptions(signed(key45, channel), 3)
				opts.WebSocketEnabled = m.webSocket
				c = startSDK(t, opts)
				c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
				waitOnline(t, first, channel, true)
			} else {
				var p pair
				c, p = startSDK45(t, first, m.version, m.webSocket, "")
				channel = p.priv
			}
			publish(t, first, []string{channel}, command("test", "before", 1))
			seen := map[string]bool{}
			for _, e := range envelopesOf(c.WaitCommand(t, "before")) {
				seen[e.MID] = true // not to come again
			}

			first.stop(t)
			second := start45(t, snapshot, map[string]any{"servers": []any{map[string]any{
				"name": "e2e", "routes": routes45(), "port": first.Ports[0],
			}}})
			publish(t, second, []string{channel}, command("test", "missed", 2))
			events := c.CollectWithin(t, waitTimeout+20*time.Second, "command missed", func(e SDKEvent) bool {
				return e.Type == "message" && e.Command == "missed"
			})
			publish(t, second, []string{channel}, command("test", "live", 3))
			events = append(events, c.WaitCommand(t, "live")...)

			var got []string
			for _, e := range events {
				switch e.Type {
				case "message":
					if e.ModuleID == "test" {
						got = append(got, e.Command)
					}
				case "envelope":
					if seen[e.MID] {
						t.Errorf("message %s delivered more than once", e.MID)
					}
					seen[e.MID] = true
				}
			}
			if want := []string{"missed", "live"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("messages after the restart: %v; want %v; events: %s", got, want, eventLines(events))
			}
		})
	}
}
