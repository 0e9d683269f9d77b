package e2e

import (
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

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// notifySocket is what systemd listens on for a unit of Type=notify: a
// unixgram socket whose path NOTIFY_SOCKET names. It records every state
// the process sends, in order.
type notifySocket struct {
	path string
	conn *net.UnixConn

	mu     sync.Mutex
	states []string // one per line of every datagram
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// A socket path is at most 107 bytes: t.TempDir() may be longer.
	dir, err := os.MkdirTemp("", "pushpull-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	if n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.states = append(n.states, strings.Split(strings.TrimSpace(string(buf[:k])), "\n")...)
			n.mu.Unlock()
		}
	}()
	return n
}

// count returns how many times state was sent (a "KEY=" prefix counts
// every value of KEY).
func (n *notifySocket) count(state string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, s := range n.states {
		if s == state || strings.HasSuffix(state, "=") && strings.HasPrefix(s, state) {
			c++
		}
	}
	return c
}

// seen returns the states sent so far.
func (n *notifySocket) seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.states...)
}

// TestSystemdNotify runs the binary as systemd runs a unit of Type=notify
// with WatchdogSec: READY=1 comes only once the listeners serve and the
// store works (not while Redis is down, though the process already
// answers its liveness route), WATCHDOG=1 comes every half of
// WATCHDOG_USEC while it serves, SIGHUP is framed by RELOADING=1 and
// READY=1, and SIGTERM sends STOPPING=1 before the process exits cleanly.
func TestSystemdNotify(t *testing.T) {
	notify := newNotifySocket(t)
	redis := redistest.New(t) // not started yet
	srv := startServerWith(t, map[string]any{
		"storage": map[string]any{"type": "redis", "host": "127.0.0.1", "port": redis.Port},
	}, func(cmd *exec.Cmd) {
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=400000")
	})

	// Listening and alive, but without its store: not ready.
	if r := request(t, http.MethodGet, srv.HealthURL, "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz without Redis: %d %q", r.Status, r.Body)
	}
	if r := request(t, http.MethodGet, srv.ReadyURL, "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without Redis: %d %q; want 503", r.Status, r.Body)
	}
	testutil.WaitFor(t, "a STATUS= saying what it waits for", func() bool { return notify.count("STATUS=") > 0 })
	if notify.count("READY=1") != 0 {
		t.Fatalf("READY=1 sent while Redis is down: %q", notify.seen())
	}
	// The watchdog is fed while the process serves, ready or not.
	testutil.WaitFor(t, "WATCHDOG=1 before Redis is up", func() bool { return notify.count("WATCHDOG=1") >= 2 })

	redis.Start()
	testutil.WaitFor(t, "READY=1 once Redis is up", func() bool { return notify.count("READY=1") == 1 })
	// Ready was told once the store works: the readiness route agrees at
	// once, with no waiting.
	if r := request(t, http.MethodGet, srv.ReadyURL, "", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz after READY=1: %d %q", r.Status, r.Body)
	}
	fed := notify.count("WATCHDOG=1")
	testutil.WaitFor(t, "three more WATCHDOG=1", func() bool { return notify.count("WATCHDOG=1") >= fed+3 })

	if err := srv.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "RELOADING=1 then READY=1", func() bool {
		return notify.count("RELOADING=1") == 1 && notify.count("READY=1") == 2
	})
	if notify.count("MONOTONIC_USEC=") != 1 {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", notify.seen())
	}

	srv.ExitExpected = true
	if err := srv.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.proc.Done():
	case <-time.After(stopTimeout):
		t.Fatal("no exit after SIGTERM")
	}
	if err := srv.proc.Err(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if notify.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times; states: %q", notify.count("STOPPING=1"), notify.seen())
	}
	states := notify.seen()
	stopping := -1
	for i, s := range states {
		if s == "STOPPING=1" {
			stopping = i
		}
	}
	for _, s := range states[stopping+1:] {
		if s == "WATCHDOG=1" || s == "READY=1" {
			t.Errorf("%s sent after STOPPING=1: %q", s, states)
		}
	}
}

// Without NOTIFY_SOCKET nothing is sent and nothing fails: the default
// run of every other test, which logs "ready" once it serves.
func TestReadyLogged(t *testing.T) {
	srv := startServer(t, nil)
	if err := srv.proc.WaitLine(t.Context(), `msg=ready`); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(srv.Logs(), "cannot notify systemd") {
		t.Errorf("notified without NOTIFY_SOCKET:\n%s", srv.Logs())
	}
}
