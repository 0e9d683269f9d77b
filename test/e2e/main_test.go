// Package e2e tests the pushpull binary over the wire: each test starts the
// real server on free loopback ports and talks to it as the Bitrix clients
// and backend do, with raw HTTP and WebSocket and with the official JS SDK.
//
// Run with `go test ./test/e2e`. TestMain builds ./cmd/pushpull once; the
// SDK tests need Node.js 20+ and, when test/sdk/node_modules is missing,
// npm (they run `npm ci` there themselves).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/testutil"
)

// Deadlines are generous: they bound a hung test, they do not measure speed.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 20 * time.Second
	waitTimeout  = 20 * time.Second
)

var (
	binary     string // the pushpull binary built by TestMain
	moduleRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD: %v)\n", err)
		return 1
	}
	moduleRoot = filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "pushpull-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "pushpull")
	build := exec.Command("go", "build", "-o", binary, "./cmd/pushpull")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building ./cmd/pushpull failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Stock routes, used when a test's config names none.
var defaultRoutes = map[string]any{
	"sub":    []any{"/bitrix/sub/", "/bitrix/subws/"},
	"pub":    []any{"/bitrix/pub/"},
	"stat":   []any{"/server-stat/"},
	"health": []any{"/healthz"},
	"ready":  []any{"/readyz"},
}

// Server is a running pushpull process.
type Server struct {
	Cmd    *exec.Cmd
	Config map[string]any // as written to the config file
	Key    string         // security.key, "" when channels are unsigned

	// ExitExpected is set by a test that stops the process itself.
	ExitExpected bool

	Ports []int // one per configured server, in order

	// Base URLs of the first configured server serving each route, "" when
	// no server serves it.
	SubURL    string // http://127.0.0.1:port/bitrix/sub/
	WSURL     string // ws://127.0.0.1:port/bitrix/subws/ (second sub route, else the first)
	PubURL    string
	StatURL   string
	HealthURL string
	ReadyURL  string

	logs   *testutil.SyncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // the process's exit error, valid once exited is closed
}

// startServer writes cfg to a file, starts `pushpull serve --config FILE`
// and waits until every configured port accepts connections. cfg is a map
// holding only what the test sets (the server fills in its defaults), or
// anything else that marshals to the config JSON, such as a
// config.Default() with its ports set to 0. Without "servers" one server
// on 127.0.0.1 serves the stock routes; a server with port 0 gets a free
// port. The process is stopped with SIGTERM when the test ends, and its
// output is added to the test log if the test failed.
func startServer(t testing.TB, cfg any) *Server {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	conf := map[string]any{}
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &conf); err != nil {
			t.Fatalf("config must be a JSON object: %v", err)
		}
	}
	servers, _ := conf["servers"].([]any)
	if len(servers) == 0 {
		servers = []any{map[string]any{"name": "e2e"}}
	}
	s := &Server{Config: conf, logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	for i, v := range servers {
		sc, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("config: servers[%d] is not an object", i)
		}
		if p, _ := sc["port"].(float64); p == 0 {
			sc["port"] = testutil.FreePort(t)
		}
		if _, ok := sc["hostname"]; !ok {
			sc["hostname"] = "127.0.0.1"
		}
		if _, ok := sc["routes"]; !ok {
			sc["routes"] = defaultRoutes
		}
		port := int(toFloat(sc["port"]))
		s.Ports = append(s.Ports, port)
		base := "127.0.0.1:" + strconv.Itoa(port)
		routes, _ := sc["routes"].(map[string]any)
		first := func(dst *string, scheme, name string, nth int) {
			list := routeList(routes[name])
			if *dst != "" || len(list) == 0 {
				return
			}
			if nth >= len(list) {
				nth = len(list) - 1
			}
			*dst = scheme + "://" + base + list[nth]
		}
		first(&s.SubURL, "http", "sub", 0)
		first(&s.WSURL, "ws", "sub", 1)
		first(&s.PubURL, "http", "pub", 0)
		first(&s.StatURL, "http", "stat", 0)
		first(&s.HealthURL, "http", "health", 0)
		first(&s.ReadyURL, "http", "ready", 0)
		servers[i] = sc
	}
	conf["servers"] = servers
	if sec, ok := conf["security"].(map[string]any); ok {
		s.Key, _ = sec["key"].(string)
	}

	raw, err = json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatalf("config: %v", err)
	}

	s.Cmd = exec.Command(binary, "serve", "--config", file)
	s.Cmd.Stdout = s.logs
	s.Cmd.Stderr = s.logs
	if err := s.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", binary, err)
	}
	go func() {
		s.err = s.Cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	for _, port := range s.Ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		deadline := time.Now().Add(startTimeout)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				t.Fatalf("pushpull exited before listening on %s: %v\nconfig:\n%s", addr, s.err, raw)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("pushpull does not accept connections on %s after %v: %v\nconfig:\n%s", addr, startTimeout, err, raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

func (s *Server) stop(t testing.TB) {
	select {
	case <-s.exited:
		if !s.ExitExpected {
			t.Errorf("pushpull exited during the test: %v", s.err)
		}
	default:
		_ = s.Cmd.Process.Signal(syscall.SIGTERM)
		sent := time.Now()
		select {
		case <-s.exited:
			if s.err != nil {
				t.Logf("pushpull after SIGTERM: %v", s.err)
			}
			if d := time.Since(sent); d > time.Second {
				t.Logf("pushpull took %v to exit after SIGTERM", d.Round(time.Millisecond))
			}
		case <-time.After(stopTimeout):
			t.Errorf("pushpull did not exit within %v of SIGTERM; its goroutines follow", stopTimeout)
			_ = s.Cmd.Process.Signal(syscall.SIGQUIT) // the Go runtime prints every goroutine's stack
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				_ = s.Cmd.Process.Kill()
				<-s.exited
			}
		}
	}
	if t.Failed() {
		t.Logf("pushpull output:\n%s", s.logs.String())
	}
}

// Logs returns what the process has written so far.
func (s *Server) Logs() string { return s.logs.String() }

func routeList(v any) []string {
	switch r := v.(type) {
	case string:
		return []string{r}
	case []any:
		var out []string
		for _, e := range r {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return r
	}
	return nil
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}

// sign returns the hex HMAC-SHA1 of id with key, the signature the PHP
// module appends to channel ids.
func sign(key, id string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// signed returns id as a client presents it: "<id>.<signature>" with a key,
// id itself without one.
func signed(key, id string) string {
	if key == "" {
		return id
	}
	return id + "." + sign(key, id)
}

// newChannelID returns a fresh channel id: 32 lowercase hex characters.
func newChannelID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Response is a whole HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// request sends one HTTP request and reads the whole answer.
func request(t testing.TB, method, url, body string, header map[string]string) Response {
	t.Helper()
	r, err := tryRequest(method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func tryRequest(method, url, body string, header map[string]string) (Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// publish posts body to channels (joined by "/", as the PHP module does)
// and fails the test unless the server answers 200.
func publish(t testing.TB, srv *Server, channels []string, body string) {
	t.Helper()
	publishWith(t, srv, channels, body, nil)
}

// publishWith is publish with extra request headers (Message-Expiry).
func publishWith(t testing.TB, srv *Server, channels []string, body string, header map[string]string) {
	t.Helper()
	r := request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+strings.Join(channels, "/"), body, header)
	if r.Status != http.StatusOK {
		t.Fatalf("publish to %v: status %d, body %q; want 200", channels, r.Status, r.Body)
	}
}

// command returns a message body as the PHP module publishes it.
func command(module, cmd string, n int) string {
	return fmt.Sprintf(`{"module_id":%q,"command":%q,"params":{"n":%d},"extra":{"server_time":%q,"server_time_unix":%d,"revision_web":19}}`,
		module, cmd, n, time.Now().UTC().Format(time.RFC3339), time.Now().Unix())
}

// online returns the subscriber count the publish route reports for each
// channel asked (absent channels count 0).
func online(t testing.TB, srv *Server, channels ...string) map[string]int {
	t.Helper()
	r := request(t, http.MethodGet, srv.PubURL+"?CHANNEL_ID="+strings.Join(channels, "/"), "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET publish route: status %d, body %q", r.Status, r.Body)
	}
	var ans struct {
		Infos []struct {
			Channel     string `json:"channel"`
			Subscribers int    `json:"subscribers"`
		} `json:"infos"`
	}
	if err := json.Unmarshal([]byte(r.Body), &ans); err != nil {
		t.Fatalf("GET publish route: %v in %q", err, r.Body)
	}
	out := make(map[string]int)
	for _, i := range ans.Infos {
		out[i.Channel] = i.Subscribers
	}
	return out
}

// waitOnline waits until the server reports channel online (online is
// true) or offline (false).
func waitOnline(t testing.TB, srv *Server, channel string, want bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		n := online(t, srv, channel)[channel]
		if (n > 0) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s: %d subscribers after %v; want online=%v", channel, n, waitTimeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Envelope is one message as a text-mode client receives it.
type Envelope struct {
	ID      uint64
	MID     string
	Channel string
	Tag     string
	Time    string
	Text    json.RawMessage
}

const (
	envStart = "#!NGINXNMS!#"
	envEnd   = "#!NGINXNME!#"
)

var envelopeKeys = []string{"id", "mid", "channel", "tag", "time", "text"}

// parseEnvelopes splits a text-mode body or frame into its envelopes. It
// fails the test unless the data is exactly a run of
// #!NGINXNMS!#{"id","mid","channel","tag","time","text"}#!NGINXNME!#
// with the keys in that order, each on one line.
func parseEnvelopes(t testing.TB, data string) []Envelope {
	t.Helper()
	var out []Envelope
	rest := data
	for rest != "" {
		if !strings.HasPrefix(rest, envStart) {
			t.Fatalf("envelope does not start with %s at %q (in %q)", envStart, rest, data)
		}
		end := strings.Index(rest, envEnd)
		if end < 0 {
			t.Fatalf("envelope without %s in %q", envEnd, data)
		}
		obj := rest[len(envStart):end]
		rest = rest[end+len(envEnd):]
		if strings.ContainsAny(obj, "\r\n\u2028\u2029") {
			t.Fatalf("envelope spans lines: %q", obj)
		}
		out = append(out, parseEnvelopeObject(t, []byte(obj)))
	}
	if len(out) == 0 {
		t.Fatalf("no envelope in %q", data)
	}
	return out
}

// parseEnvelopeObject decodes one envelope object, checking its keys, their
// order and the form of each field.
func parseEnvelopeObject(t testing.TB, obj []byte) Envelope {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		t.Fatalf("envelope is not a JSON object: %v: %s", err, obj)
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(keys, ",") != strings.Join(envelopeKeys, ",") {
		t.Fatalf("envelope keys %v; want %v: %s", keys, envelopeKeys, obj)
	}
	var e Envelope
	if err := json.Unmarshal(fields["id"], &e.ID); err != nil {
		t.Fatalf("envelope id %s is not an integer: %s", fields["id"], obj)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"mid", &e.MID}, {"channel", &e.Channel}, {"tag", &e.Tag}, {"time", &e.Time}} {
		if err := json.Unmarshal(fields[f.name], f.dst); err != nil {
			t.Fatalf("envelope %s %s is not a string: %s", f.name, fields[f.name], obj)
		}
	}
	e.Text = fields["text"]
	if !validMID(e.MID) {
		t.Fatalf("envelope mid %q is not 26 digits: %s", e.MID, obj)
	}
	if n, _ := strconv.ParseUint(e.MID[10:], 10, 64); n != e.ID {
		t.Fatalf("envelope id %d is not the counter part of mid %s", e.ID, e.MID)
	}
	if _, err := time.Parse(http.TimeFormat, e.Time); err != nil {
		t.Fatalf("envelope time %q is not an HTTP date: %v", e.Time, err)
	}
	return e
}

func validMID(mid string) bool {
	if len(mid) != 26 {
		return false
	}
	for _, c := range mid {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// WSClient is a raw WebSocket subscriber that collects the data frames the
// server sends and answers its pings.
type WSClient struct {
	Frames <-chan Frame // closed when the connection ends
	conn   net.Conn

	mu        sync.Mutex
	closeCode ws.StatusCode
	readErr   error

	pending []Envelope // read from a frame but not yet returned
}

// Frame is one data message from the server.
type Frame struct {
	Op   ws.OpCode
	Data []byte
}

// dialWS opens a WebSocket to url. A refused upgrade is returned as
// ws.StatusError (the HTTP status).
func dialWS(t testing.TB, url string) (*WSClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	frames := make(chan Frame, 1024)
	c := &WSClient{Frames: frames, conn: conn}
	var rd io.Reader = conn
	if br != nil {
		rd = br
	}
	go c.readLoop(rd, frames)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mustDialWS is dialWS failing the test on error.
func mustDialWS(t testing.TB, url string) *WSClient {
	t.Helper()
	c, err := dialWS(t, url)
	if err != nil {
		t.Fatalf("WebSocket %s: %v", url, err)
	}
	return c
}

func (c *WSClient) readLoop(rd io.Reader, frames chan<- Frame) {
	defer close(frames)
	rw := struct {
		io.Reader
		io.Writer
	}{rd, c.conn}
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			c.mu.Lock()
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				c.closeCode = closed.Code
			}
			c.readErr = err
			c.mu.Unlock()
			return
		}
		frames <- Frame{Op: op, Data: data}
	}
}

// CloseCode returns the code of the server's close frame, 0 if none came.
func (c *WSClient) CloseCode() ws.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// Close sends a normal close frame and closes the connection.
func (c *WSClient) Close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.conn.Close()
}

// Send writes a text frame.
func (c *WSClient) Send(t testing.TB, text string) {
	t.Helper()
	if err := wsutil.WriteClientText(c.conn, []byte(text)); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// Next returns the next data frame, failing the test if none comes in time
// or the connection ends.
func (c *WSClient) Next(t testing.TB) Frame {
	t.Helper()
	select {
	case f, ok := <-c.Frames:
		if !ok {
			c.mu.Lock()
			err := c.readErr
			c.mu.Unlock()
			t.Fatalf("WebSocket ended while a frame was expected: %v", err)
		}
		return f
	case <-time.After(waitTimeout):
		t.Fatalf("no WebSocket frame within %v", waitTimeout)
	}
	return Frame{}
}

// NextEnvelopes returns the next n envelopes, reading text frames as
// needed. A frame may hold several envelopes (the server may coalesce what
// is queued); those beyond n are kept for the next call.
func (c *WSClient) NextEnvelopes(t testing.TB, n int) []Envelope {
	t.Helper()
	for len(c.pending) < n {
		f := c.Next(t)
		if f.Op != ws.OpText {
			t.Fatalf("WebSocket frame opcode %v; want text: %q", f.Op, f.Data)
		}
		c.pending = append(c.pending, parseEnvelopes(t, string(f.Data))...)
	}
	out := c.pending[:n:n]
	c.pending = c.pending[n:]
	return out
}

// longPoll sends one long-polling request and waits for its answer.
func longPoll(t testing.TB, url string) Response {
	t.Helper()
	return request(t, http.MethodGet, url, "", nil)
}

// startLongPoll sends a long-polling request in the background; the answer
// arrives on the returned channel.
func startLongPoll(t testing.TB, url string) <-chan Response {
	t.Helper()
	out := make(chan Response, 1)
	go func() {
		r, err := tryRequest(http.MethodGet, url, "", nil)
		if err != nil {
			r = Response{Status: -1, Body: err.Error()}
		}
		out <- r
	}()
	return out
}

// awaitResponse waits for a background request's answer.
func awaitResponse(t testing.TB, ch <-chan Response) Response {
	t.Helper()
	select {
	case r := <-ch:
		if r.Status < 0 {
			t.Fatalf("long poll failed: %s", r.Body)
		}
		return r
	case <-time.After(90 * time.Second):
		t.Fatal("long poll did not end within 90 s")
	}
	return Response{}
}

// SDK clients ----------------------------------------------------------------

var (
	sdkOnce sync.Once
	sdkErr  error
)

// prepareSDK checks for Node 20+ and npm and installs test/sdk's locked
// dependencies if node_modules is missing.
func prepareSDK() error {
	sdkOnce.Do(func() {
		node, err := exec.LookPath("node")
		if err != nil {
			sdkErr = errors.New("node is not installed: the SDK tests need Node.js 20 or newer on PATH")
			return
		}
		out, err := exec.Command(node, "--version").Output()
		if err != nil {
			sdkErr = fmt.Errorf("node --version: %v", err)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		major, _ := strconv.Atoi(strings.Split(v, ".")[0])
		if major < 20 {
			sdkErr = fmt.Errorf("node %s is too old: the SDK tests need Node.js 20 or newer", v)
			return
		}
		dir := filepath.Join(moduleRoot, "test", "sdk")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@bitrix24", "b24jssdk")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			sdkErr = errors.New("npm is not installed: the SDK tests need it to install test/sdk's dependencies (npm ci)")
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			sdkErr = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	return sdkErr
}

// SDKOptions configure test/sdk/client.mjs (see the comment at its top).
type SDKOptions struct {
	WebSocket        string `json:"websocket"`
	LongPolling      string `json:"long_polling"`
	Channel          string `json:"channel"`
	SharedChannel    string `json:"shared_channel,omitempty"`
	Version          int    `json:"version"`
	WebSocketEnabled bool   `json:"websocket_enabled"`
	// Extra holds further config fields (jwt, clientId, mode, publish,
	// publish_enabled, publicChannels, ...), sent as given.
	Extra map[string]any `json:"-"`
}

// SDKOptions returns options for a client of srv reading channel (as the
// client presents it: signed when the server has a key) with protocol
// version and WebSocket enabled.
func (s *Server) SDKOptions(channel string, version int) SDKOptions {
	return SDKOptions{WebSocket: s.WSURL, LongPolling: s.SubURL, Channel: channel, Version: version, WebSocketEnabled: true}
}

func (o SDKOptions) MarshalJSON() ([]byte, error) {
	type plain SDKOptions
	b, err := json.Marshal(plain(o))
	if err != nil || len(o.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range o.Extra {
		m[k] = v
	}
	return json.Marshal(m)
}

// SDKEvent is one line of client.mjs's output.
type SDKEvent struct {
	Type      string          `json:"type"` // ready, request, envelope, message, status, error
	ModuleID  string          `json:"moduleId"`
	Command   string          `json:"command"`
	Params    json.RawMessage `json:"params"`
	Extra     json.RawMessage `json:"extra"`
	Status    string          `json:"status"`
	Transport string          `json:"transport"`
	URL       string          `json:"url"`
	MID       string          `json:"mid"`
	Channel   string          `json:"channel"`
	Error     string          `json:"error"`
	Line      string          `json:"-"`
}

// SDKClient is a running official SDK pull client.
type SDKClient struct {
	Events <-chan SDKEvent // closed when the process ends
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testutil.SyncBuffer
	done   chan struct{}
}

// startSDK runs test/sdk/client.mjs with opts. The process is stopped when
// the test ends and its stderr is logged if the test failed.
func startSDK(t testing.TB, opts SDKOptions) *SDKClient {
	t.Helper()
	if err := prepareSDK(); err != nil {
		t.Fatalf("SDK client unavailable: %v", err)
	}
	arg, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(moduleRoot, "test", "sdk", "client.mjs"), string(arg))
	cmd.Dir = filepath.Join(moduleRoot, "test", "sdk")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &SDKClient{cmd: cmd, stdin: stdin, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the SDK client: %v", err)
	}
	events := make(chan SDKEvent, 4096)
	c.Events = events
	var lines testutil.SyncBuffer
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(&lines, line)
			var e SDKEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				e = SDKEvent{Type: "garbage"}
			}
			e.Line = line
			events <- e
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Send("stop")
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("SDK client output:\n%s\nSDK client stderr:\n%s", lines.String(), c.stderr.String())
		}
	})
	return c
}

// Send writes one command line to the client (disconnect, connect, stop).
func (c *SDKClient) Send(cmd string) {
	_, _ = io.WriteString(c.stdin, cmd+"\n")
}

// Collect reads events until one satisfies until, and returns all of them,
// that one last. It fails the test on timeout, on an "error" event and if
// the client exits.
func (c *SDKClient) Collect(t testing.TB, what string, until func(SDKEvent) bool) []SDKEvent {
	t.Helper()
	var got []SDKEvent
	timeout := time.After(waitTimeout)
	for {
		select {
		case e, ok := <-c.Events:
			if !ok {
				t.Fatalf("SDK client exited while waiting for %s; stderr:\n%s", what, c.stderr.String())
			}
			if e.Type == "error" || e.Type == "garbage" {
				t.Fatalf("SDK client: %s", e.Line)
			}
			got = append(got, e)
			if until(e) {
				return got
			}
		case <-timeout:
			t.Fatalf("SDK client: no %s within %v; events: %s", what, waitTimeout, eventLines(got))
		}
	}
}

// WaitStatus waits for the client to report status (online, offline, connect).
func (c *SDKClient) WaitStatus(t testing.TB, status string) []SDKEvent {
	t.Helper()
	return c.Collect(t, "status "+status, func(e SDKEvent) bool { return e.Type == "status" && e.Status == status })
}

// WaitCommand waits for a message with the command.
func (c *SDKClient) WaitCommand(t testing.TB, command string) []SDKEvent {
	t.Helper()
	return c.Collect(t, "command "+command, func(e SDKEvent) bool { return e.Type == "message" && e.Command == command })
}

func eventLines(events []SDKEvent) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("\n  ")
		b.WriteString(e.Line)
	}
	return b.String()
}
