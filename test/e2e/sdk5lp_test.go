package e2e

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The official SDK's pull client in protocol 5 over long polling
// (websocket_enabled false), beyond what TestSDKProtocols45 runs for every
// mode (receive, resume, publish): the acknowledgements it POSTs, a
// connection reading two channels (by token and by CHANNEL_ID), and a
// server restart.
func TestSDKProtocol5LongPolling(t *testing.T) {
	srv := start45(t, map[string]any{"type": "memory"}, nil)
	t.Run("acknowledgements", func(t *testing.T) { sdk5Acks(t, srv) })
	t.Run("two-channels/token", func(t *testing.T) { sdk5TwoChannels(t, srv, true) })
	t.Run("two-channels/CHANNEL_ID", func(t *testing.T) { sdk5TwoChannels(t, srv, false) })
	t.Run("restart", sdk5Restart)
}

// sdk5Options are the options of a protocol-5 long-polling client of p
// on srv's routes, or on base (a proxy of them) when it is set.
func sdk5Options(srv *Server, base string, p pair, token bool) SDKOptions {
	opts := srv.SDKOptions(p.entry(key45), 5)
	opts.WebSocketEnabled = false
	publishURL := srv.url("/bitrix/pubweb/")
	if base != "" {
		opts.LongPolling, publishURL = base+"/bitrix/sub/", base+"/bitrix/pubweb/"
	}
	opts.Extra = map[string]any{"publish_enabled": true, "publish": publishURL}
	if token {
		opts.Extra["jwt"] = jwtFor(key45, "", []string{p.priv + ":" + p.pub}, time.Now().Add(time.Hour))
	}
	return opts
}

// firstPoll waits for the client's first long poll and checks it asks
// for JSON-RPC.
func firstPoll(t *testing.T, c *SDKClient) string {
	t.Helper()
	events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
	u := events[len(events)-1]
	if u.Transport != "longpolling" || !strings.Contains(u.URL, "jsonRpc=true") {
		t.Fatalf("SDK connects with %s %s; want a long poll with jsonRpc=true", u.Transport, u.URL)
	}
	return u.URL
}

// After each message the client POSTs mack:<mid> to server.publish (the
// rest route) with its CHANNEL_ID; each is answered 200, and the poll it
// makes next carries that mid and gets nothing again.
func sdk5Acks(t *testing.T, srv *Server) {
	p := newPair(t)
	c := startSDK(t, sdk5Options(srv, "", p, true))
	firstPoll(t, c)
	waitOnline(t, srv, p.priv, true)
	for i := 1; i <= 3; i++ {
		publish(t, srv, []string{p.priv}, command("test", fmt.Sprintf("m%d", i), i))
	}
	events := c.WaitCommand(t, "m3")
	env := envelopesOf(events)
	if len(env) != 3 {
		t.Fatalf("envelopes %s; want three", eventLines(env))
	}
	for i, e := range env {
		if !validMID(e.MID) {
			t.Errorf("envelope %d: mid %q", i, e.MID)
		}
	}
	// Each message's acknowledgement is a POST of its own; they may be
	// answered in any order.
	acked := map[string]bool{}
	note := func(e SDKEvent) bool {
		if e.Type == "post" {
			acked[e.Body] = true
		}
		for _, m := range env {
			if !acked["mack:"+m.MID] {
				return false
			}
		}
		return true
	}
	done := false
	for _, e := range events {
		done = note(e)
	}
	if !done {
		events = append(events, c.Collect(t, "the acknowledgements of the three messages", note)...)
	}
	for _, e := range events {
		if e.Type != "post" {
			continue
		}
		u, err := url.Parse(e.URL)
		if err != nil || u.Path != "/bitrix/pubweb/" || u.Query().Get("CHANNEL_ID") != p.entry(key45) {
			t.Errorf("POST to %s; want server.publish with the client's CHANNEL_ID", e.URL)
		}
		if e.Code != http.StatusOK || !strings.HasPrefix(e.Body, "mack:") {
			t.Errorf("POST %q answered %d; want an acknowledgement answered 200", e.Body, e.Code)
		}
	}
	// Nothing is delivered twice: a sentinel comes next, alone.
	publish(t, srv, []string{p.priv}, command("test", "sentinel", 4))
	events = c.WaitCommand(t, "sentinel")
	if env := envelopesOf(events); len(env) != 1 {
		t.Errorf("envelopes before the sentinel's: %s; want only its own", eventLines(env))
	}
	if strings.Contains(c.Stderr(), "json rpc") {
		t.Errorf("SDK errors: %s", c.Stderr())
	}
}

// A client with a private and a shared channel gets the messages of both
// on one long poll: by a token listing both, or by CHANNEL_ID
// "<private>:<public>.<sig>/<shared>.<sig>".
func sdk5TwoChannels(t *testing.T, srv *Server, token bool) {
	p, shared := newPair(t), newChannelID(t)
	opts := sdk5Options(srv, "", p, token)
	opts.SharedChannel = signed(key45, shared)
	if token {
		opts.Extra["jwt"] = jwtFor(key45, "", []string{p.priv + ":" + p.pub, shared}, time.Now().Add(time.Hour))
	}
	c := startSDK(t, opts)
	u := firstPoll(t, c)
	if token != strings.Contains(u, "token=") || !token && !strings.Contains(u, "%2F") {
		t.Errorf("SDK URL %s; want the channels by %s", u, map[bool]string{true: "token", false: "CHANNEL_ID joined by %2F"}[token])
	}
	waitOnline(t, srv, p.priv, true)
	waitOnline(t, srv, shared, true)
	publish(t, srv, []string{shared}, command("test", "to-shared", 1))
	events := c.WaitCommand(t, "to-shared")
	checkSDKMessage(t, events[len(events)-1], "to-shared", 1)
	publish(t, srv, []string{p.priv}, command("test", "to-private", 2))
	events = append(events, c.WaitCommand(t, "to-private")...)
	checkSDKMessage(t, events[len(events)-1], "to-private", 2)
	publish(t, srv, []string{p.priv, shared}, command("test", "to-both", 3))
	events = append(events, c.WaitCommand(t, "to-both")...)
	if env := envelopesOf(events); len(env) != 3 {
		t.Errorf("envelopes %s; want three, the one to both channels once", eventLines(env))
	}
}

// switchProxy forwards HTTP to the server it is pointed at, so that a
// client keeps its URLs across a server restart (each server binds a port
// of its own).
type switchProxy struct {
	target atomic.Pointer[url.URL]
	*httptest.Server
}

func newSwitchProxy(t *testing.T) *switchProxy {
	p := &switchProxy{}
	p.Server = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.target.Load())
			r.Out.Host = r.In.Host
		},
		// A server that is gone is answered 502, which is all the
		// client needs to know.
		ErrorLog: log.New(io.Discard, "", 0),
	})
	t.Cleanup(p.Close)
	return p
}

func (p *switchProxy) to(srv *Server) {
	p.target.Store(&url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(srv.Ports[0])})
}

// A server restart: the held poll is answered with server_restart, in
// JSON-RPC; the client reconnects on its own (15 s later, as it does for
// that command) to the server that took over, with the mid of that
// command, and gets what was published meanwhile, then live messages,
// each once.
func sdk5Restart(t *testing.T) {
	store := map[string]any{"type": "memory", "snapshot": filepath.Join(t.TempDir(), "history.snapshot")}
	first := start45(t, store, nil)
	proxy := newSwitchProxy(t)
	proxy.to(first)
	p := newPair(t)
	c := startSDK(t, sdk5Options(first, proxy.URL, p, true))
	// The stop finds the client's first poll held (a poll sent after
	// the stop began would meet a closed port; the first is the only
	// one, so being online is being held).
	firstPoll(t, c)
	waitOnline(t, first, p.priv, true)

	first.ExitExpected = true
	first.stop(t)
	events := c.WaitCommand(t, "server_restart")
	env := envelopesOf(events)
	restart := env[len(env)-1].MID
	if !validMID(restart) {
		t.Fatalf("server_restart came with mid %q; envelopes %s", restart, eventLines(env))
	}

	second := start45(t, store, nil)
	proxy.to(second)
	publish(t, second, []string{p.priv}, command("test", "meanwhile", 1))
	events = c.CollectWithin(t, 15*time.Second+waitTimeout, "the message published during the restart",
		func(e SDKEvent) bool { return e.Type == "message" && e.Command == "meanwhile" })
	publish(t, second, []string{p.priv}, command("test", "live", 2))
	events = append(events, c.WaitCommand(t, "live")...)

	var reconnect string
	for _, e := range events {
		if e.Type == "request" {
			reconnect = e.URL
			break
		}
	}
	if u, err := url.Parse(reconnect); err != nil || u.Query().Get("mid") != restart || u.Query().Get("jsonRpc") != "true" {
		t.Errorf("SDK reconnected with %q; want a JSON-RPC long poll with mid=%s", reconnect, restart)
	}
	var got []string
	for _, e := range events {
		if e.Type == "message" {
			got = append(got, e.Command)
		}
	}
	if fmt.Sprint(got) != "[meanwhile live]" {
		t.Errorf("messages after the restart: %v; want [meanwhile live]", got)
	}
	if env := envelopesOf(events); len(env) != 2 {
		t.Errorf("envelopes after the restart: %s; want two", eventLines(env))
	}
}
