package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// Subscribers that keep reconnecting with their last mid while Redis is
// killed (kill -9, AOF with appendfsync always) and restarted get every
// accepted message once, in id order: history read at connect time and
// the same messages arriving again through pub/sub or the gap recovery are
// never both sent, and no message goes behind one already sent.
func TestRedisFaultNoRepeats(t *testing.T) {
	r := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	pub := startRedisServer(t, r, true)
	sub := startRedisServer(t, r, false)
	waitReadyStatus(t, pub, true)
	waitReadyStatus(t, sub, true)
	ch := newChannelID(t)

	// A publisher numbers its messages; those answered 200 must arrive.
	var mu sync.Mutex
	var accepted []int
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 1; n <= 1_000_000; n++ {
			select {
			case <-done:
				return
			default:
			}
			resp, err := tryRequest(http.MethodPost, pub.PubURL+"?CHANNEL_ID="+ch, command("test", "n", n), nil)
			if err == nil && resp.Status == http.StatusOK {
				mu.Lock()
				accepted = append(accepted, n)
				mu.Unlock()
			}
		}
	})
	stop := func() {
		select {
		case <-done:
		default:
			close(done)
		}
		wg.Wait()
	}
	defer stop()
	acceptedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}

	type subscriber struct {
		got  []numbered
		last string
	}
	subs := make([]*subscriber, 5)
	for i := range subs {
		subs[i] = &subscriber{last: "00000000000000000000000000"}
	}
	// visit connects s with its last mid and reads until it has what was
	// accepted when it connected; false if the server refused it for now
	// (Redis down: history unavailable).
	visit := func(s *subscriber) bool {
		_, wsURL := subQuery(sub, ch, "mid="+s.last)
		c, err := dialWS(t, wsURL)
		if err != nil {
			return false
		}
		defer c.Close()
		target := acceptedCount()
		for len(s.got) == 0 || s.got[len(s.got)-1].n < lastAccepted(&mu, &accepted, target) {
			select {
			case f, ok := <-c.Frames:
				if !ok {
					return false
				}
				for _, e := range parseEnvelopes(t, string(f.Data)) {
					s.got = append(s.got, numberOf(t, e))
					s.last = e.MID
				}
			case <-time.After(waitTimeout):
				t.Fatalf("subscriber stalled at %d of %d accepted", len(s.got), target)
			}
		}
		return true
	}

	for round := range 12 {
		switch round {
		case 4:
			r.Kill()
			waitReadyStatus(t, sub, false)
		case 5:
			r.Start()
		}
		for _, s := range subs {
			visit(s)
		}
	}
	waitReadyStatus(t, sub, true)
	for _, s := range subs {
		for !visit(s) {
		}
	}
	stop()
	for _, s := range subs {
		for !visit(s) {
		}
	}
	for i, s := range subs {
		checkSequenceOf(t, fmt.Sprintf("subscriber %d", i), s.got, accepted)
	}
}

// lastAccepted is the number of the target-th accepted message (0 for
// none).
func lastAccepted(mu *sync.Mutex, accepted *[]int, target int) int {
	mu.Lock()
	defer mu.Unlock()
	if target == 0 {
		return 0
	}
	return (*accepted)[target-1]
}

// checkSequenceOf fails unless got is in increasing number and mid order
// (nothing repeated or backwards) and holds every number of want. A
// publish refused while Redis died may still have been stored, so got may
// hold numbers want lacks.
func checkSequenceOf(t *testing.T, what string, got []numbered, want []int) {
	t.Helper()
	have := make(map[int]bool, len(got))
	for i, g := range got {
		if i > 0 && (g.n <= got[i-1].n || g.mid <= got[i-1].mid) {
			t.Fatalf("%s: delivery %d is message %d (%s) after %v: repeated or backwards", what, i, g.n, g.mid, got[max(0, i-3):i])
		}
		have[g.n] = true
	}
	for _, n := range want {
		if !have[n] {
			t.Fatalf("%s: accepted message %d never arrived", what, n)
		}
	}
}
