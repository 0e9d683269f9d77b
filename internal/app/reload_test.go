package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/sdk"
)

// testConfig is the default layout on free ports, as Parse returns it.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	for i := range cfg.Servers {
		cfg.Servers[i].Port = 0
	}
	cfg.Security.Key = "first-key"
	cfg.Security.BackendKey = "backend-key"
	cfg.ShutdownTimeout = 5
	cfg.UniqueID()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startApp runs a process on cfg until the test ends.
func startApp(t *testing.T, cfg *config.Config) (*App, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return a, cancel
}

// Reload tells the keys it applied from those that need a restart, and
// counts neither the ports bound for port 0 nor a generated process id as
// changes; the backend signs with the new key from then on.
func TestReload(t *testing.T) {
	a, _ := startApp(t, testConfig(t))
	a.LogLevel = new(slog.LevelVar)
	if err := a.WaitReady(t.Context(), nil); err != nil {
		t.Fatal(err)
	}

	next := testConfig(t)
	if r, err := a.Reload(next); err != nil || len(r.Applied)+len(r.NotApplied) != 0 {
		t.Fatalf("the same file again: %+v, %v; want nothing changed", r, err)
	}

	next = testConfig(t)
	next.Security.Key = "second-key"
	next.Limits.ClientBurst = 7
	next.Log.Level = "debug"
	next.Security.TrustedOrigins = []string{"https://admin.example"}
	next.Storage.MessageTTL = 60
	next.Security.Clients = map[string]string{"client": "client-key"} // the mode: not while running
	r, err := a.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"security.key", "security.trustedOrigins", "limits.clientBurst", "log.level"}; !sameSet(r.Applied, want) {
		t.Errorf("applied %q, want %q", r.Applied, want)
	}
	if want := []string{"security.clients", "storage.messageTTL"}; !sameSet(r.NotApplied, want) {
		t.Errorf("not applied %q, want %q", r.NotApplied, want)
	}
	if a.LogLevel.Level() != slog.LevelDebug {
		t.Errorf("log level %v after the reload, want debug", a.LogLevel.Level())
	}
	if a.PreviousKeyUntil().IsZero() {
		t.Error("no previous key after the key changed")
	}
	if s := r.String(); !strings.Contains(s, "applied security.key") || !strings.Contains(s, "not applied (restart to change) security.clients") {
		t.Errorf("String() = %q", s)
	}

	// The backend hands out channels signed with the new key.
	pub := a.Addrs()[1].String()
	got, err := sdk.New("http://"+pub+"/pushpull/", "backend-key").Config(t.Context(), "1")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := protocol.NewSigner("second-key", "sha1")
	if _, err := signer.ParseChannels(got.Channels["private"].ID); err != nil {
		t.Errorf("the private channel %q is not signed with the new key: %v", got.Channels["private"].ID, err)
	}

	// The next reload compares with what runs: the applied keys are no
	// change any more, the others still are.
	r, err = a.Reload(next)
	if err != nil || len(r.Applied) != 0 || !sameSet(r.NotApplied, []string{"security.clients", "storage.messageTTL"}) {
		t.Errorf("the same file once more: %+v, %v", r, err)
	}
}

// A certificate that does not load fails the reload and changes nothing;
// TLS added to a plain server needs a restart.
func TestReloadCertificates(t *testing.T) {
	cert, key, _ := testutil.SelfSigned(t, t.TempDir(), "tls")
	cfg := testConfig(t)
	cfg.Servers[0].SSL = &config.SSL{Cert: cert, Key: key}
	a, _ := startApp(t, cfg)

	next := testConfig(t)
	next.Servers[0].SSL = &config.SSL{Cert: cert, Key: key}
	next.Servers[1].SSL = &config.SSL{Cert: cert, Key: key}
	r, err := a.Reload(next)
	if err != nil || !slices.Equal(r.Certificates, []string{"servers[0]"}) || !slices.Equal(r.NotApplied, []string{"servers[1].ssl"}) {
		t.Errorf("reload: %+v, %v; want servers[0]'s certificate re-read, servers[1].ssl not applied", r, err)
	}

	next = testConfig(t)
	next.Security.Key = "second-key"
	next.Servers[0].SSL = &config.SSL{Cert: cert + ".missing", Key: key}
	if _, err := a.Reload(next); err == nil || !strings.Contains(err.Error(), "servers[0].ssl") {
		t.Errorf("a missing certificate: err = %v, want one naming servers[0].ssl", err)
	}
	if !a.PreviousKeyUntil().IsZero() {
		t.Error("the key changed by a reload that failed")
	}
}

// WaitReady returns once the process serves; Alive answers while it does
// and fails once it has stopped.
func TestWaitReadyAlive(t *testing.T) {
	a, cancel := startApp(t, testConfig(t))
	if err := a.WaitReady(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Alive(t.Context()); err != nil {
		t.Fatalf("Alive while serving: %v", err)
	}
	cancel()
	// The listeners close during the stop: Alive fails from then on.
	testutil.WaitFor(t, "Alive failing after the stop", func() bool { return a.Alive(context.Background()) != nil })
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Reloads while requests run: the race detector watches what a reload
// replaces (limits, keys, rates) against the requests reading it.
func TestReloadUnderLoad(t *testing.T) {
	a, _ := startApp(t, testConfig(t))
	a.LogLevel = new(slog.LevelVar)
	sub, pub := a.Addrs()[0].String(), a.Addrs()[1].String()
	stop := make(chan struct{})
	var requests atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ch := fmt.Sprintf("%032x", i)
				if r, err := client.Post("http://"+pub+"/bitrix/pub/?CHANNEL_ID="+ch, "text/plain", strings.NewReader(`{"module_id":"m","command":"c","params":{}}`)); err == nil {
					r.Body.Close()
				}
				if r, err := client.Get("http://" + sub + "/bitrix/rest/?CHANNEL_ID=" + ch + ".00"); err == nil {
					r.Body.Close()
				}
				requests.Add(1)
			}
		})
	}
	for i := range 20 {
		// Requests between each two reloads.
		seen := requests.Load()
		testutil.WaitFor(t, "requests", func() bool { return requests.Load() > seen })
		next := testConfig(t)
		next.Security.Key = fmt.Sprintf("key-%d", i%3)
		next.Limits.MaxPayload = 1000 + i
		next.Limits.ClientMessages = 1 + i
		next.Limits.MaxConnPerChannel = i % 4
		if _, err := a.Reload(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
