package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol"
)

// bystander is the client the hostile cases must not hurt: one protocol-3
// WebSocket on a channel of its own, resuming by mid if the server closes
// it, and the backend publishing a numbered message to it every 50 ms.
type bystander struct {
	published atomic.Int64 // numbered messages the backend sent

	mu       sync.Mutex
	accepted []int64 // numbers answered 200, in publish order
	seen     map[int64]int
	receipts []receipt // numbered messages received, in order of receipt
	last     int64     // highest number received
	mid      string    // the last message received, to resume after
	counts   bystanderCounts
}

type receipt struct {
	n  int64
	at time.Time
}

// bystanderCounts are running totals; a case reports their growth.
type bystanderCounts struct {
	unaccepted, dups, backwards, poisoned, repaired, reconnects int64
}

func newBystander() *bystander {
	return &bystander{seen: map[int64]int{}, mid: "00000000000000000000000000"}
}

// receiving reports whether an accepted message has reached the bystander.
func (b *bystander) receiving() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.receipts) > 0
}

// caughtUp reports whether the bystander has the last accepted message.
func (b *bystander) caughtUp() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.accepted) == 0 || b.seen[b.accepted[len(b.accepted)-1]] > 0
}

// repairedSince returns the poison messages received repaired since m.
func (b *bystander) repairedSince(m bystanderMark) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts.repaired - m.counts.repaired
}

// bystanderMark is the bystander's state at one moment: a case is the
// stretch between two marks.
type bystanderMark struct {
	at       time.Time
	accepted int
	receipts int
	counts   bystanderCounts
}

func (b *bystander) mark() bystanderMark {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bystanderMark{at: time.Now(), accepted: len(b.accepted), receipts: len(b.receipts), counts: b.counts}
}

// bystanderWindow is what happened to the bystander between two marks.
type bystanderWindow struct {
	accepted, unaccepted, received, missing int64
	dups, backwards, poisoned, repaired     int64
	reconnects                              int64
	gap                                     time.Duration // longest wait between two receipts
}

func (b *bystander) window(from, to bystanderMark) bystanderWindow {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := bystanderWindow{
		accepted:   int64(to.accepted - from.accepted),
		unaccepted: to.counts.unaccepted - from.counts.unaccepted,
		dups:       to.counts.dups - from.counts.dups,
		backwards:  to.counts.backwards - from.counts.backwards,
		poisoned:   to.counts.poisoned - from.counts.poisoned,
		repaired:   to.counts.repaired - from.counts.repaired,
		reconnects: to.counts.reconnects - from.counts.reconnects,
	}
	for _, n := range b.accepted[from.accepted:to.accepted] {
		if b.seen[n] > 0 {
			w.received++
		} else {
			w.missing++
		}
	}
	prev := from.at
	if from.receipts > 0 {
		prev = b.receipts[from.receipts-1].at
	}
	for _, r := range b.receipts[from.receipts:to.receipts] {
		w.gap = max(w.gap, r.at.Sub(prev))
		prev = r.at
	}
	w.gap = max(w.gap, to.at.Sub(prev))
	return w
}

// publish posts a numbered message to the bystander's channel every 50 ms
// until ctx ends. A publish not answered 200 is not accepted.
func (b *bystander) publish(ctx context.Context, pubURL, ch string) {
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for n := int64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body := fmt.Sprintf(`{"module_id":"hostile","command":"n","params":{"n":%d}}`, n)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pubURL+"?CHANNEL_ID="+ch, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil && ctx.Err() != nil {
			return // cut short by the end of the run
		}
		b.published.Add(1)
		ok := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.mu.Lock()
		if ok {
			b.accepted = append(b.accepted, n)
		} else {
			b.counts.unaccepted++
		}
		b.mu.Unlock()
	}
}

// listen keeps the bystander's WebSocket open until ctx ends, resuming
// after the last message it got whenever the server closes it.
func (b *bystander) listen(ctx context.Context, subURL, signed string) {
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			b.mu.Lock()
			b.counts.reconnects++
			b.mu.Unlock()
			if sleep(ctx, 20*time.Millisecond) != nil {
				return
			}
		}
		b.mu.Lock()
		u := subURL + "?CHANNEL_ID=" + signed + "&mid=" + b.mid
		b.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, br, _, err := ws.Dialer{}.Dial(dctx, u)
		cancel()
		if err != nil {
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		rw := wsclient.Stream(conn, br) // ReadServerData answers the server's pings
		for {
			data, op, err := wsutil.ReadServerData(rw)
			if err != nil {
				break
			}
			if op == ws.OpText {
				b.got(data, time.Now())
			}
		}
		stop()
		conn.Close()
	}
}

// hostileEnvelope is what the bystander reads of a protocol-3 envelope.
type hostileEnvelope struct {
	MID  string `json:"mid"`
	Text struct {
		Command string `json:"command"`
		Params  struct {
			N int64  `json:"n"`
			X string `json:"x"`
		} `json:"params"`
	} `json:"text"`
}

// got records the envelopes of one text frame.
func (b *bystander) got(data []byte, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !utf8.Valid(data) {
		// A browser or Node's ws fails the connection on such a frame.
		b.counts.poisoned++
		return
	}
	for _, part := range strings.Split(string(data), protocol.EnvelopeStart) {
		part = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), protocol.EnvelopeEnd))
		if part == "" {
			continue
		}
		var e hostileEnvelope
		if json.Unmarshal([]byte(part), &e) != nil {
			continue
		}
		if e.MID != "" {
			b.mid = e.MID
		}
		switch {
		case e.Text.Command == "poison":
			if strings.ContainsRune(e.Text.Params.X, utf8.RuneError) {
				b.counts.repaired++
			}
			continue
		case e.Text.Command != "n" || e.Text.Params.N == 0:
			continue // a server command
		}
		n := e.Text.Params.N
		switch {
		case b.seen[n] > 0:
			b.counts.dups++
		case n < b.last:
			b.counts.backwards++
		}
		b.seen[n]++
		b.last = max(b.last, n)
		b.receipts = append(b.receipts, receipt{n, at})
	}
}
