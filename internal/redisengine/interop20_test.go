package redisengine

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/redis/rueidis"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// The original push server 2.0 is not part of this repository. To run
// TestInterop20, extract its tree (bitrix-tools/env-docker,
// sources/bxpush30/push-server-0.4.0.tar.gz), install its dependencies
// there (npm ci --omit=dev), and name the tree:
//
//	PUSHPULL_PS20_DIR=/path/to/push-server go test -run Interop20 ./internal/redisengine/
//
// With PUSHPULL_PS20_CAPTURE=<dir> as well, the test writes the values
// the original stored and published into <dir> (testdata/layout20 holds
// such a capture).
const ps20Key = "interop-secret"

// ps20 is one running process of the original.
type ps20 struct {
	url string
	uid string
	out *testutil.SyncBuffer
}

func startPS20(t *testing.T, dir string, redisPort int, uid string) *ps20 {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	port := redistest.FreePort(t)
	tmp := t.TempDir()
	cfg := map[string]any{
		"servers": []any{map[string]any{
			"name": uid, "port": port, "hostname": "127.0.0.1",
			"routes": map[string]any{"pub": "/bitrix/pub/", "sub": "/bitrix/sub/", "rest": "/bitrix/rest/", "stat": "/server-stat/"},
		}},
		"clusterMode":     true,
		"processUniqueId": uid,
		"storage": map[string]any{
			"type": "redis", "host": "127.0.0.1", "port": redisPort,
			"messageTTL": 86400, "channelTTL": 86400, "onlineTTL": 120, "onlineDelta": 10,
		},
		"security": map[string]any{"key": ps20Key},
		"debug":    map[string]any{"folderName": tmp},
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(tmp, "config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "server.js", "--config", file)
	cmd.Dir = dir
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("push server 2.0 %s output:\n%s", uid, out.String())
		}
	})
	p := &ps20{url: "http://127.0.0.1:" + strconv.Itoa(port), uid: uid, out: out}
	testutil.WaitFor(t, "push server 2.0 listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// post publishes body to the private channels ids through the original's
// text publish route.
func (p *ps20) post(t *testing.T, body string, expiry int, ids ...string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/bitrix/pub/?CHANNEL_ID="+strings.Join(ids, "/"), strings.NewReader(body))
	req.Header.Set("Message-Expiry", strconv.Itoa(expiry))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish through the original: %s", resp.Status)
	}
}

// ps20Client is a binaryMode WebSocket subscriber of the original.
type ps20Client struct {
	t    *testing.T
	conn net.Conn
}

func (p *ps20) dial(t *testing.T, channel, mid string) *ps20Client {
	t.Helper()
	signer, _ := protocol.NewSigner(ps20Key, "")
	q := "CHANNEL_ID=" + channel + "." + signer.Sign(channel) + "&binaryMode=true"
	if mid != "" {
		q += "&mid=" + mid
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/bitrix/sub/?"+q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &ps20Client{t: t, conn: conn}
}

// read returns the messages of the frames the client gets until it holds
// at least n.
func (c *ps20Client) read(n int) []*pb.OutgoingMessage {
	c.t.Helper()
	var out []*pb.OutgoingMessage
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(out) < n {
		data, op, err := wsutil.ReadServerData(c.conn)
		if err != nil {
			c.t.Fatalf("read from the original after %d messages: %v", len(out), err)
		}
		if op != ws.OpBinary {
			continue
		}
		var batch pb.ResponseBatch
		if err := proto.Unmarshal(data, &batch); err != nil {
			c.t.Fatal(err)
		}
		for _, r := range batch.GetResponses() {
			out = append(out, r.GetOutgoingMessages().GetMessages()...)
		}
	}
	return out
}

// publish sends a client's message to the public channels pubs.
func (c *ps20Client) publish(body string, pubs ...string) {
	c.t.Helper()
	signer, _ := protocol.NewSigner(ps20Key, "")
	var rcv []*pb.Receiver
	for _, p := range pubs {
		id, _ := hex.DecodeString(p)
		sig, _ := hex.DecodeString(signer.Sign("public:" + p))
		rcv = append(rcv, &pb.Receiver{Id: id, Signature: sig})
	}
	b, _ := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
		IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
			Receivers: rcv, Body: proto.String(body), Expiry: proto.Uint32(600),
		}}},
	}}}})
	if err := wsutil.WriteClientBinary(c.conn, b); err != nil {
		c.t.Fatal(err)
	}
}

func midsOf(ms []*pb.OutgoingMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = hex.EncodeToString(m.GetId())
	}
	return out
}

// capture keeps every pub/sub payload the original's processes publish.
type capture struct {
	mu   chan struct{}
	msgs []rueidis.PubSubMessage
}

func captureOriginal(t *testing.T, addr, except string) *capture {
	c := &capture{mu: make(chan struct{}, 1)}
	c.mu <- struct{}{}
	client := raw(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	subscribed := make(chan struct{})
	go func() {
		defer close(done)
		dc, release := client.Dedicate()
		defer release()
		wait := dc.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(m rueidis.PubSubMessage) {
				if m.Channel == "pushserver:"+except {
					return
				}
				<-c.mu
				c.msgs = append(c.msgs, m)
				c.mu <- struct{}{}
			},
			OnSubscription: func(s rueidis.PubSubSubscription) {
				if s.Kind == "psubscribe" {
					close(subscribed)
				}
			},
		})
		if err := dc.Do(ctx, dc.B().Psubscribe().Pattern("pushserver:*").Build()).Error(); err != nil {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("capture not subscribed")
	}
	return c
}

func (c *capture) payloads() []string {
	<-c.mu
	defer func() { c.mu <- struct{}{} }()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Message
	}
	return out
}

func TestInterop20(t *testing.T) {
	dir := os.Getenv("PUSHPULL_PS20_DIR")
	if dir == "" {
		t.Skip("PUSHPULL_PS20_DIR is not set: no original push server 2.0 to run beside pushpull (see interop20_test.go)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "redis")); err != nil {
		t.Fatalf("PUSHPULL_PS20_DIR=%s: no node_modules/redis (run npm ci --omit=dev there): %v", dir, err)
	}
	keep := os.Getenv("PUSHPULL_PS20_CAPTURE")
	ctx := context.Background()
	r := redistest.Start(t)
	rc := raw(t, r.Addr())

	o := opts(r.Addr())
	o.Layout = Layout20
	o.ProcessUniqueID = "pushpull-a"
	o.TTLs.Default = -1 // as the original: no expiry, not stored
	e := newEngine(t, o)
	waitReady(t, e)
	seen := captureOriginal(t, r.Addr(), o.ProcessUniqueID)
	orig := startPS20(t, dir, r.Port, "ps20-a")
	testutil.WaitFor(t, "the original subscribed", func() bool {
		return patternSubscribers(t, rc) >= 3 // pushpull, the capture, the original
	})

	c20A := "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
	c20B := "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
	privC, pubC := "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"

	t.Run("the original publishes, pushpull delivers and serves it", func(t *testing.T) {
		rec := newRecorder(e.hub, c20A)
		body := `{"module_id":"im","command":"message","params":{"text":"from 2.0"}}`
		orig.post(t, body, 600, c20A)
		got := rec.wait(t, 1)
		m := got[0]
		if string(m.Body) != body || !slices.Equal(m.Channels, []string{c20A}) || m.EffectiveSender().Type != protocol.SenderBackend || !protocol.ValidMID(m.MID) {
			t.Fatalf("delivered %+v", m)
		}
		hist, err := e.Since(ctx, []string{c20A}, "")
		if err != nil || len(hist) != 1 || hist[0].MID != m.MID || string(hist[0].Body) != body || !slices.Equal(hist[0].Channels, []string{c20A}) {
			t.Fatalf("history %+v, %v", hist, err)
		}
		if last, err := e.Last(ctx, []string{c20A}); err != nil || last != m.MID {
			t.Fatalf("last %q, %v", last, err)
		}
		if keep != "" {
			stored, err := rc.Do(ctx, rawCmd("GET", "message:"+binID(m.MID))).ToString()
			if err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, "the original's payload captured", func() bool { return len(seen.payloads()) >= 1 })
			writeCapture(t, keep, "backend-stored.bin", stored)
			writeCapture(t, keep, "backend-published.bin", seen.payloads()[0])
		}
	})

	t.Run("pushpull publishes, the original delivers and serves it", func(t *testing.T) {
		first := orig.dial(t, c20B, "")
		testutil.WaitFor(t, "the original's subscriber online for pushpull", func() bool {
			n, err := e.Online(ctx, []string{c20B})
			return err == nil && n[0] == 1
		})
		var sent []string
		for i := range 3 {
			m := &protocol.Message{Channels: []string{c20B}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Expiry: 600}
			if err := e.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, m.MID)
		}
		got := first.read(3)
		if !slices.Equal(midsOf(got), sent) || got[0].GetBody() != `{"n":0}` || got[0].GetSender().GetType() != pb.SenderType_UNKNOWN && got[0].GetSender().GetType() != pb.SenderType_BACKEND {
			t.Fatalf("the original delivered %v, want %v", got, sent)
		}
		// Then the original publishes too: a client resuming from the
		// first message, from either server, gets everything after it.
		orig.post(t, `{"n":3}`, 600, c20B)
		orig.post(t, `{"n":4}`, 600, c20B)
		all := append(sent, midsOf(first.read(2))...)
		again := orig.dial(t, c20B, sent[0])
		if got := midsOf(again.read(4)); !slices.Equal(got, all[1:]) {
			t.Fatalf("the original resumed with %v, want %v", got, all[1:])
		}
		hist, err := e.Since(ctx, []string{c20B}, sent[0])
		if err != nil || !slices.Equal(mids(hist), all[1:]) {
			t.Fatalf("pushpull resumed with %v (%v), want %v", mids(hist), err, all[1:])
		}
		for i, m := range hist {
			if want := fmt.Sprintf(`{"n":%d}`, i+1); string(m.Body) != want || !slices.Equal(m.Channels, []string{c20B}) {
				t.Fatalf("history %d: %s on %v, want %s", i, m.Body, m.Channels, want)
			}
		}
	})

	t.Run("public channels and client publishes", func(t *testing.T) {
		rec := newRecorder(e.hub, privC, pubC)
		c := orig.dial(t, privC+":"+pubC, "")
		testutil.WaitFor(t, "online", func() bool {
			n, err := e.Online(ctx, []string{pubC})
			return err == nil && n[0] == 1
		})
		// A client of the original publishes to its public channel:
		// delivered to itself by the original, and by pushpull.
		c.publish(`{"from":"2.0 client"}`, pubC)
		own := c.read(1)[0]
		if own.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(own.GetSender().GetId()) != pubC {
			t.Fatalf("the original delivered %v", own)
		}
		m := rec.wait(t, 1)[0]
		if m.MID != hex.EncodeToString(own.GetId()) || string(m.Body) != `{"from":"2.0 client"}` ||
			m.Sender != (protocol.Sender{Type: protocol.SenderClient, ID: pubC}) || !slices.Equal(m.Channels, []string{pubC}) {
			t.Fatalf("pushpull delivered %+v", m)
		}
		if keep != "" {
			stored, err := rc.Do(ctx, rawCmd("GET", "message:"+binID(m.MID))).ToString()
			if err != nil {
				t.Fatal(err)
			}
			ps := seen.payloads()
			writeCapture(t, keep, "client-stored.bin", stored)
			writeCapture(t, keep, "client-published.bin", ps[len(ps)-1])
		}
		// A pushpull client's message to the same public channel.
		pm := &protocol.Message{Channels: []string{pubC}, Body: []byte(`{"from":"pushpull client"}`), Expiry: 600,
			Sender: protocol.Sender{Type: protocol.SenderClient, ID: pubC}}
		if err := e.Publish(ctx, pm); err != nil {
			t.Fatal(err)
		}
		got := c.read(1)[0]
		if hex.EncodeToString(got.GetId()) != pm.MID || got.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(got.GetSender().GetId()) != pubC {
			t.Fatalf("the original delivered %v", got)
		}
		// Both are in the public channel's history on either side.
		hist, err := e.Since(ctx, []string{privC, pubC}, "")
		if err != nil || !slices.Equal(mids(hist), []string{m.MID, pm.MID}) {
			t.Fatalf("pushpull history %v, %v", mids(hist), err)
		}
		resumed := orig.dial(t, privC+":"+pubC, strings.Repeat("0", 26))
		if got := midsOf(resumed.read(2)); !slices.Equal(got, []string{m.MID, pm.MID}) {
			t.Fatalf("the original's history %v", got)
		}
	})

	t.Run("what the original publishes while pushpull is not subscribed", func(t *testing.T) {
		rec := newRecorder(e.hub, c20A)
		before := len(rec.messages())
		release := holdSubscriptions(e)
		if err := rc.Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "pushpull not ready", func() bool { return e.Ready(ctx) != nil })
		for i := range 3 {
			orig.post(t, fmt.Sprintf(`{"gap":%d}`, i), 600, c20A)
		}
		release()
		waitReady(t, e)
		got := rec.wait(t, before+3)[before:]
		for i, m := range got {
			if want := fmt.Sprintf(`{"gap":%d}`, i); string(m.Body) != want || !slices.Equal(m.Channels, []string{c20A}) {
				t.Fatalf("recovered %d: %s on %v, want %s", i, m.Body, m.Channels, want)
			}
		}
	})

	t.Run("process stats", func(t *testing.T) {
		testutil.WaitFor(t, "both processes in the stats", func() bool {
			st, err := e.Stats(ctx)
			if err != nil {
				return false
			}
			var ids []string
			for _, s := range st {
				ids = append(ids, s.ProcessUniqueID)
			}
			return slices.Contains(ids, "ps20-a") && slices.Contains(ids, "pushpull-a")
		})
		resp, err := http.Get(orig.url + "/server-stat/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`"processUniqueId":"pushpull-a"`)) {
			t.Fatalf("the original's stats: %s", b)
		}
		if keep != "" {
			s, err := rc.Do(ctx, rawCmd("HGET", "stats", "ps20-a")).ToString()
			if err != nil {
				t.Fatal(err)
			}
			writeCapture(t, keep, "stats.json", s)
		}
	})
}

// patternSubscribers counts the connections with a pattern subscription.
func patternSubscribers(t *testing.T, rc rueidis.Client) int {
	list, err := rc.Do(context.Background(), rawCmd("CLIENT", "LIST")).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "psub=") && f != "psub=0" {
				n++
			}
		}
	}
	return n
}

func writeCapture(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
