package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/testutil"
)

// A graceful stop tells every client the server restarts and loses no
// publish it answered 200: a WebSocket subscriber receives every such
// message, then the server_restart command, then close code 3002; a held
// long poll is answered with the server_restart command.
func TestGracefulShutdown(t *testing.T) {
	srv := startServer(t, map[string]any{})
	ch := newChannelID(t)
	srv.ExitExpected = true
	wsc := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+ch)
	waitOnline(t, srv, ch, true)
	quiet := newChannelID(t) // nothing is published here: the poll is held until the stop
	poll := startLongPoll(t, srv.SubURL+"?CHANNEL_ID="+quiet)
	waitOnline(t, srv, quiet, true)

	// Publish continuously from several clients while the server stops.
	var (
		mu       sync.Mutex
		accepted = map[int]bool{}
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; ; n += 4 {
				select {
				case <-stop:
					return
				default:
				}
				r, err := tryRequest(http.MethodPost, srv.PubURL+"?CHANNEL_ID="+ch, command("test", "seq", n), nil)
				if err != nil || r.Status != http.StatusOK {
					return // the server is going away
				}
				mu.Lock()
				accepted[n] = true
				mu.Unlock()
			}
		}()
	}
	// Stop while publishes are being answered.
	testutil.WaitFor(t, "publishes answered before the stop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 50
	})
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stop)

	got := map[int]bool{}
	restart := false
	for !restart {
		f := wsc.Next(t)
		for _, e := range parseEnvelopes(t, string(f.Data)) {
			var text struct {
				ModuleID string `json:"module_id"`
				Command  string `json:"command"`
				Params   struct {
					N int `json:"n"`
				} `json:"params"`
			}
			if err := json.Unmarshal(e.Text, &text); err != nil {
				t.Fatal(err)
			}
			if text.ModuleID == "pull" && text.Command == "server_restart" {
				restart = true
				if !validMID(e.MID) {
					t.Fatalf("server_restart carries mid %q; clients need one to resume", e.MID)
				}
				continue
			}
			if restart {
				t.Fatal("a message arrived after server_restart")
			}
			got[text.Params.N] = true
		}
	}
	for range wsc.Frames { // drain until the server closes
	}
	if code := wsc.CloseCode(); code != 3002 {
		t.Fatalf("close code %d, want 3002 (server restarted)", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) == 0 {
		t.Fatal("no publish was accepted before the stop")
	}
	for n := range accepted {
		if !got[n] {
			t.Fatalf("message %d was answered 200 but never delivered (%d accepted, %d delivered)", n, len(accepted), len(got))
		}
	}
	r := awaitResponse(t, poll)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"command":"server_restart"`) {
		t.Fatalf("held long poll got %d %q, want 200 with server_restart", r.Status, r.Body)
	}
	select {
	case <-srv.proc.Done():
	case <-time.After(stopTimeout):
		t.Fatal("the server did not exit after SIGTERM")
	}
	if err := srv.proc.Err(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// SIGINT stops the server the same way.
func TestSIGINT(t *testing.T) {
	srv := startServer(t, map[string]any{})
	srv.ExitExpected = true
	if err := srv.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.proc.Done():
		if err := srv.proc.Err(); err != nil {
			t.Fatalf("exit after SIGINT: %v", err)
		}
	case <-time.After(stopTimeout):
		t.Fatal("the server did not exit after SIGINT")
	}
}

// An ssl server serves subscribe and publish over TLS: wss and https.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := testutil.SelfSigned(t, t.TempDir(), "tls")
	srv := startServer(t, map[string]any{"servers": []any{map[string]any{
		"name": "tls", "ssl": map[string]any{"cert": certFile, "key": keyFile},
	}}})
	port := srv.Ports[0]
	ch := newChannelID(t)
	ctx := t.Context()
	conn, _, _, err := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}.Dial(ctx,
		fmt.Sprintf("wss://127.0.0.1:%d/bitrix/subws/?CHANNEL_ID=%s", port, ch))
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer conn.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	pub := fmt.Sprintf("https://127.0.0.1:%d/bitrix/pub/?CHANNEL_ID=%s", port, ch)
	testutil.WaitFor(t, "the wss subscriber online", func() bool {
		r, err := client.Get(pub)
		if err != nil {
			t.Fatalf("https: %v", err)
		}
		defer r.Body.Close()
		var infos struct {
			Infos []any `json:"infos"`
		}
		_ = json.NewDecoder(r.Body).Decode(&infos)
		return len(infos.Infos) == 1
	})
	r, err := client.Post(pub, "text/plain", strings.NewReader(command("test", "tls", 1)))
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("https publish: %v %v", r, err)
	}
	r.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	h, err := ws.ReadHeader(conn)
	if err != nil || h.OpCode != ws.OpText {
		t.Fatalf("wss frame: %+v %v", h, err)
	}
	payload := make([]byte, h.Length)
	if _, err := bufio.NewReader(conn).Read(payload); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload), `"command":"tls"`) {
		t.Fatalf("wss got %q", payload)
	}
}

// A bad config is refused with an error naming the field and a non-zero
// exit; flags override the file.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, config string
		args         []string
		want         string
	}{
		{"bad port", `{"servers":[{"port":70000,"routes":{"sub":"/sub/"}}]}`, nil, "servers[0].port"},
		{"bad storage", `{"storage":{"type":"mongo"}}`, nil, "storage.type"},
		{"bad json", `{"servers":[}`, nil, "config"},
		{"bad flag", `{}`, []string{"--message-ttl", "soon"}, "--message-ttl"},
		{"missing ssl file", `{"servers":[{"port":8999,"ssl":{"cert":"/nonexistent.pem","key":"/nonexistent.key"},"routes":{"sub":"/sub/"}}]}`, nil, "servers[0].ssl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(file, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"serve", "--config", file}, tc.args...)
			cmd := exec.Command(binary, args...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("pushpull accepted the config:\n%s", out)
			}
			if code := cmd.ProcessState.ExitCode(); code == 0 {
				t.Fatalf("exit code 0 for a bad config")
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
}

// Flags and environment variables override the config file.
func TestFlagsOverrideConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"security":{"key":"from-file"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--config", file, "--sub-listen", "127.0.0.1:0", "--pub-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "PUSHPULL_KEY=from-env")
	srv, err := startProcess(t, 2, cmd)
	if err != nil {
		t.Fatal(err)
	}
	sub, pub := srv.Ports[0], srv.Ports[1]
	ch := newChannelID(t)
	url := fmt.Sprintf("ws://127.0.0.1:%d/bitrix/subws/?CHANNEL_ID=%s", sub, signed("from-env", ch))
	c, err := dialWS(t, url)
	if err != nil {
		t.Fatalf("the env key does not sign channels on the flag's port: %v", err)
	}
	c.Close()
	// The file's key signs nothing.
	wrongChannel(t, fmt.Sprintf("ws://127.0.0.1:%d/bitrix/subws/?CHANNEL_ID=%s", sub, signed("from-file", ch)))
	r := request(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/server-stat/", pub), "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("stat on the --pub-listen port: %d", r.Status)
	}
}

// Malformed requests get a clear 4xx and leave the server serving.
func TestBadRequests(t *testing.T) {
	srv := startServer(t, map[string]any{})
	ch := newChannelID(t)
	cases := []struct {
		method, url string
		want        int
	}{
		{http.MethodGet, srv.SubURL + "?CHANNEL_ID=%zz%", http.StatusBadRequest},
		{http.MethodGet, srv.SubURL + "?CHANNEL_ID=" + strings.Repeat("a", 5000), http.StatusBadRequest},
		{http.MethodGet, srv.SubURL + "?CHANNEL_ID=" + ch + "&mid=%%%", http.StatusBadRequest},
		{http.MethodPost, srv.SubURL + "?CHANNEL_ID=" + ch, http.StatusNotFound},
		{http.MethodPut, srv.PubURL + "?CHANNEL_ID=" + ch, http.StatusNotFound},
		{http.MethodDelete, srv.StatURL, http.StatusNotFound},
		{http.MethodPost, srv.PubURL + "?CHANNEL_ID=" + ch + "/" + ch + "x", http.StatusBadRequest},
	}
	for _, tc := range cases {
		r, err := tryRequest(tc.method, tc.url, "x", nil)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.url, err)
		}
		if r.Status != tc.want {
			t.Errorf("%s %s: %d, want %d (%q)", tc.method, tc.url, r.Status, tc.want, r.Body)
		}
		// The browser routes allow any page; the trusted ones (publish,
		// stats) send no CORS header.
		cors := r.Header.Get("Access-Control-Allow-Origin")
		if browser := strings.HasPrefix(tc.url, srv.SubURL); browser && cors != "*" || !browser && cors != "" {
			t.Errorf("%s %s: Access-Control-Allow-Origin %q", tc.method, tc.url, cors)
		}
	}
	// A request line the HTTP parser rejects outright.
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.Split(srv.SubURL, "/bitrix")[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /bitrix/sub/?CHANNEL_ID=%s HTTP/9.9\r\n\r\n", ch)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	conn.Close()
	if err != nil || resp.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Fatalf("malformed request line: %v %v", resp, err)
	}
	// The server still works.
	wsc := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+ch)
	waitOnline(t, srv, ch, true)
	publish(t, srv, []string{ch}, command("test", "after", 1))
	if e := wsc.NextEnvelopes(t, 1)[0]; !strings.Contains(string(e.Text), `"after"`) {
		t.Fatalf("got %s", e.Text)
	}
}

// A WebSocket client that never reads is disconnected once its queue
// passes the limit, and other subscribers keep receiving.
func TestClientThatNeverReads(t *testing.T) {
	srv := startServer(t, map[string]any{"websocket": map[string]any{"maxQueueBytes": 256 << 10}})
	ch := newChannelID(t)
	conn, _, _, err := ws.Dial(t.Context(), srv.WSURL+"?CHANNEL_ID="+ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reader := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+ch)
	testutil.WaitFor(t, "both subscribers online", func() bool { return online(t, srv, ch)[ch] == 2 })
	deadline := time.Now().Add(60 * time.Second)
	big := `{"module_id":"test","command":"big","params":{"pad":"` + strings.Repeat("x", 60<<10) + `"}}`
	received := 0
	for i := 0; online(t, srv, ch)[ch] == 2; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the client that never reads was not disconnected")
		}
		publish(t, srv, []string{ch}, big)
		received += len(reader.NextEnvelopes(t, 1))
	}
	publish(t, srv, []string{ch}, command("test", "after", 1))
	if e := reader.NextEnvelopes(t, 1)[0]; !strings.Contains(string(e.Text), `"after"`) {
		t.Fatalf("got %.80s", e.Text)
	}
	if received == 0 {
		t.Fatal("the reading client received nothing")
	}
}

// Liveness, readiness and metrics answer on the publish server.
func TestHealthReadyMetrics(t *testing.T) {
	srv := startServer(t, map[string]any{"servers": []any{map[string]any{"name": "all", "routes": map[string]any{
		"sub": []any{"/bitrix/sub/", "/bitrix/subws/"}, "pub": "/bitrix/pub/", "stat": "/server-stat/",
		"health": "/healthz", "ready": "/readyz", "metrics": "/metrics",
	}}}})
	if r := request(t, http.MethodGet, srv.HealthURL, "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz: %d", r.Status)
	}
	if r := request(t, http.MethodGet, srv.ReadyURL, "", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz: %d %q", r.Status, r.Body)
	}
	ch := newChannelID(t)
	_ = mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+ch)
	waitOnline(t, srv, ch, true)
	publish(t, srv, []string{ch}, command("test", "m", 1))
	base := strings.TrimSuffix(srv.HealthURL, "/healthz")
	r := request(t, http.MethodGet, base+"/metrics", "", nil)
	for _, want := range []string{
		"pushpull_published_messages_total 1",
		"pushpull_websocket_connections 1",
		"pushpull_channels 1",
		"go_goroutines",
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// With storage.snapshot, a restart keeps history: a client resuming with
// its mid after the restart gets what was published before it, and ids
// continue the old sequence.
func TestSnapshotKeepsHistoryAcrossRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "history.snapshot")
	cfg := map[string]any{"storage": map[string]any{"snapshot": file}}
	first := startServer(t, cfg)
	first.ExitExpected = true
	ch := newChannelID(t)
	publish(t, first, []string{ch}, command("test", "before", 1))
	r := longPoll(t, first.SubURL+"?CHANNEL_ID="+ch+"&mid=00000000000000000000000000")
	seen := parseEnvelopes(t, r.Body)
	if len(seen) != 1 {
		t.Fatalf("got %d messages", len(seen))
	}
	publish(t, first, []string{ch}, command("test", "missed", 2))
	publish(t, first, []string{ch}, command("test", "missed", 3))
	first.stop(t)

	second := startServer(t, map[string]any{"storage": map[string]any{"snapshot": file}})
	r = longPoll(t, second.SubURL+"?CHANNEL_ID="+ch+"&mid="+seen[0].MID)
	got := parseEnvelopes(t, r.Body)
	if len(got) != 2 || !strings.Contains(string(got[0].Text), `"n":2`) || !strings.Contains(string(got[1].Text), `"n":3`) {
		t.Fatalf("after the restart: %s", r.Body)
	}
	publish(t, second, []string{ch}, command("test", "after", 4))
	r = longPoll(t, second.SubURL+"?CHANNEL_ID="+ch+"&mid="+got[1].MID)
	next := parseEnvelopes(t, r.Body)
	if len(next) != 1 || next[0].MID <= got[1].MID {
		t.Fatalf("the next id %v does not continue after %s", next, got[1].MID)
	}
}
