package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/ps20"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// A rolling move from the push server 2.0 to pushpull (storage.layout
// "2.0") on one Redis, as docs/migration-redis.md describes it: two
// processes of the original serve a channel; one is replaced by pushpull,
// then the other. Throughout, every message reaches the clients of both
// kinds of process live, a client moving to the other kind of process
// resumes with its mid and gets exactly what it missed, from either
// writer, and after the last original process is gone the history and
// the id sequence continue. Needs the original (PUSHPULL_PS20_DIR, see
// internal/testutil/ps20); skipped without it.
func TestRollingMigration20(t *testing.T) {
	dir := ps20.Dir(t)
	r := redistest.Start(t)
	const key = "rolling-secret"
	a := ps20.Start(t, dir, r.Port, "sub-8010", key)
	b := ps20.Start(t, dir, r.Port, "sub-8011", key)
	startPushpull := func() *Server {
		srv := startServer(t, map[string]any{
			"storage": map[string]any{
				"type": "redis", "host": "127.0.0.1", "port": r.Port,
				"layout": "2.0", "defaultExpiry": 0,
			},
			"security": map[string]any{"key": key},
		})
		waitReadyStatus(t, srv, true)
		return srv
	}
	ch := newChannelID(t)
	body := func(n int) string { return command("im", "message", n) }
	expiry := map[string]string{"Message-Expiry": "600"}

	// Before the move: a client of the original.
	x := a.Dial(t, ch, "")
	waitOnlineRedis(t, r, ch)
	a.Post(t, body(0), 600, ch)
	m0 := ps20.MIDs(x.Read(1))[0]

	// b is replaced by pushpull.
	b.Stop()
	p := startPushpull()
	a.Post(t, body(1), 600, ch)
	m1 := ps20.MIDs(x.Read(1))[0]
	// A client of b comes back to pushpull with the mid it had.
	if got := envMIDs(pollAll(t, p, signed(key, ch), m0, 1)); !slices.Equal(got, []string{m1}) {
		t.Fatalf("pushpull resumed with %v, want [%s]", got, m1)
	}
	_, wsURL := subQuery(p, signed(key, ch), "mid="+m1)
	y := mustDialWS(t, wsURL)
	waitOnline(t, p, ch, true)

	// Live, both ways.
	publishWith(t, p, []string{ch}, body(2), expiry)
	a.Post(t, body(3), 600, ch)
	fromOriginal := ps20.MIDs(x.Read(2))
	fromPushpull := envMIDs(y.NextEnvelopes(t, 2))
	if !slices.Equal(fromOriginal, fromPushpull) || !(fromOriginal[0] > m1 && fromOriginal[1] > fromOriginal[0]) {
		t.Fatalf("the original's client got %v, pushpull's %v", fromOriginal, fromPushpull)
	}
	all := append([]string{m1}, fromOriginal...)

	// Clients change sides, each resuming from m0.
	if got := envMIDs(pollAll(t, p, signed(key, ch), m0, 3)); !slices.Equal(got, all) {
		t.Fatalf("pushpull resumed with %v, want %v", got, all)
	}
	if got := ps20.MIDs(a.Dial(t, ch, m0).Read(3)); !slices.Equal(got, all) {
		t.Fatalf("the original resumed with %v, want %v", got, all)
	}

	// The last original process is replaced: history and ids go on.
	a.Stop()
	q := startPushpull()
	if got := envMIDs(pollAll(t, q, signed(key, ch), m0, 3)); !slices.Equal(got, all) {
		t.Fatalf("after the move, history %v, want %v", got, all)
	}
	publishWith(t, q, []string{ch}, body(4), expiry)
	last := y.NextEnvelopes(t, 1)[0]
	if last.MID <= all[2] || !strings.Contains(string(last.Text), `"n":4`) {
		t.Fatalf("after the move, delivered %+v after %s", last, all[2])
	}
}

// Two pushpull processes in the 2.0 layout on one Redis, without the
// original: a message published on either reaches the WebSocket clients
// of both, a client resumes on the other process, and Redis holds the
// original's binary keys.
func TestRedisLayout20TwoProcesses(t *testing.T) {
	r := redistest.Start(t)
	const key = "layout20-secret"
	start := func() *Server {
		srv := startServer(t, map[string]any{
			"storage":  map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port, "layout": "2.0"},
			"security": map[string]any{"key": key},
		})
		waitReadyStatus(t, srv, true)
		return srv
	}
	p, q := start(), start()
	ch := newChannelID(t)
	var clients []*WSClient
	for _, srv := range []*Server{p, q} {
		_, wsURL := subQuery(srv, signed(key, ch), "")
		clients = append(clients, mustDialWS(t, wsURL))
		waitOnline(t, srv, ch, true)
	}
	expiry := map[string]string{"Message-Expiry": "600"}
	publishWith(t, p, []string{ch}, command("im", "message", 0), expiry)
	publishWith(t, q, []string{ch}, command("im", "message", 1), expiry)
	var sent []string
	for i, c := range clients {
		got := envMIDs(c.NextEnvelopes(t, 2))
		if i == 0 {
			sent = got
		} else if !slices.Equal(got, sent) {
			t.Fatalf("the clients got %v and %v", sent, got)
		}
	}
	if !(sent[0] < sent[1]) {
		t.Fatalf("ids %v", sent)
	}
	if got := envMIDs(pollAll(t, q, signed(key, ch), sent[0], 1)); !slices.Equal(got, sent[1:]) {
		t.Fatalf("resumed with %v, want %v", got, sent[1:])
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mid, _ := hex.DecodeString(sent[0])
	id, _ := hex.DecodeString(ch)
	ctx := context.Background()
	if n, err := c.Do(ctx, c.B().Exists().Key("message:"+string(mid), "channel:messages:"+string(id)).Build()).AsInt64(); err != nil || n != 2 {
		t.Fatalf("the 2.0 layout's keys: %d exist, %v", n, err)
	}
}

// waitOnlineRedis waits until a process of the original marked ch online.
func waitOnlineRedis(t *testing.T, r *redistest.Server, ch string) {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := hex.DecodeString(ch)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, fmt.Sprintf("channel %s online in Redis", ch), func() bool {
		n, err := c.Do(context.Background(), c.B().Exists().Key("channel:online:"+string(id)).Build()).AsInt64()
		return err == nil && n == 1
	})
}
