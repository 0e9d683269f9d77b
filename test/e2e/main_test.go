// Package e2e tests the pushpull binary over the wire: each test starts the
// real server on loopback ports and talks to it as the Bitrix clients
// and backend do, with raw HTTP and WebSocket and with the official JS SDK.
//
// Run with `go test ./test/e2e`. TestMain builds ./cmd/pushpull once; the
// SDK tests need Node.js 20+ and, when test/sdk/node_modules is missing,
// npm (they run `npm ci` there themselves).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
)

// Deadlines are generous: they bound a hung test, they do not measure speed.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 20 * time.Second
	waitTimeout  = testutil.Timeout
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
	// A suite run by a systemd unit must not have its servers notify it:
	// the tests that want notifications set these themselves.
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
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
