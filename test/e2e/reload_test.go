package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pushpull/pushpull/internal/testutil"
)

// TestReload changes the config file under a running server and sends
// SIGHUP: the WebSocket client connected before stays connected and
// receives, the new payload limit applies, the log level changes, a new
// certificate is served on the next handshake, a channel signed with the
// old key verifies beside the new key during the grace period and no
// longer once it is over, and what needs a restart is named. A broken
// file keeps everything as it runs.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testutil.SelfSigned(t, dir, "server")
	const oldKey, newKey = "old-security-key", "new-security-key"
	srv := startServer(t, map[string]any{
		"servers": []any{
			map[string]any{"name": "plain"},
			map[string]any{"name": "tls", "ssl": map[string]any{"cert": certFile, "key": keyFile},
				"routes": map[string]any{"health": "/healthz"}},
		},
		"security": map[string]any{"key": oldKey, "keyGracePeriod": 3600},
		"limits":   map[string]any{"maxPayload": 2000},
		"log":      map[string]any{"level": "info"},
	})
	oldCert := servedCert(t, srv.Ports[1])

	// A client of the old key, connected before any reload.
	ch := newChannelID(t)
	client := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+signed(oldKey, ch))
	waitOnline(t, srv, ch, true)
	big := padded(1500)
	publish(t, srv, []string{ch}, big)
	client.NextEnvelopes(t, 1)
	badToken(t, srv)
	if strings.Contains(srv.Logs(), "token refused") {
		t.Fatal("a debug line logged at level info")
	}
	const admin = "https://admin.example"
	if got := fromPage(t, srv, admin); got != http.StatusForbidden {
		t.Fatalf("stats asked from %s before it is trusted: %d, want 403", admin, got)
	}

	// The new file: a new key, a lower payload limit, debug logging, a new
	// certificate in the same files, and a change that needs a restart.
	newCertFile, newKeyFile, _ := testutil.SelfSigned(t, t.TempDir(), "new")
	copyFile(t, newCertFile, certFile)
	copyFile(t, newKeyFile, keyFile)
	srv.Config["security"] = map[string]any{"key": newKey, "keyGracePeriod": 3600, "trustedOrigins": []string{admin}}
	srv.Config["limits"] = map[string]any{"maxPayload": 1000}
	srv.Config["log"] = map[string]any{"level": "debug"}
	srv.Config["storage"].(map[string]any)["messageTTL"] = 60
	reload(t, srv, "msg=reloaded", 1)
	line := logLine(t, srv, "msg=reloaded", 1)
	for _, key := range []string{"security.key", "security.trustedOrigins", "limits.maxPayload", "log.level"} {
		if !strings.Contains(line, key) {
			t.Errorf("reload line does not name %s: %s", key, line)
		}
	}
	if !strings.Contains(line, "certificates=servers[1]") {
		t.Errorf("reload line does not name the certificate re-read: %s", line)
	}
	notReloaded := logLine(t, srv, "not reloaded", 1)
	if !strings.Contains(notReloaded, "storage.messageTTL") || strings.Contains(notReloaded, "port") {
		t.Errorf("not-reloaded line: %s; want storage.messageTTL alone", notReloaded)
	}

	// The client stays and receives; the limit is the new one.
	publish(t, srv, []string{ch}, command("test", "after reload", 1))
	if got := client.NextEnvelopes(t, 1)[0]; !strings.Contains(string(got.Text), "after reload") {
		t.Errorf("after the reload the client got %s", got.Text)
	}
	if r := request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+ch, big, nil); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("1500 bytes after maxPayload became 1000: %d; want 413", r.Status)
	}
	publish(t, srv, []string{ch}, padded(900))
	client.NextEnvelopes(t, 1)

	if got := fromPage(t, srv, admin); got != http.StatusOK {
		t.Errorf("stats asked from %s once trusted: %d, want 200", admin, got)
	}

	// Debug logging.
	badToken(t, srv)
	testutil.WaitFor(t, "the debug line of a refused token", func() bool { return strings.Contains(srv.Logs(), "token refused") })

	// The new certificate on the next handshake.
	if got := servedCert(t, srv.Ports[1]); bytes.Equal(got, oldCert) || !bytes.Equal(got, certDER(t, newCertFile)) {
		t.Error("the certificate served after the reload is not the new one")
	}

	// Both keys during the grace period, a third never.
	for key, want := range map[string]bool{oldKey: true, newKey: true, "third-key": false} {
		if got := channelAccepted(t, srv, key); got != want {
			t.Errorf("a channel signed with %s during the grace: accepted %v, want %v", key, got, want)
		}
	}

	// A grace of one second is over a second after the key changed: the
	// old key stops verifying, the new one goes on.
	srv.Config["security"] = map[string]any{"key": newKey, "keyGracePeriod": 1}
	reload(t, srv, "msg=reloaded", 2)
	testutil.WaitFor(t, "the old key refused after its grace", func() bool { return !channelAccepted(t, srv, oldKey) })
	if !channelAccepted(t, srv, newKey) {
		t.Error("the new key refused after the grace")
	}

	// A broken file changes nothing and says why.
	if err := os.WriteFile(srv.ConfigFile, []byte(`{"limits": {"maxPayload": `), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the failed reload logged", func() bool { return strings.Contains(srv.Logs(), "reload failed") })
	if r := request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+ch, big, nil); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("after a failed reload 1500 bytes: %d; want 413 (the limit running)", r.Status)
	}
	publish(t, srv, []string{ch}, command("test", "after a failed reload", 1))
	if got := client.NextEnvelopes(t, 1)[0]; !strings.Contains(string(got.Text), "after a failed reload") {
		t.Errorf("after the failed reload the client got %s", got.Text)
	}
	if !channelAccepted(t, srv, newKey) {
		t.Error("the key running refused after a failed reload")
	}
}

// reload writes srv.Config to its file, sends SIGHUP and waits for the
// n-th line containing text.
func reload(t *testing.T, srv *Server, text string, n int) {
	t.Helper()
	raw, err := json.MarshalIndent(srv.Config, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfigFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, strconv.Itoa(n)+" lines with "+text, func() bool { return strings.Count(srv.Logs(), text) >= n })
}

// logLine returns the n-th line of the server's output containing text.
func logLine(t *testing.T, srv *Server, text string, n int) string {
	t.Helper()
	for _, l := range strings.Split(srv.Logs(), "\n") {
		if strings.Contains(l, text) {
			if n--; n == 0 {
				return l
			}
		}
	}
	t.Fatalf("no line %d with %q in:\n%s", n, text, srv.Logs())
	return ""
}

// channelAccepted subscribes over WebSocket to a fresh channel signed with
// key and reports whether the server took it (it is online) or refused it
// (closed with 4010).
func channelAccepted(t *testing.T, srv *Server, key string) bool {
	t.Helper()
	ch := newChannelID(t)
	c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+signed(key, ch))
	defer c.Close()
	accepted := false
	testutil.WaitFor(t, "the channel taken or refused", func() bool {
		if c.CloseCode() != 0 {
			return true
		}
		accepted = online(t, srv, ch)[ch] > 0
		return accepted
	})
	if !accepted && c.CloseCode() != 4010 {
		t.Fatalf("closed with %d %q; want 4010", c.CloseCode(), c.CloseReason())
	}
	return accepted
}

// fromPage asks for the process statistics as a page of origin does in a
// browser and returns the status.
func fromPage(t *testing.T, srv *Server, origin string) int {
	t.Helper()
	return request(t, http.MethodGet, srv.StatURL, "", map[string]string{"Origin": origin}).Status
}

// badToken sends a subscribe with a token no key signed: refused with
// 401, and a debug line.
func badToken(t *testing.T, srv *Server) {
	t.Helper()
	r := request(t, http.MethodGet, srv.SubURL+"?token=a.b.c", "", nil)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d %q; want 401", r.Status, r.Body)
	}
}

// padded returns a message body of n bytes.
func padded(n int) string {
	head := `{"module_id":"test","command":"padded","params":{"pad":"`
	tail := `"},"extra":{}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// servedCert returns the DER of the certificate a TLS handshake with the
// port gets.
func servedCert(t *testing.T, port int) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

func certDER(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	return block.Bytes
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
