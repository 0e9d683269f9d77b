package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

const backendKey = "e2e-backend-key"

// startBackendServer starts a server with the backend API on /pushpull/
// and channels written for writeTTL seconds; redisPort 0 means the memory
// store.
func startBackendServer(t *testing.T, redisPort int, writeTTL float64) (*Server, string) {
	t.Helper()
	routes := map[string]any{
		"sub":     []any{"/bitrix/sub/", "/bitrix/subws/"},
		"pub":     []any{"/bitrix/pub/"},
		"backend": "/pushpull/",
	}
	cfg := map[string]any{
		"servers":  []any{map[string]any{"name": "all", "routes": routes}},
		"security": map[string]any{"key": "e2e-secret-key", "backendKey": backendKey},
		"backend":  map[string]any{"channelWriteTTL": writeTTL, "channelStorageTTL": 2 * writeTTL},
	}
	if redisPort != 0 {
		cfg["storage"] = map[string]any{"type": "redis", "host": "127.0.0.1", "port": redisPort}
	}
	srv := startServer(t, cfg)
	return srv, "http://127.0.0.1:" + strconv.Itoa(srv.Ports[0]) + "/pushpull/"
}

// backendCall posts body to the backend API's call and decodes the JSON
// answer into out, failing the test unless the status is 200.
func backendCall(t *testing.T, base, call string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := request(t, http.MethodPost, base+call, string(b), map[string]string{"Authorization": "Bearer " + backendKey})
	if r.Status != http.StatusOK {
		t.Fatalf("backend %s %s: status %d, body %q", call, b, r.Status, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(r.Body), out); err != nil {
			t.Fatalf("backend %s: %v in %q", call, err, r.Body)
		}
	}
}

type publishAnswer struct {
	Published []struct {
		MIDs     []string `json:"mids"`
		Channels int      `json:"channels"`
	} `json:"published"`
}

func TestBackend(t *testing.T) {
	t.Run("memory", func(t *testing.T) { backendSuite(t, 0) })
	t.Run("redis", func(t *testing.T) { backendSuite(t, redistest.Start(t).Port) })
}

func backendSuite(t *testing.T, redisPort int) {
	t.Run("api", func(t *testing.T) {
		srv, base := startBackendServer(t, redisPort, 3600)
		backendAPI(t, srv, base)
	})
	t.Run("sdk", func(t *testing.T) {
		srv, base := startBackendServer(t, redisPort, 3600)
		backendSDK(t, srv, base)
	})
	t.Run("rotation", func(t *testing.T) {
		srv, base := startBackendServer(t, redisPort, 3)
		backendRotation(t, srv, base)
	})
}

// backendAPI checks the config answer, the authentication and the errors.
func backendAPI(t *testing.T, srv *Server, base string) {
	for _, auth := range []string{"", "Bearer wrong", backendKey} {
		r := request(t, http.MethodPost, base+"config", `{"userId":1}`, map[string]string{"Authorization": auth})
		if r.Status != http.StatusUnauthorized {
			t.Errorf("config with Authorization %q: status %d; want 401", auth, r.Status)
		}
	}
	var cfg struct {
		Server struct {
			Version     int    `json:"version"`
			LongPolling string `json:"long_polling"`
			WebSocket   string `json:"websocket"`
		} `json:"server"`
		API struct {
			RevisionWeb int `json:"revision_web"`
		} `json:"api"`
		Channels map[string]struct {
			ID    string `json:"id"`
			Start string `json:"start"`
			End   string `json:"end"`
			Type  string `json:"type"`
		} `json:"channels"`
		ServerTime string `json:"serverTime"`
	}
	backendCall(t, base, "config", map[string]any{"userId": 1}, &cfg)
	if cfg.Server.Version != 3 || cfg.API.RevisionWeb != 19 || cfg.Server.WebSocket != srv.WSURL || cfg.Server.LongPolling != srv.SubURL {
		t.Errorf("config server %+v api %+v; want version 3, revision 19, %s, %s", cfg.Server, cfg.API, srv.WSURL, srv.SubURL)
	}
	for _, typ := range []string{"private", "shared"} {
		c, ok := cfg.Channels[typ]
		id, sig, _ := strings.Cut(c.ID, ".")
		start, err1 := time.Parse(time.RFC3339, c.Start)
		end, err2 := time.Parse(time.RFC3339, c.End)
		if !ok || c.Type != typ || sig != sign(srv.Key, id) || len(id) != 32 || err1 != nil || err2 != nil || !end.After(start) {
			t.Errorf("config channel %s: %+v; want a signed 32-character id, start before end", typ, c)
		}
	}
	// The same user gets the same channels; another user another private one.
	var again, other struct {
		Channels map[string]struct{ ID string } `json:"channels"`
	}
	backendCall(t, base, "config", map[string]any{"userId": "1"}, &again)
	backendCall(t, base, "config", map[string]any{"userId": 2}, &other)
	if again.Channels["private"].ID != cfg.Channels["private"].ID || other.Channels["private"].ID == cfg.Channels["private"].ID ||
		other.Channels["shared"].ID != cfg.Channels["shared"].ID {
		t.Errorf("channels: user 1 %v then %v, user 2 %v", cfg.Channels, again.Channels, other.Channels)
	}

	for _, bad := range []struct{ call, body string }{
		{"config", `{"userId":""}`},
		{"config", `{"user":1}`},
		{"publish", `{"users":[1]}`},
		{"publish", `{"message":{"module_id":"m","command":"c"}}`},
		{"publish", `{"users":[1],"message":{"module_id":"m","command":"c","params":[1]}}`},
		{"watch", `{"userId":1,"tags":[]}`},
		{"command", `{"users":[1],"command":"reboot"}`},
		{"online", `not json`},
	} {
		r := request(t, http.MethodPost, base+bad.call, bad.body, map[string]string{"Authorization": "Bearer " + backendKey})
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s %s: status %d; want 400", bad.call, bad.body, r.Status)
		}
	}
	r := request(t, http.MethodGet, base+"config", "", map[string]string{"Authorization": "Bearer " + backendKey})
	if r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET config: status %d; want 405", r.Status)
	}
	r = request(t, http.MethodPost, base+"nothing", "{}", map[string]string{"Authorization": "Bearer " + backendKey})
	if r.Status != http.StatusNotFound {
		t.Errorf("unknown call: status %d; want 404", r.Status)
	}
}

// backendSDK runs the official SDK on a config fetched from the backend
// API and checks that it receives by user id, by watch tag, in a batch, and
// that the user shows online.
func backendSDK(t *testing.T, srv *Server, base string) {
	opts := SDKOptions{Extra: map[string]any{"backend": map[string]any{"url": base, "key": backendKey}, "userId": 7}}
	c := startSDK(t, opts)
	c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" && e.Transport == "websocket" })
	var cfg struct {
		Channels map[string]struct{ ID string } `json:"channels"`
	}
	backendCall(t, base, "config", map[string]any{"userId": 7}, &cfg)
	private, _, _ := strings.Cut(cfg.Channels["private"].ID, ".")
	waitOnline(t, srv, private, true)

	var online struct {
		Users map[string]struct {
			Online   bool   `json:"online"`
			LastSeen *int64 `json:"lastSeen"`
		} `json:"users"`
	}
	backendCall(t, base, "online", map[string]any{"users": []any{7, 8}}, &online)
	if u := online.Users["7"]; !u.Online || u.LastSeen == nil || *u.LastSeen != 0 {
		t.Errorf("online status of user 7: %+v; want online", u)
	}
	if u := online.Users["8"]; u.Online || u.LastSeen != nil {
		t.Errorf("online status of user 8 (never seen): %+v; want offline, no last seen", u)
	}

	msg := func(cmd string, n int) map[string]any {
		return map[string]any{"module_id": "test", "command": cmd, "params": map[string]any{"n": n}}
	}
	var ans publishAnswer
	backendCall(t, base, "publish", map[string]any{"users": []any{7, "8"}, "message": msg("byuser", 1)}, &ans)
	if len(ans.Published) != 1 || len(ans.Published[0].MIDs) != 1 || ans.Published[0].Channels != 1 {
		t.Errorf("publish to users 7 and 8 (without a channel): %+v; want one message to one channel", ans)
	}
	checkSDKMessage(t, lastMessage(c.WaitCommand(t, "byuser")), "byuser", 1)

	backendCall(t, base, "watch", map[string]any{"userId": 7, "tags": []string{"IM_CHAT_5"}, "ttl": 600}, nil)
	backendCall(t, base, "publish", map[string]any{"tags": []string{"IM_CHAT_5"}, "message": msg("bytag", 2)}, nil)
	checkSDKMessage(t, lastMessage(c.WaitCommand(t, "bytag")), "bytag", 2)

	var ext struct{ Extended, Unknown []string }
	backendCall(t, base, "watch/extend", map[string]any{"userId": 7, "tags": []string{"IM_CHAT_5", "OTHER"}}, &ext)
	if fmt.Sprint(ext.Extended) != "[IM_CHAT_5]" || fmt.Sprint(ext.Unknown) != "[OTHER]" {
		t.Errorf("extend: %+v; want IM_CHAT_5 extended, OTHER unknown", ext)
	}
	backendCall(t, base, "unwatch", map[string]any{"userId": 7, "tags": []string{"IM_CHAT_5"}}, nil)
	backendCall(t, base, "publish", map[string]any{"batch": []any{
		map[string]any{"tags": []string{"IM_CHAT_5"}, "message": msg("unwatched", 3)},
		map[string]any{"shared": true, "message": msg("everyone", 4)},
		map[string]any{"users": []any{7}, "message": msg("sentinel", 5)},
	}}, nil)
	events := c.WaitCommand(t, "sentinel")
	var got []string
	for _, e := range events {
		if e.Type == "message" {
			got = append(got, e.Command)
		}
	}
	if fmt.Sprint(got) != "[everyone sentinel]" {
		t.Errorf("after unwatching: messages %v; want [everyone sentinel]", got)
	}
}

func lastMessage(events []SDKEvent) SDKEvent { return events[len(events)-1] }

// backendRotation publishes by user id while the user's channel is
// replaced (written for 3 s) and checks that the official SDK follows the
// channel_expire notice to the new channel and gets every message once.
func backendRotation(t *testing.T, srv *Server, base string) {
	opts := SDKOptions{Extra: map[string]any{"backend": map[string]any{"url": base, "key": backendKey}, "userId": 9}}
	c := startSDK(t, opts)
	events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" && e.Transport == "websocket" })
	first := channelParam(t, events[len(events)-1].URL)
	// A client without a mid gets live messages only: wait until it reads.
	id, _, _ := strings.Cut(first, ".")
	waitOnline(t, srv, id, true)

	var mids []string
	n := 0
	publishOne := func() {
		n++
		var ans publishAnswer
		backendCall(t, base, "publish", map[string]any{"users": []any{9},
			"message": map[string]any{"module_id": "test", "command": "m" + strconv.Itoa(n), "params": map[string]any{"n": n}}}, &ans)
		for _, p := range ans.Published {
			mids = append(mids, p.MIDs...)
		}
	}
	// Publish until the client has followed two rotations, then a little more.
	var all []SDKEvent
	defer func() {
		if t.Failed() {
			t.Logf("events: %s", eventLines(all))
		}
	}()
	followed := map[string]bool{} // the channels the client moved to
	testutil.WaitFor(t, "the client to follow two rotations", func() bool {
		publishOne()
		events := c.WaitCommand(t, "m"+strconv.Itoa(n))
		all = append(all, events...)
		for _, e := range events {
			if e.Type != "request" {
				continue
			}
			if ch := channelParam(t, e.URL); ch != first {
				followed[ch] = true
			}
		}
		return len(followed) >= 2
	})
	for range 5 {
		publishOne()
	}
	all = append(all, c.WaitCommand(t, "m"+strconv.Itoa(n))...)

	count := map[string]int{}
	expired := 0
	for _, e := range all {
		switch {
		case e.Type == "message" && e.ModuleID == "test":
			count[e.Command]++
		case e.Type == "message" && e.ModuleID == "pull" && e.Command == "channel_expire":
			expired++
		}
	}
	for i := 1; i <= n; i++ {
		if c := count["m"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("message m%d delivered %d times; want once", i, c)
		}
	}
	if expired == 0 {
		t.Errorf("no channel_expire notice reached the client")
	}
	delivered := map[string]int{}
	for _, e := range envelopesOf(all) {
		delivered[e.MID]++
	}
	for _, mid := range mids {
		if delivered[mid] != 1 {
			t.Errorf("message %s reached the client %d times; want once", mid, delivered[mid])
		}
	}
}

// channelParam returns the private channel a connection URL names.
func channelParam(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	private, _, _ := strings.Cut(u.Query().Get("CHANNEL_ID"), "/")
	return private
}

// With storage.snapshot, the backend API's state survives a graceful
// restart as the messages do: a client reconnecting with the channel it
// was given before is still reached by publishes to its user and its
// watched tags.
func TestBackendStateSurvivesRestart(t *testing.T) {
	routes := map[string]any{
		"sub":     []any{"/bitrix/sub/", "/bitrix/subws/"},
		"pub":     []any{"/bitrix/pub/"},
		"backend": "/pushpull/",
	}
	cfg := map[string]any{
		"servers":  []any{map[string]any{"name": "all", "routes": routes}},
		"security": map[string]any{"key": "e2e-secret-key", "backendKey": backendKey},
		"storage":  map[string]any{"snapshot": filepath.Join(t.TempDir(), "history.snapshot")},
	}
	first := startServer(t, cfg)
	base := "http://127.0.0.1:" + strconv.Itoa(first.Ports[0]) + "/pushpull/"
	var given struct {
		Channels map[string]struct{ ID string } `json:"channels"`
	}
	backendCall(t, base, "config", map[string]any{"userId": 7}, &given)
	backendCall(t, base, "watch", map[string]any{"userId": 7, "tags": []string{"chat42"}, "ttl": 600}, nil)
	first.ExitExpected = true
	first.stop(t)

	second := startServer(t, cfg)
	base = "http://127.0.0.1:" + strconv.Itoa(second.Ports[0]) + "/pushpull/"
	_, wsURL := subQuery(second, given.Channels["private"].ID, "")
	c := mustDialWS(t, wsURL)
	id, _, _ := strings.Cut(given.Channels["private"].ID, ".")
	waitOnline(t, second, id, true)
	var byUser, byTag publishAnswer
	backendCall(t, base, "publish", map[string]any{"users": []int{7}, "message": map[string]any{"module_id": "im", "command": "to-user", "params": map[string]any{}}}, &byUser)
	backendCall(t, base, "publish", map[string]any{"batch": []any{map[string]any{"tags": []string{"chat42"}, "message": map[string]any{"module_id": "im", "command": "to-tag", "params": map[string]any{}}}}}, &byTag)
	for _, want := range []string{"to-user", "to-tag"} {
		env := c.NextEnvelopes(t, 1)
		if !strings.Contains(string(env[0].Text), `"command":"`+want+`"`) {
			t.Fatalf("after the restart got %s; want the %s message (answers %+v %+v)", env[0].Text, want, byUser, byTag)
		}
	}
}
