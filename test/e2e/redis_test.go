package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// startRedisServer starts pushpull storing in r.
func startRedisServer(t *testing.T, r *redistest.Server, publishMode bool) *Server {
	t.Helper()
	return startServer(t, map[string]any{
		"storage":     map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port},
		"publishMode": publishMode,
		"polling":     map[string]any{"timeout": 5},
	})
}

func waitReadyStatus(t *testing.T, srv *Server, ready bool) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("ready=%v", ready), func() bool {
		r, err := tryRequest(http.MethodGet, srv.ReadyURL, "", nil)
		return err == nil && (r.Status == http.StatusOK) == ready
	})
}

// pollAll long-polls from mid until n messages came, following each
// answer's last mid.
func pollAll(t *testing.T, srv *Server, channel, mid string, n int) []Envelope {
	t.Helper()
	var out []Envelope
	for len(out) < n {
		lp, _ := subQuery(srv, channel, "mid="+mid)
		r := longPoll(t, lp)
		if r.Status == http.StatusNotModified {
			continue
		}
		if r.Status != http.StatusOK {
			t.Fatalf("long poll: status %d %q", r.Status, r.Body)
		}
		env := parseEnvelopes(t, r.Body)
		out = append(out, env...)
		mid = env[len(env)-1].MID
	}
	return out
}

func envMIDs(env []Envelope) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.MID
	}
	return out
}

// Two and three pushpull processes on one Redis: a message published on
// any of them reaches WebSocket and long-polling subscribers on all of
// them, once each, in one order.
func TestRedisFanOut(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := redistest.Start(t)
			var srvs []*Server
			var wsChannels, lpChannels []string
			var clients []*WSClient
			for i := range n {
				// With three, the first is a publisher-only process.
				srv := startRedisServer(t, r, n == 3 && i == 0)
				srvs = append(srvs, srv)
				waitReadyStatus(t, srv, true)
				if n == 3 && i == 0 {
					continue
				}
				// A channel of this process's own, so that its online
				// status tells that this process has the subscriber.
				ws, lp := newChannelID(t), newChannelID(t)
				_, wsURL := subQuery(srv, ws, "")
				clients = append(clients, mustDialWS(t, wsURL))
				waitOnline(t, srv, ws, true)
				wsChannels = append(wsChannels, ws)
				lpChannels = append(lpChannels, lp)
			}
			all := append(append([]string{}, wsChannels...), lpChannels...)
			publish(t, srvs[0], all, command("test", "first", 0))
			first := make([]string, len(clients))
			for i, c := range clients {
				first[i] = c.NextEnvelopes(t, 1)[0].MID
			}

			const count = 6
			for k := range count {
				publish(t, srvs[k%n], all, command("test", "m", k+1))
			}
			publish(t, srvs[n-1], all, command("test", "last", 0))
			var want []string
			for i, c := range clients {
				got := envMIDs(c.NextEnvelopes(t, count+1))
				if i == 0 {
					want = got
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("WebSocket %d got %v; WebSocket 0 got %v", i, got, want)
				}
				for j := 1; j < len(got); j++ {
					if got[j] <= got[j-1] {
						t.Fatalf("WebSocket %d got %v: out of order or twice", i, got)
					}
				}
			}
			for i, lp := range lpChannels {
				got := envMIDs(pollAll(t, srvs[len(srvs)-len(lpChannels)+i], lp, first[0], count+1))
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("long poll %d got %v; want %v", i, got, want)
				}
			}
		})
	}
}

// Redis killed and restarted mid-stream: publishes are refused while it is
// down, the subscriber process reports not ready until it has resubscribed,
// and a client resuming with its mid gets every accepted message.
func TestRedisRestartResume(t *testing.T) {
	r := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	pub := startRedisServer(t, r, true)
	sub := startRedisServer(t, r, false)
	waitReadyStatus(t, pub, true)
	waitReadyStatus(t, sub, true)
	id := newChannelID(t)
	_, wsURL := subQuery(sub, id, "")
	c := mustDialWS(t, wsURL)
	waitOnline(t, sub, id, true)

	var accepted []string
	send := func(n int) {
		for k := 0; k < n; k++ {
			body := command("test", "m", len(accepted))
			// The first publish after the restart may meet a dead pooled
			// connection and be refused; a backend retries.
			testutil.WaitFor(t, "a publish accepted", func() bool {
				return request(t, http.MethodPost, pub.PubURL+"?CHANNEL_ID="+id, body, nil).Status == http.StatusOK
			})
			accepted = append(accepted, body)
		}
	}
	send(5)
	seen := c.NextEnvelopes(t, 5)
	resumeFrom := seen[2].MID

	r.Kill()
	resp := request(t, http.MethodPost, pub.PubURL+"?CHANNEL_ID="+id, command("test", "down", 0), nil)
	if resp.Status == http.StatusOK {
		t.Fatal("publish answered 200 with Redis down")
	}
	waitReadyStatus(t, sub, false)
	r.Start()
	waitReadyStatus(t, sub, true)
	send(5)

	wantTexts := accepted[3:]
	check := func(what string, env []Envelope) {
		t.Helper()
		if len(env) != len(wantTexts) {
			t.Fatalf("%s: %d messages; want %d", what, len(env), len(wantTexts))
		}
		for i, e := range env {
			if string(e.Text) != wantTexts[i] {
				t.Fatalf("%s: message %d is %s; want %s", what, i, e.Text, wantTexts[i])
			}
		}
	}
	_, resumeURL := subQuery(sub, id, "mid="+resumeFrom)
	check("WebSocket resuming from "+resumeFrom, mustDialWS(t, resumeURL).NextEnvelopes(t, len(wantTexts)))
	check("long poll resuming from "+resumeFrom, pollAll(t, sub, id, resumeFrom, len(wantTexts)))
}
