package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// installDeps checks for Node.js 20+ and installs dir's locked
// dependencies when node_modules is missing.
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
func runNode(t *testing.T, dir string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "--test-timeout=60000", "--test-force-exit")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node --test in %s:\n%s", dir, out)
	if ctx.Err() != nil {
		t.Fatalf("node --test in %s did not finish within 5 minutes", dir)
	}
	if err != nil {
		t.Fatalf("node --test in %s: %v", dir, err)
	}
}

// TestClientUnit runs the browser client's unit tests (backoff, parsing,
// the connection state machine on fake timers, the backend poll schedule)
// and checks that the committed js/dist is the build of js/src.
func TestClientUnit(t *testing.T) {
	dir := filepath.Join(moduleRoot, "js")
	installDeps(t, dir)
	runNode(t, dir)
}

// TestBrowser runs test/browser: the client in headless Chromium against
// this binary (WebSocket, fallback to long polling, recovery after a
// network drop, channel_expire, the demo page). It needs Debian's
// chromium (apt-get install chromium) or PUSHPULL_CHROMIUM.
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
	srv := startServer(t, map[string]any{
		"security": map[string]any{"key": key, "backendKey": backendKey},
		"servers": []any{
			map[string]any{"name": "sub", "routes": map[string]any{
				"sub":  []any{"/bitrix/sub/", "/bitrix/subws/"},
				"demo": "/demo/",
			}},
			map[string]any{"name": "pub", "routes": map[string]any{"pub": "/bitrix/pub/", "backend": "/pushpull/"}},
		},
	})
	runNode(t, dir,
		"PUSHPULL_SUB=http://127.0.0.1:"+strconv.Itoa(srv.Ports[0]),
		"PUSHPULL_PUB="+srv.PubURL,
		"PUSHPULL_KEY="+key,
		"PUSHPULL_BACKEND=http://127.0.0.1:"+strconv.Itoa(srv.Ports[1])+"/pushpull/",
		"PUSHPULL_BACKEND_KEY="+backendKey,
		"PUSHPULL_CLOSED_PORT="+strconv.Itoa(closedPort(t)),
		"PUSHPULL_CHROMIUM="+chromium,
	)
}
