package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/webpush"
)

// installDeps checks for Node.js 20+ and installs dir's locked
// dependencies when they are missing or older than the lock file.
func installDeps(t *testing.T, dir string) {
	t.Helper()
	if err := checkNode(); err != nil {
		t.Fatal(err)
	}
	if err := npmCI(dir, "node_modules"); err != nil {
		t.Fatal(err)
	}
}

// runNode runs `node --test` on dir with env added, logging its report.
// Each test gets at most a minute, the whole run five, and node exits when
// the tests are done even if a handle (a Chromium that will not close) is
// left, so a hang fails with what was printed instead of stalling the suite.
// Test files run one at a time: the browser tests restart the server.
// While node runs, the test goroutine runs each function sent on serve
// (nil: none), so that a request of the tests can stop and start servers.
func runNode(t *testing.T, dir string, serve <-chan func(), env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "--test-timeout=60000", "--test-force-exit", "--test-concurrency=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("node --test in %s: %v", dir, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
wait:
	for {
		select {
		case f := <-serve:
			f()
		case err = <-done:
			break wait
		}
	}
	t.Logf("node --test in %s:\n%s", dir, out.Bytes())
	if ctx.Err() != nil {
		t.Fatalf("node --test in %s did not finish within 5 minutes", dir)
	}
	if err != nil {
		t.Fatalf("node --test in %s: %v", dir, err)
	}
}

// TestClientUnit runs the browser client's unit tests (backoff, parsing,
// the connection state machine on fake timers, the backend poll schedule,
// protocols 4 and 5) and checks that the committed js/dist is the build of
// js/src and js/src/gen the generated protobuf code.
func TestClientUnit(t *testing.T) {
	dir := filepath.Join(moduleRoot, "js")
	installDeps(t, dir)
	runNode(t, dir, nil)
}

// TestBrowser runs test/browser: the client in headless Chromium against
// this binary in protocols 3, 4 and 5, over WebSocket and long polling
// (delivery, two channels, resume after a network drop and after a server
// restart, fallback to long polling, channel_expire, client publishes, last
// seen, status subscriptions, tokens, the demo page; Web Push: subscribing
// through the service worker, a delivered push shown). It needs Debian's
// chromium (apt-get install chromium) or PUSHPULL_CHROMIUM.
//
// The tests restart the server by POST PUSHPULL_CONTROL/restart: it is
// stopped with SIGTERM (clients get server_restart and close 3002) and
// started again on the same ports, its history kept by storage.snapshot.
func TestBrowser(t *testing.T) {
	chromium := os.Getenv("PUSHPULL_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s (apt-get install chromium, or set PUSHPULL_CHROMIUM): %v", chromium, err)
	}
	dir := filepath.Join(moduleRoot, "test", "browser")
	installDeps(t, dir)

	const key, backendKey = "browser-test-key", "browser-backend-key"
	vapidKey, _, err := webpush.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]any{
		"security": map[string]any{"key": key, "backendKey": backendKey},
		"webPush":  map[string]any{"vapidPrivateKey": vapidKey, "subject": "mailto:ops@example.com"},
		"storage":  map[string]any{"snapshot": filepath.Join(t.TempDir(), "history.snapshot")},
		"servers": []any{
			map[string]any{"name": "sub", "routes": map[string]any{
				"sub":  []any{"/bitrix/sub/", "/bitrix/subws/"},
				"rest": "/bitrix/rest/",
				"demo": "/demo/",
			}},
			map[string]any{"name": "pub", "routes": map[string]any{"pub": "/bitrix/pub/", "backend": "/pushpull/"}},
		},
	})

	serve := make(chan func())
	restart := func() {
		// The same config on the same ports: the clients' URLs stay valid.
		for i, s := range srv.Config["servers"].([]any) {
			s.(map[string]any)["port"] = srv.Ports[i]
		}
		srv.ExitExpected = true
		srv.stop(t)
		srv = startServer(t, srv.Config)
	}
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/restart" {
			http.NotFound(w, r)
			return
		}
		done := make(chan struct{})
		select {
		case serve <- func() { defer close(done); restart() }:
		case <-r.Context().Done():
			return
		}
		select {
		case <-done:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	}))
	// After the test's context ends (node is killed then), so that a
	// request left waiting ends before Close waits for it.
	t.Cleanup(control.Close)

	runNode(t, dir, serve,
		"PUSHPULL_SUB=http://127.0.0.1:"+strconv.Itoa(srv.Ports[0]),
		"PUSHPULL_PUB="+srv.PubURL,
		"PUSHPULL_KEY="+key,
		"PUSHPULL_BACKEND=http://127.0.0.1:"+strconv.Itoa(srv.Ports[1])+"/pushpull/",
		"PUSHPULL_BACKEND_KEY="+backendKey,
		"PUSHPULL_CLOSED_PORT="+strconv.Itoa(closedPort(t)),
		"PUSHPULL_CHROMIUM="+chromium,
		"PUSHPULL_CONTROL="+control.URL,
	)
}
