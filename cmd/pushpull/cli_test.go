package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
	"github.com/pushpull/pushpull/sdk"
)

const (
	testKey        = "cli-security-key"
	testBackendKey = "cli-backend-key"
)

// cliServer is `pushpull serve` running in the test process.
type cliServer struct {
	WSURL, SubURL, PubURL, StatsURL, BackendURL string
}

func startCLIServer(t *testing.T) *cliServer {
	t.Helper()
	ls, err := serveInProcess(t)
	if err != nil {
		t.Fatal(err)
	}
	// The listening lines come in config order: the sub server, then pub.
	sub, pub := ls[0].Addr, ls[1].Addr
	return &cliServer{
		WSURL:      "ws://" + sub + "/bitrix/subws/",
		SubURL:     "http://" + sub + "/bitrix/sub/",
		PubURL:     "http://" + pub + "/bitrix/pub/",
		StatsURL:   "http://" + pub + "/server-stat/",
		BackendURL: "http://" + pub + "/pushpull/",
	}
}

// serveInProcess runs serve on free loopback ports (port 0) until the test
// ends and returns the listeners it logged, which name the ports it bound.
func serveInProcess(t *testing.T) ([]spawn.Listener, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &spawn.Output{}
	ended := make(chan struct{})
	var serveErr error
	go func() {
		defer close(ended)
		serveErr = serve(ctx, []string{
			"--sub-listen", "127.0.0.1:0", "--pub-listen", "127.0.0.1:0",
			"--key", testKey, "--backend-key", testBackendKey, "--log-level", "info",
		}, logs)
	}()
	wait, stop := context.WithTimeout(ctx, testutil.Timeout)
	defer stop()
	ls, err := logs.WaitListening(wait, 2, ended)
	if err != nil {
		cancel()
		<-ended
		if serveErr != nil {
			return nil, fmt.Errorf("serve: %w\n%s", serveErr, logs)
		}
		return nil, fmt.Errorf("serve does not listen: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		cancel()
		<-ended
		if serveErr != nil {
			t.Errorf("serve: %v", serveErr)
		}
		if t.Failed() {
			t.Logf("server output:\n%s", logs)
		}
	})
	for _, l := range ls {
		if l.Port() == 0 {
			t.Errorf("serve logged %s listening on %q, not the port it bound", l.Server, l.Addr)
		}
	}
	return ls, nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// decodeLines decodes subscribe's output, one JSON object a line.
func decodeLines(t *testing.T, out string) []received {
	t.Helper()
	var all []received
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r received
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("subscribe printed %q: %v", line, err)
		}
		all = append(all, r)
	}
	return all
}

// TestPublishSubscribe subscribes to a user's private channel over
// WebSocket, publishes to it on the publish route and by user id through
// the backend API, then resumes after the first message with long polling.
func TestPublishSubscribe(t *testing.T) {
	srv := startCLIServer(t)
	ctx := testContext(t)
	api := sdk.New(srv.BackendURL, testBackendKey)
	cfg, err := api.Config(ctx, "42")
	if err != nil {
		t.Fatal(err)
	}
	channel, _, _ := strings.Cut(cfg.Channels["private"].ID, ".")

	var out, errs spawn.Output
	done := make(chan error, 1)
	go func() {
		// Unsigned, signed by --key.
		done <- subscribe(ctx, []string{"--url", srv.WSURL, "--channel", channel, "--key", testKey, "--count", "2"}, &out, &errs)
	}()
	testutil.WaitFor(t, "the subscriber online", func() bool {
		select {
		case err := <-done:
			t.Fatalf("subscribe ended before subscribing: %v %s", err, errs.String())
		default:
		}
		n, err := api.Subscribers(ctx, []string{channel})
		if err != nil {
			t.Fatal(err)
		}
		return n[channel] > 0
	})

	var pubOut bytes.Buffer
	if err := publishCmd(ctx, []string{"--url", srv.PubURL, "--channel", channel, "--module", "im", "--command", "message", "--params", `{"n":1}`, "--expiry", "60"},
		strings.NewReader(""), &pubOut, &errs); err != nil {
		t.Fatalf("publish to the channel: %v", err)
	}
	raw := `{"module_id":"im","command":"notify","params":{"n":2}}`
	if err := publishCmd(ctx, []string{"--backend", srv.BackendURL, "--key", testBackendKey, "--user", "42,43", "--raw", "--expiry", "60"},
		strings.NewReader(raw), &pubOut, &errs); err != nil {
		t.Fatalf("publish to user 42: %v", err)
	}
	var published sdk.Published
	if err := json.Unmarshal(pubOut.Bytes(), &published); err != nil || len(published.MIDs) != 1 || published.Users != 1 {
		t.Errorf("publish --backend printed %q; want one mid for one user", pubOut.String())
	}
	if err := <-done; err != nil {
		t.Fatalf("subscribe: %v %s", err, errs.String())
	}
	got := decodeLines(t, out.String())
	if len(got) != 2 ||
		got[0].Channel != channel || got[0].ModuleID != "im" || got[0].Command != "message" || string(got[0].Params) != `{"n":1}` ||
		got[1].Channel != channel || got[1].Command != "notify" || string(got[1].Params) != `{"n":2}` || got[1].MID != published.MIDs[0] ||
		!protocol.ValidMID(got[0].MID) || got[0].MID >= got[1].MID {
		t.Fatalf("subscribe printed:\n%s\nwant message n=1, then notify n=2 with mid %v", out.String(), published.MIDs)
	}

	// Long polling from the first message's mid answers the second at once.
	var lp bytes.Buffer
	if err := subscribe(ctx, []string{"--lp", "--url", srv.SubURL, "--channel", cfg.Channels["private"].ID, "--mid", got[0].MID, "--count", "1"}, &lp, &errs); err != nil {
		t.Fatalf("subscribe --lp: %v", err)
	}
	if again := decodeLines(t, lp.String()); len(again) != 1 || again[0].MID != got[1].MID || again[0].Command != "notify" {
		t.Errorf("subscribe --lp --mid %s printed %q; want the notify message", got[0].MID, lp.String())
	}
}

func TestCommandErrors(t *testing.T) {
	srv := startCLIServer(t)
	ctx := testContext(t)
	var out, errs bytes.Buffer
	for name, call := range map[string]func() error{
		"publish without a channel": func() error {
			return publishCmd(ctx, []string{"--url", srv.PubURL, "--module", "m", "--command", "c"}, nil, &out, &errs)
		},
		"publish to users without the backend": func() error {
			return publishCmd(ctx, []string{"--user", "1", "--module", "m", "--command", "c"}, nil, &out, &errs)
		},
		"publish with bad params": func() error {
			return publishCmd(ctx, []string{"--channel", "0123456789abcdef0123456789abcdef", "--module", "m", "--command", "c", "--params", "[1]"}, nil, &out, &errs)
		},
		"subscribe with a bad signature": func() error {
			return subscribe(ctx, []string{"--url", srv.WSURL, "--channel", "0123456789abcdef0123456789abcdef.00"}, &out, &errs)
		},
		"subscribe by long polling with a bad signature": func() error {
			return subscribe(ctx, []string{"--lp", "--url", srv.SubURL, "--channel", "0123456789abcdef0123456789abcdef.00"}, &out, &errs)
		},
		"subscribe with a bad mid": func() error {
			return subscribe(ctx, []string{"--channel", "0123456789abcdef0123456789abcdef", "--mid", "12"}, &out, &errs)
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := publishCmd(ctx, []string{"--backend", srv.BackendURL, "--key", "wrong", "--user", "1", "--module", "m", "--command", "c"}, nil, &out, &errs); sdk.StatusCode(err) != 401 {
		t.Errorf("publish with a wrong backend key: %v; want 401", err)
	}
}

func TestStats(t *testing.T) {
	srv := startCLIServer(t)
	ctx := testContext(t)
	var out, errs bytes.Buffer
	if err := stats(ctx, []string{"--url", srv.StatsURL}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "WEBSOCKETS") || strings.Fields(lines[1])[0] != strconv.Itoa(os.Getpid()) {
		t.Errorf("stats printed:\n%s\nwant a header and this process", out.String())
	}
	out.Reset()
	if err := stats(ctx, []string{"--url", srv.StatsURL, "--json"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	var st []sdk.ProcessStats
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st) != 1 || st[0].PID != os.Getpid() {
		t.Errorf("stats --json printed %q; want this process", out.String())
	}
}

func TestSign(t *testing.T) {
	var out, errs bytes.Buffer
	id := "0123456789abcdef0123456789abcdef"
	pair := id + ":fedcba9876543210fedcba9876543210"
	if err := sign([]string{"--key", testKey, "--algo", "sha256", id, pair}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	s, err := protocol.NewSigner(testKey, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(out.String())
	for i, want := range []string{id, pair} {
		got, sig, _ := strings.Cut(lines[i], ".")
		if len(lines) != 2 || got != want || !s.Verify(want, sig) {
			t.Fatalf("sign printed %q; want %s and %s signed with sha256", out.String(), id, pair)
		}
	}
	out.Reset()
	if err := sign([]string{"--key", testKey, "--public", id}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	s1, _ := protocol.NewSigner(testKey, "sha1")
	got, sig, _ := strings.Cut(strings.TrimSpace(out.String()), ".")
	if got != id || !s1.Verify("public:"+id, sig) {
		t.Errorf("sign --public printed %q; want the signature of public:%s", out.String(), id)
	}
	if err := sign([]string{"--public", id}, &out, &errs); err == nil {
		t.Error("sign --public without a key: no error")
	}
}

func TestParseEnvelopes(t *testing.T) {
	m := &protocol.Message{ID: 5, MID: "17000000000000000000000005", Body: []byte(`{"module_id":"m","command":"c","params":{}}`)}
	data := format.AppendEnvelope(format.AppendEnvelope(nil, m, "chan-a"), m, "chan-b")
	envs, err := parseEnvelopes(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 2 || envs[0].Channel != "chan-a" || envs[1].Channel != "chan-b" || envs[1].MID != m.MID || string(envs[0].Text) != string(m.Body) {
		t.Errorf("parsed %+v from %s", envs, data)
	}
	for _, bad := range []string{"x", protocol.EnvelopeStart + "{}", protocol.EnvelopeStart + "nope" + protocol.EnvelopeEnd} {
		if _, err := parseEnvelopes([]byte(bad)); err == nil {
			t.Errorf("parseEnvelopes(%q): no error", bad)
		}
	}
}

func FuzzParseEnvelopes(f *testing.F) {
	m := &protocol.Message{ID: 1, MID: "17000000000000000000000001", Body: []byte(`{"module_id":"m","command":"c"}`)}
	f.Add(format.AppendEnvelope(nil, m, "a"))
	f.Add([]byte(protocol.EnvelopeStart + `{"mid":1}` + protocol.EnvelopeEnd))
	f.Add([]byte(protocol.EnvelopeStart))
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := parseEnvelopes(data)
		if err == nil && len(bytes.TrimSpace(data)) > 0 && len(envs) == 0 {
			t.Fatalf("no envelope and no error for %q", data)
		}
	})
}

// TestVAPID checks that pushpull vapid prints a config the server takes.
func TestVAPID(t *testing.T) {
	var out, errs bytes.Buffer
	if err := vapid([]string{"--subject", "mailto:ops@example.com"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Decode(out.Bytes())
	if err != nil {
		t.Fatalf("vapid printed %s: %v", out.String(), err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("vapid printed %s: %v", out.String(), err)
	}
	w := cfg.WebPush
	v, err := webpush.NewVAPID(w.VAPIDPrivateKey, w.VAPIDPublicKey, w.Subject)
	if err != nil || v.PublicKey() != w.VAPIDPublicKey || w.Subject != "mailto:ops@example.com" {
		t.Fatalf("vapid printed %s: %v", out.String(), err)
	}
	out.Reset()
	if err := vapid([]string{"--env"}, &out, &errs); err != nil || !strings.HasPrefix(out.String(), "PUSHPULL_VAPID_PRIVATE_KEY=") {
		t.Fatalf("vapid --env printed %q, %v", out.String(), err)
	}
}
