package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// A client that resumes by mid while publishing goes on gets the messages
// it missed and then the live ones, each once, in id order, with nothing
// skipped: live messages never overtake history, on WebSocket and long
// polling, on the memory store and on Redis. Every round resumes about
// 1,500 messages back from the newest while a publisher keeps publishing.
func TestResumeWhilePublishing(t *testing.T) {
	engines := map[string]func(t *testing.T) *Server{
		"memory": func(t *testing.T) *Server { return startP3(t, "", 5) },
		"redis": func(t *testing.T) *Server {
			return startRedisServer(t, redistest.Start(t), false)
		},
	}
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			srv := engines[name](t)
			ch := newChannelID(t)
			rec := newSequenceRecorder(t, srv, ch)

			const missed, rounds = 1500, 12
			pub := startNumberedPublisher(t, srv, ch)
			rec.waitFor(t, missed+10)
			for _, transport := range []string{"websocket", "long polling"} {
				for round := range rounds {
					head := rec.count()
					from := head - missed
					mid := rec.mid(from)
					// Read until past what was published once the client had
					// connected: some of it is live, not history.
					var got []numbered
					switch transport {
					case "websocket":
						got = resumeWS(t, srv, ch, mid, func() int { return pub.count() + 20 })
					default:
						got = resumeLP(t, srv, ch, mid, func() int { return pub.count() + 20 })
					}
					checkSequence(t, fmt.Sprintf("%s round %d from %d", transport, round, from), got, from+1)
				}
			}
			pub.stop(t)
			rec.check(t)
		})
	}
}

// numbered is a delivered message of the numbered publisher.
type numbered struct {
	n   int
	mid string
}

func numberOf(t testing.TB, e Envelope) numbered {
	t.Helper()
	var body struct {
		Params struct {
			N int `json:"n"`
		} `json:"params"`
	}
	if err := json.Unmarshal(e.Text, &body); err != nil || body.Params.N == 0 {
		t.Fatalf("envelope text %s: not a numbered message (%v)", e.Text, err)
	}
	return numbered{body.Params.N, e.MID}
}

// checkSequence fails unless got is first, first+1, ... with increasing
// mids: nothing repeated, skipped or out of order.
func checkSequence(t testing.TB, what string, got []numbered, first int) {
	t.Helper()
	for i, g := range got {
		if g.n != first+i {
			t.Fatalf("%s: delivery %d is message %d after %v; want %d", what, i, g.n, got[max(0, i-3):i], first+i)
		}
		if i > 0 && g.mid <= got[i-1].mid {
			t.Fatalf("%s: mid %s after %s", what, g.mid, got[i-1].mid)
		}
	}
}

// numberedPublisher publishes messages numbered 1, 2, ... until stopped.
type numberedPublisher struct {
	published atomic.Int64
	done      chan struct{}
	wg        sync.WaitGroup
	err       atomic.Pointer[string]
}

func startNumberedPublisher(t *testing.T, srv *Server, ch string) *numberedPublisher {
	p := &numberedPublisher{done: make(chan struct{})}
	p.wg.Go(func() {
		// Bounded: the test stops it long before.
		for n := 1; n <= 2_000_000; n++ {
			select {
			case <-p.done:
				return
			default:
			}
			r, err := tryRequest(http.MethodPost, srv.PubURL+"?CHANNEL_ID="+ch, command("test", "n", n), nil)
			if err != nil || r.Status != http.StatusOK {
				msg := fmt.Sprintf("publish %d: %v %d %q", n, err, r.Status, r.Body)
				p.err.Store(&msg)
				return
			}
			p.published.Store(int64(n))
		}
	})
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *numberedPublisher) count() int { return int(p.published.Load()) }

func (p *numberedPublisher) stop(t testing.TB) {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
	if msg := p.err.Load(); msg != nil {
		t.Fatal(*msg)
	}
}

// sequenceRecorder is a WebSocket subscriber connected from the start: it
// learns the mid of every number, and checks the live order too.
type sequenceRecorder struct {
	mu   sync.Mutex
	got  []numbered
	cond *sync.Cond
	c    *WSClient
	bad  string
}

func newSequenceRecorder(t *testing.T, srv *Server, ch string) *sequenceRecorder {
	_, wsURL := subQuery(srv, ch, "")
	r := &sequenceRecorder{c: mustDialWS(t, wsURL)}
	r.cond = sync.NewCond(&r.mu)
	waitOnline(t, srv, ch, true)
	go func() {
		for f := range r.c.Frames {
			for _, e := range splitEnvelopes(string(f.Data)) {
				r.mu.Lock()
				var body struct {
					Params struct {
						N int `json:"n"`
					} `json:"params"`
				}
				if err := json.Unmarshal(e.Text, &body); err != nil || body.Params.N != len(r.got)+1 {
					if r.bad == "" {
						r.bad = fmt.Sprintf("live subscriber got %s after %d messages", e.Text, len(r.got))
					}
				} else {
					r.got = append(r.got, numbered{body.Params.N, e.MID})
				}
				r.cond.Broadcast()
				r.mu.Unlock()
			}
		}
		r.mu.Lock()
		r.bad = "live subscriber's connection ended"
		r.cond.Broadcast()
		r.mu.Unlock()
	}()
	t.Cleanup(r.c.Close)
	return r
}

// splitEnvelopes parses the envelopes of a text frame without a test: the
// recorder runs on a goroutine of its own.
func splitEnvelopes(data string) []Envelope {
	var out []Envelope
	for _, part := range strings.Split(data, "#!NGINXNMS!#") {
		part = strings.TrimSuffix(part, "#!NGINXNME!#")
		if part == "" {
			continue
		}
		var e Envelope
		if json.Unmarshal([]byte(part), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func (r *sequenceRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// mid returns the mid of message n (1-based), which the recorder has seen.
func (r *sequenceRecorder) mid(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[n-1].mid
}

// waitFor waits until the recorder has seen n messages.
func (r *sequenceRecorder) waitFor(t testing.TB, n int) {
	t.Helper()
	ok := waitCond(&r.mu, r.cond, func() bool { return len(r.got) >= n || r.bad != "" })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != "" {
		t.Fatal(r.bad)
	}
	if !ok {
		t.Fatalf("the live subscriber saw %d messages; want %d", len(r.got), n)
	}
}

func (r *sequenceRecorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != "" {
		t.Fatal(r.bad)
	}
}

// resumeWS connects with mid and reads until it has a message numbered at
// least until() (read once connected).
func resumeWS(t *testing.T, srv *Server, ch, mid string, until func() int) []numbered {
	_, wsURL := subQuery(srv, ch, "mid="+mid)
	c := mustDialWS(t, wsURL)
	defer c.Close()
	target := until()
	var got []numbered
	for len(got) == 0 || got[len(got)-1].n < target {
		got = append(got, numberOf(t, c.NextEnvelopes(t, 1)[0]))
	}
	return got
}

// resumeLP long-polls from mid, following each answer's last mid, until
// it has a message numbered at least until() (read after the first poll).
func resumeLP(t *testing.T, srv *Server, ch, mid string, until func() int) []numbered {
	var got []numbered
	target := 0
	for polls := 0; target == 0 || len(got) == 0 || got[len(got)-1].n < target; polls++ {
		if polls > 10_000 {
			t.Fatalf("long polling from %s: %d answers without reaching message %d", mid, polls, target)
		}
		lp, _ := subQuery(srv, ch, "mid="+mid)
		r := longPoll(t, lp)
		if target == 0 {
			target = until()
		}
		if r.Status == http.StatusNotModified {
			continue
		}
		if r.Status != http.StatusOK {
			t.Fatalf("long poll: status %d %q", r.Status, r.Body)
		}
		for _, e := range parseEnvelopes(t, r.Body) {
			got = append(got, numberOf(t, e))
		}
		mid = got[len(got)-1].mid
	}
	return got
}

// waitCond waits, up to waitTimeout, until ok (called holding mu) holds;
// c must be signalled whenever what ok reads changes.
func waitCond(mu *sync.Mutex, c *sync.Cond, ok func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	wake := time.AfterFunc(waitTimeout, func() {
		mu.Lock()
		c.Broadcast()
		mu.Unlock()
	})
	defer wake.Stop()
	mu.Lock()
	defer mu.Unlock()
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		c.Wait()
	}
	return true
}
