package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/sdk"
)

// The server every test and the example share; each test uses its own
// user ids.
var (
	srv        *testServer
	backendURL string
	backendKey = "sdk-backend-key"
)

const securityKey = "sdk-security-key"

func TestMain(m *testing.M) {
	var err error
	srv, err = startServer(securityKey, backendKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk tests:", err)
		os.Exit(1)
	}
	backendURL = srv.BackendURL
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "sdk tests: server:", err)
	}
	os.Exit(code)
}

// Deadlines bound a hung test; they do not measure speed.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient() *sdk.Client { return sdk.New(srv.BackendURL, backendKey) }

func msg(cmd string, n int) sdk.Message {
	return sdk.Message{ModuleID: "test", Command: cmd, Params: map[string]any{"n": n}}
}

func TestConfig(t *testing.T) {
	ctx := testContext(t)
	c := newClient()
	cfg, err := c.Config(ctx, "config-1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Version != 3 || cfg.API.RevisionWeb != 19 || cfg.Server.WebSocket != srv.WSURL || cfg.Server.LongPolling != srv.SubURL || !cfg.Server.ServerEnabled {
		t.Errorf("config server %+v api %+v; want version 3, revision 19, %s, %s", cfg.Server, cfg.API, srv.WSURL, srv.SubURL)
	}
	signer, _ := protocol.NewSigner(securityKey, "sha1")
	for _, typ := range []string{"private", "shared"} {
		ch := cfg.Channels[typ]
		id, sig, _ := strings.Cut(ch.ID, ".")
		if ch.Type != typ || !protocol.ValidID(id) || !signer.Verify(id, sig) {
			t.Errorf("config channel %s: %+v; want a validly signed id", typ, ch)
		}
	}
	again, err := c.Config(ctx, "config-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.Channels["private"].ID != cfg.Channels["private"].ID {
		t.Errorf("second config: private channel %s; want %s", again.Channels["private"].ID, cfg.Channels["private"].ID)
	}
}

// subscriber is a raw WebSocket subscriber in text mode.
type subscriber struct {
	conn net.Conn
	rw   io.ReadWriter // reads what the handshake left buffered first
}

func subscribe(t *testing.T, channelID string) *subscriber {
	t.Helper()
	conn, br, _, err := ws.Dial(testContext(t), srv.WSURL+"?CHANNEL_ID="+channelID)
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	// The deadline bounds a hung test; it does not measure speed.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return &subscriber{conn: conn, rw: wsclient.Stream(conn, br)}
}

// envelope is one received message.
type envelope struct {
	MID     string          `json:"mid"`
	Channel string          `json:"channel"`
	Text    json.RawMessage `json:"text"`
}

// next reads the next text frame and returns its first envelope.
func (s *subscriber) next(t *testing.T) envelope {
	t.Helper()
	for {
		data, op, err := wsutil.ReadServerData(s.rw)
		if err != nil {
			t.Fatalf("WebSocket read: %v", err)
		}
		if op != ws.OpText {
			continue
		}
		obj, ok := strings.CutPrefix(string(data), "#!NGINXNMS!#")
		obj, _, found := strings.Cut(obj, "#!NGINXNME!#")
		if !ok || !found {
			t.Fatalf("frame is not a text envelope: %q", data)
		}
		var e envelope
		if err := json.Unmarshal([]byte(obj), &e); err != nil {
			t.Fatalf("envelope %q: %v", obj, err)
		}
		return e
	}
}

// waitOnline waits until the backend API reports user online.
func waitOnline(t *testing.T, c *sdk.Client, user string) {
	t.Helper()
	ctx := testContext(t)
	var st sdk.Status
	testutil.WaitFor(t, "user "+user+" online", func() bool {
		all, err := c.Online(ctx, []string{user})
		if err != nil {
			t.Fatal(err)
		}
		st = all[user]
		return st.Online
	})
	if st.LastSeen == nil || *st.LastSeen != 0 {
		t.Errorf("online user %s: last seen %v; want 0", user, st.LastSeen)
	}
}

func checkText(t *testing.T, e envelope, cmd string, n int) {
	t.Helper()
	var body struct {
		ModuleID string `json:"module_id"`
		Command  string `json:"command"`
		Params   struct {
			N int `json:"n"`
		} `json:"params"`
		Extra struct {
			RevisionWeb int `json:"revision_web"`
		} `json:"extra"`
	}
	if err := json.Unmarshal(e.Text, &body); err != nil {
		t.Fatalf("message text %s: %v", e.Text, err)
	}
	if body.ModuleID != "test" || body.Command != cmd || body.Params.N != n || body.Extra.RevisionWeb != 19 {
		t.Errorf("received %s; want test/%s with n=%d and revision 19", e.Text, cmd, n)
	}
}

// TestDelivery publishes by user id, by tag, in a batch, by channel and
// on the raw route, and checks that the user's WebSocket receives each.
func TestDelivery(t *testing.T) {
	ctx := testContext(t)
	c := newClient()
	cfg, err := c.Config(ctx, "deliver-1")
	if err != nil {
		t.Fatal(err)
	}
	private := cfg.Channels["private"].ID
	sub := subscribe(t, private)
	waitOnline(t, c, "deliver-1")

	p, err := c.Publish(ctx, sdk.Publish{Users: []string{"deliver-1", "nobody"}, Message: msg("byuser", 1), Expiry: 60})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.MIDs) != 1 || p.Channels != 1 || p.Users != 1 {
		t.Errorf("publish to a user with a channel and one without: %+v; want 1 mid, 1 channel, 1 user", p)
	}
	e := sub.next(t)
	checkText(t, e, "byuser", 1)
	if e.MID != p.MIDs[0] || e.Channel != strings.Split(private, ".")[0] {
		t.Errorf("received mid %s on %s; want %s on the private channel", e.MID, e.Channel, p.MIDs[0])
	}

	w, err := c.Watch(ctx, "deliver-1", []string{"CHAT_1", "CHAT_2"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Tags, []string{"CHAT_1", "CHAT_2"}) || w.Expires <= time.Now().Unix() {
		t.Errorf("watch: %+v; want both tags, expiring later", w)
	}
	if _, err := c.Publish(ctx, sdk.Publish{Tags: []string{"CHAT_2"}, Message: msg("bytag", 2)}); err != nil {
		t.Fatal(err)
	}
	checkText(t, sub.next(t), "bytag", 2)

	if err := c.Unwatch(ctx, "deliver-1", []string{"CHAT_2"}); err != nil {
		t.Fatal(err)
	}
	ext, err := c.ExtendWatch(ctx, "deliver-1", []string{"CHAT_1", "CHAT_2"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ext.Extended, []string{"CHAT_1"}) || !slices.Equal(ext.Unknown, []string{"CHAT_2"}) {
		t.Errorf("extend after unwatching CHAT_2: %+v; want CHAT_1 extended, CHAT_2 unknown", ext)
	}
	// A publish to the unwatched tag reaches nobody; the batch's second
	// publish arrives next.
	res, err := c.Batch(ctx, []sdk.Publish{
		{Tags: []string{"CHAT_2"}, Message: msg("unwatched", 3)},
		{Channels: []string{private}, Message: msg("bychannel", 4)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Channels != 0 || res[1].Channels != 1 {
		t.Errorf("batch: %+v; want no channel for the unwatched tag, one for the channel", res)
	}
	checkText(t, sub.next(t), "bychannel", 4)

	id, _, _ := strings.Cut(private, ".")
	if err := sdk.New(srv.BackendURL, backendKey, sdk.WithPublishURL(srv.PubURL)).PublishRaw(ctx, []string{id},
		[]byte(`{"module_id":"test","command":"raw","params":{"n":5},"extra":{"revision_web":19}}`), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	checkText(t, sub.next(t), "raw", 5)

	n, err := c.Subscribers(ctx, []string{private, "0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != 1 || n[id] != 1 {
		t.Errorf("subscribers: %v; want one on %s", n, id)
	}

	cp, err := c.Command(ctx, []string{"deliver-1"}, sdk.ConfigExpire)
	if err != nil {
		t.Fatal(err)
	}
	e = sub.next(t)
	if cp.Channels != 1 || e.MID != cp.MIDs[0] || !strings.Contains(string(e.Text), `"command":"config_expire"`) {
		t.Errorf("config_expire: %+v, received %s", cp, e.Text)
	}
	if _, err := c.CommandAll(ctx, sdk.ServerRestart); err != nil {
		t.Fatal(err)
	}
}

func TestOnlineAndPublicChannels(t *testing.T) {
	ctx := testContext(t)
	c := newClient()
	if _, err := c.Config(ctx, "public-1"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Online(ctx, []string{"public-1", "never-seen"})
	if err != nil {
		t.Fatal(err)
	}
	if st["public-1"].Online || st["never-seen"].Online || st["never-seen"].LastSeen != nil || len(st) != 2 {
		t.Errorf("online: %+v; want both offline, never-seen without a last-seen time", st)
	}
	pc, err := c.PublicChannels(ctx, []string{"public-1", "never-seen"})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := protocol.NewSigner(securityKey, "sha1")
	ch, ok := pc["public-1"]
	if len(pc) != 1 || !ok || ch.UserID != "public-1" || !protocol.ValidID(ch.PublicID) || !signer.Verify("public:"+ch.PublicID, ch.Signature) {
		t.Errorf("public channels: %+v; want public-1's, signed", pc)
	}
}

func TestServerStats(t *testing.T) {
	// The stats route is found on the backend route's host, or given.
	st, err := newClient().ServerStats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 {
		t.Errorf("stats: %+v; want one process", st)
	}
	st, err = sdk.New("", "", sdk.WithStatsURL(srv.StatsURL)).ServerStats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].PID != os.Getpid() || st[0].ProcessUniqueID == "" || st[0].Date == 0 {
		t.Errorf("stats: %+v; want this process", st)
	}
}

func TestErrors(t *testing.T) {
	ctx := testContext(t)
	// A wrong key, a call the server refuses and a raw publish it refuses:
	// each error carries the status and the server's text.
	_, err := sdk.New(srv.BackendURL, "wrong").Config(ctx, "1")
	var e *sdk.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Message != "missing or wrong backend key" {
		t.Errorf("wrong key: %v; want 401 with the server's text", err)
	}
	c := newClient()
	for name, call := range map[string]func() error{
		"no receivers": func() error { _, err := c.Publish(ctx, sdk.Publish{Message: msg("x", 1)}); return err },
		"bad user":     func() error { _, err := c.Config(ctx, "a b"); return err },
		"bad command":  func() error { _, err := c.Command(ctx, []string{"1"}, "reboot"); return err },
		"no tags":      func() error { _, err := c.Watch(ctx, "1", nil, 0); return err },
		"bad params": func() error {
			_, err := c.Publish(ctx, sdk.Publish{Users: []string{"1"}, Message: sdk.Message{ModuleID: "m", Command: "c", Params: []int{1}}})
			return err
		},
	} {
		if code := sdk.StatusCode(call()); code != http.StatusBadRequest {
			t.Errorf("%s: status %d; want 400", name, code)
		}
	}
	err = c.PublishRaw(ctx, []string{"not-a-channel"}, []byte("{}"), 0)
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Message == "" {
		t.Errorf("raw publish to a bad channel: %v; want 400 with the server's text", err)
	}
	if err := c.PublishRaw(ctx, nil, []byte("{}"), 0); err == nil {
		t.Error("raw publish to no channel succeeded")
	}
}

func TestDisabledAPI(t *testing.T) {
	off, err := startServer("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	_, err = sdk.New(off.BackendURL, "any").Config(testContext(t), "1")
	if sdk.StatusCode(err) != http.StatusNotFound {
		t.Errorf("config with the API off: %v; want 404", err)
	}
}

func TestHTTPClientOption(t *testing.T) {
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := sdk.New(srv.BackendURL, backendKey, sdk.WithHTTPClient(hc)).Online(testContext(t), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if !used {
		t.Error("the client did not use the given http.Client")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
