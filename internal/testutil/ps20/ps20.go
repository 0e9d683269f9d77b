// Package ps20 runs the original Bitrix push server 2.0 (Node.js) for
// tests that check pushpull against it on one Redis. The original is not
// part of this repository: tests find an extracted tree of it
// (bitrix-tools/env-docker, sources/bxpush30/push-server-0.4.0.tar.gz, with
// `npm ci --omit=dev` run in it) through PUSHPULL_PS20_DIR, and are
// skipped without it.
package ps20

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// Env names the variable holding the original's tree.
const Env = "PUSHPULL_PS20_DIR"

// Dir returns the original's tree, skipping the test when none is named,
// and failing it when the tree has no dependencies installed.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(Env)
	if dir == "" {
		t.Skip(Env + " is not set: no original push server 2.0 to run beside pushpull (see internal/testutil/ps20)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "redis")); err != nil {
		t.Fatalf("%s=%s: no node_modules/redis (run npm ci --omit=dev there): %v", Env, dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	return dir
}

// Process is one running process of the original, serving the pub, sub,
// rest and stat routes at the appliance's paths.
type Process struct {
	URL string // http://127.0.0.1:port
	UID string // its processUniqueId
	Key string // its security key

	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

// Start runs a process of the original in dir on the Redis at
// 127.0.0.1:redisPort, with processUniqueId uid and security key key. It
// is stopped when the test ends.
func Start(t testing.TB, dir string, redisPort int, uid, key string) *Process {
	t.Helper()
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
		"security": map[string]any{"key": key},
		"debug":    map[string]any{"folderName": tmp},
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(tmp, "config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "server.js", "--config", file)
	cmd.Dir = dir
	p := &Process{URL: "http://127.0.0.1:" + strconv.Itoa(port), UID: uid, Key: key, cmd: cmd, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("push server 2.0 %s output:\n%s", uid, p.out.String())
		}
	})
	testutil.WaitFor(t, "push server 2.0 listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// Stop ends the process, as an admin stopping it to replace it would.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Post publishes body to the private channels ids through the original's
// text publish route, with a Message-Expiry of expiry seconds.
func (p *Process) Post(t testing.TB, body string, expiry int, ids ...string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/bitrix/pub/?CHANNEL_ID="+strings.Join(ids, "/"), strings.NewReader(body))
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

// Client is a binaryMode WebSocket subscriber of the original.
type Client struct {
	t    testing.TB
	key  string
	conn net.Conn
	rw   io.ReadWriter // reads through what the handshake read ahead
}

// Dial subscribes to channel ("<private>" or "<private>:<public>", signed
// here), resuming after mid unless it is "".
func (p *Process) Dial(t testing.TB, channel, mid string) *Client {
	t.Helper()
	signer, _ := protocol.NewSigner(p.Key, "")
	q := "CHANNEL_ID=" + channel + "." + signer.Sign(channel) + "&binaryMode=true"
	if mid != "" {
		q += "&mid=" + mid
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(p.URL, "http")+"/bitrix/sub/?"+q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The original sends history right after the handshake: what came
	// with it is in br.
	var rd io.Reader = conn
	if br != nil {
		rd = br
	}
	return &Client{t: t, key: p.Key, conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{rd, conn}}
}

// Read returns the messages of the frames the client gets until it holds
// at least n.
func (c *Client) Read(n int) []*pb.OutgoingMessage {
	c.t.Helper()
	var out []*pb.OutgoingMessage
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(out) < n {
		data, op, err := wsutil.ReadServerData(c.rw)
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

// Publish sends a client's message to the public channels pubs.
func (c *Client) Publish(body string, pubs ...string) {
	c.t.Helper()
	signer, _ := protocol.NewSigner(c.key, "")
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

// MIDs returns the messages' ids as text.
func MIDs(ms []*pb.OutgoingMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = hex.EncodeToString(m.GetId())
	}
	return out
}
