package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
)

var (
	nodeOnce sync.Once
	nodeErr  error
	sdkOnce  sync.Once
	sdkErr   error
)

// checkNode checks once for Node.js 20 or newer on PATH.
func checkNode() error {
	nodeOnce.Do(func() {
		node, err := exec.LookPath("node")
		if err != nil {
			nodeErr = errors.New("node is not installed: the SDK and browser tests need Node.js 20 or newer on PATH")
			return
		}
		out, err := exec.Command(node, "--version").Output()
		if err != nil {
			nodeErr = fmt.Errorf("node --version: %v", err)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		major, _ := strconv.Atoi(strings.Split(v, ".")[0])
		if major < 20 {
			nodeErr = fmt.Errorf("node %s is too old: the SDK and browser tests need Node.js 20 or newer", v)
		}
	})
	return nodeErr
}

// npmCI installs dir's locked dependencies (npm ci) unless installed, a
// path in dir, exists.
func npmCI(dir, installed string) error {
	if _, err := os.Stat(filepath.Join(dir, installed)); err == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is not installed: it installs %s's dependencies (npm ci)", dir)
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// prepareSDK checks for Node 20+ and installs test/sdk's locked
// dependencies if they are missing.
func prepareSDK() error {
	sdkOnce.Do(func() {
		if sdkErr = checkNode(); sdkErr == nil {
			sdkErr = npmCI(filepath.Join(moduleRoot, "test", "sdk"), filepath.Join("node_modules", "@bitrix24", "b24jssdk"))
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
	Type      string          `json:"type"` // ready, request, post, envelope, message, status, error
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
	Body      string          `json:"body"` // post: what was posted
	Code      int             `json:"code"` // post: the HTTP status of its answer
	Line      string          `json:"-"`
}

// SDKClient is a running official SDK pull client.
type SDKClient struct {
	Events <-chan SDKEvent // closed when the process ends
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *spawn.Output
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
	c := &SDKClient{cmd: cmd, stdin: stdin, stderr: &spawn.Output{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the SDK client: %v", err)
	}
	events := make(chan SDKEvent, 4096)
	c.Events = events
	var lines spawn.Output
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

// Stderr is what the client wrote to stderr so far (the SDK's errors).
func (c *SDKClient) Stderr() string { return c.stderr.String() }

// Send writes one command line to the client (disconnect, connect, stop).
func (c *SDKClient) Send(cmd string) {
	_, _ = io.WriteString(c.stdin, cmd+"\n")
}

// Collect reads events until one satisfies until, and returns all of them,
// that one last. It fails the test on timeout, on an "error" event and if
// the client exits.
func (c *SDKClient) Collect(t testing.TB, what string, until func(SDKEvent) bool) []SDKEvent {
	t.Helper()
	return c.CollectWithin(t, waitTimeout, what, until)
}

// CollectWithin is Collect with another bound than waitTimeout, for what
// the client itself puts off (it reconnects 15 s after server_restart).
func (c *SDKClient) CollectWithin(t testing.TB, within time.Duration, what string, until func(SDKEvent) bool) []SDKEvent {
	t.Helper()
	var got []SDKEvent
	timeout := time.After(within)
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
			t.Fatalf("SDK client: no %s within %v; events: %s", what, within, eventLines(got))
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
