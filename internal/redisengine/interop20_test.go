package redisengine

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/ps20"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// TestInterop20 runs the original push server 2.0 beside a pushpull
// engine in the 2.0 layout (see internal/testutil/ps20 for how to give it
// the original):
//
//	PUSHPULL_PS20_DIR=/path/to/push-server go test -run Interop20 ./internal/redisengine/
//
// With PUSHPULL_PS20_CAPTURE=<dir> as well, the test writes the values
// the original stored and published into <dir> (testdata/layout20 holds
// such a capture).
const ps20Key = "interop-secret"

// capture keeps every pub/sub payload the original's processes publish.
type capture struct {
	mu   sync.Mutex
	msgs []rueidis.PubSubMessage
}

func captureOriginal(t *testing.T, addr, except string) *capture {
	c := &capture{}
	client := raw(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	subscribed := make(chan struct{})
	go func() {
		defer close(done)
		dc, release := client.Dedicate()
		defer release()
		wait := dc.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(m rueidis.PubSubMessage) {
				if m.Channel == "pushserver:"+except {
					return
				}
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			},
			OnSubscription: func(s rueidis.PubSubSubscription) {
				if s.Kind == "psubscribe" {
					close(subscribed)
				}
			},
		})
		if err := dc.Do(ctx, dc.B().Psubscribe().Pattern("pushserver:*").Build()).Error(); err != nil {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("capture not subscribed")
	}
	return c
}

func (c *capture) payloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Message
	}
	return out
}

func TestInterop20(t *testing.T) {
	dir := ps20.Dir(t)
	keep := os.Getenv("PUSHPULL_PS20_CAPTURE")
	ctx := context.Background()
	r := redistest.Start(t)
	rc := raw(t, r.Addr())

	o := opts(r.Addr())
	o.Layout = Layout20
	o.ProcessUniqueID = "pushpull-a"
	o.TTLs.Default = -1 // as the original: no expiry, not stored
	e := newEngine(t, o)
	waitReady(t, e)
	seen := captureOriginal(t, r.Addr(), o.ProcessUniqueID)
	orig := ps20.Start(t, dir, r.Port, "ps20-a", ps20Key)
	testutil.WaitFor(t, "the original subscribed", func() bool {
		return patternSubscribers(t, rc) >= 3 // pushpull, the capture, the original
	})

	c20A := "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
	c20B := "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
	privC, pubC := "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"

	t.Run("the original publishes, pushpull delivers and serves it", func(t *testing.T) {
		rec := newRecorder(e.hub, c20A)
		body := `{"module_id":"im","command":"message","params":{"text":"from 2.0"}}`
		orig.Post(t, body, 600, c20A)
		got := rec.wait(t, 1)
		m := got[0]
		if string(m.Body) != body || !slices.Equal(m.Channels, []string{c20A}) || m.EffectiveSender().Type != protocol.SenderBackend || !protocol.ValidMID(m.MID) {
			t.Fatalf("delivered %+v", m)
		}
		hist, err := e.Since(ctx, []string{c20A}, "")
		if err != nil || len(hist) != 1 || hist[0].MID != m.MID || string(hist[0].Body) != body || !slices.Equal(hist[0].Channels, []string{c20A}) {
			t.Fatalf("history %+v, %v", hist, err)
		}
		if last, err := e.Last(ctx, []string{c20A}); err != nil || last != m.MID {
			t.Fatalf("last %q, %v", last, err)
		}
		if keep != "" {
			stored, err := rc.Do(ctx, rawCmd("GET", "message:"+binID(m.MID))).ToString()
			if err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, "the original's payload captured", func() bool { return len(seen.payloads()) >= 1 })
			writeCapture(t, keep, "backend-stored.bin", stored)
			writeCapture(t, keep, "backend-published.bin", seen.payloads()[0])
		}
	})

	t.Run("pushpull publishes, the original delivers and serves it", func(t *testing.T) {
		first := orig.Dial(t, c20B, "")
		testutil.WaitFor(t, "the original's subscriber online for pushpull", func() bool {
			n, err := e.Online(ctx, []string{c20B})
			return err == nil && n[0] == 1
		})
		var sent []string
		for i := range 3 {
			m := &protocol.Message{Channels: []string{c20B}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Expiry: 600}
			if err := e.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, m.MID)
		}
		got := first.Read(3)
		if !slices.Equal(ps20.MIDs(got), sent) || got[0].GetBody() != `{"n":0}` || got[0].GetSender().GetType() != pb.SenderType_UNKNOWN && got[0].GetSender().GetType() != pb.SenderType_BACKEND {
			t.Fatalf("the original delivered %v, want %v", got, sent)
		}
		// Then the original publishes too: a client resuming from the
		// first message, from either server, gets everything after it.
		orig.Post(t, `{"n":3}`, 600, c20B)
		orig.Post(t, `{"n":4}`, 600, c20B)
		all := append(sent, ps20.MIDs(first.Read(2))...)
		again := orig.Dial(t, c20B, sent[0])
		if got := ps20.MIDs(again.Read(4)); !slices.Equal(got, all[1:]) {
			t.Fatalf("the original resumed with %v, want %v", got, all[1:])
		}
		hist, err := e.Since(ctx, []string{c20B}, sent[0])
		if err != nil || !slices.Equal(mids(hist), all[1:]) {
			t.Fatalf("pushpull resumed with %v (%v), want %v", mids(hist), err, all[1:])
		}
		for i, m := range hist {
			if want := fmt.Sprintf(`{"n":%d}`, i+1); string(m.Body) != want || !slices.Equal(m.Channels, []string{c20B}) {
				t.Fatalf("history %d: %s on %v, want %s", i, m.Body, m.Channels, want)
			}
		}
	})

	t.Run("public channels and client publishes", func(t *testing.T) {
		rec := newRecorder(e.hub, privC, pubC)
		c := orig.Dial(t, privC+":"+pubC, "")
		testutil.WaitFor(t, "online", func() bool {
			n, err := e.Online(ctx, []string{pubC})
			return err == nil && n[0] == 1
		})
		// A client of the original publishes to its public channel:
		// delivered to itself by the original, and by pushpull.
		c.Publish(`{"from":"2.0 client"}`, pubC)
		own := c.Read(1)[0]
		if own.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(own.GetSender().GetId()) != pubC {
			t.Fatalf("the original delivered %v", own)
		}
		m := rec.wait(t, 1)[0]
		if m.MID != hex.EncodeToString(own.GetId()) || string(m.Body) != `{"from":"2.0 client"}` ||
			m.Sender != (protocol.Sender{Type: protocol.SenderClient, ID: pubC}) || !slices.Equal(m.Channels, []string{pubC}) {
			t.Fatalf("pushpull delivered %+v", m)
		}
		if keep != "" {
			stored, err := rc.Do(ctx, rawCmd("GET", "message:"+binID(m.MID))).ToString()
			if err != nil {
				t.Fatal(err)
			}
			ps := seen.payloads()
			writeCapture(t, keep, "client-stored.bin", stored)
			writeCapture(t, keep, "client-published.bin", ps[len(ps)-1])
		}
		// A pushpull client's message to the same public channel.
		pm := &protocol.Message{Channels: []string{pubC}, Body: []byte(`{"from":"pushpull client"}`), Expiry: 600,
			Sender: protocol.Sender{Type: protocol.SenderClient, ID: pubC}}
		if err := e.Publish(ctx, pm); err != nil {
			t.Fatal(err)
		}
		got := c.Read(1)[0]
		if hex.EncodeToString(got.GetId()) != pm.MID || got.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(got.GetSender().GetId()) != pubC {
			t.Fatalf("the original delivered %v", got)
		}
		// Both are in the public channel's history on either side.
		hist, err := e.Since(ctx, []string{privC, pubC}, "")
		if err != nil || !slices.Equal(mids(hist), []string{m.MID, pm.MID}) {
			t.Fatalf("pushpull history %v, %v", mids(hist), err)
		}
		resumed := orig.Dial(t, privC+":"+pubC, strings.Repeat("0", 26))
		if got := ps20.MIDs(resumed.Read(2)); !slices.Equal(got, []string{m.MID, pm.MID}) {
			t.Fatalf("the original's history %v", got)
		}
	})

	t.Run("what the original publishes while pushpull is not subscribed", func(t *testing.T) {
		rec := newRecorder(e.hub, c20A)
		before := len(rec.messages())
		release := holdSubscriptions(e)
		if err := rc.Do(ctx, rawCmd("CLIENT", "KILL", "TYPE", "pubsub")).Error(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "pushpull not ready", func() bool { return e.Ready(ctx) != nil })
		for i := range 3 {
			orig.Post(t, fmt.Sprintf(`{"gap":%d}`, i), 600, c20A)
		}
		release()
		waitReady(t, e)
		got := rec.wait(t, before+3)[before:]
		for i, m := range got {
			if want := fmt.Sprintf(`{"gap":%d}`, i); string(m.Body) != want || !slices.Equal(m.Channels, []string{c20A}) {
				t.Fatalf("recovered %d: %s on %v, want %s", i, m.Body, m.Channels, want)
			}
		}
	})

	t.Run("concurrent publishers", func(t *testing.T) {
		// Two processes of the original and pushpull publish at once to one
		// channel. The original's publishes reach pub/sub out of id order;
		// a pushpull process delivers every message once, in id order (its
		// reorder window here longer than the test, as nothing is lost).
		po := opts20(r.Addr(), "pushpull-patient")
		po.ReorderWindow = time.Hour
		patient := newEngine(t, po)
		waitReady(t, patient)
		arrivals := captureOriginal(t, r.Addr(), "")
		orig2 := ps20.Start(t, dir, r.Port, "ps20-b", ps20Key)
		testutil.WaitFor(t, "the second original subscribed", func() bool { return patternSubscribers(t, rc) >= 5 })
		const ch = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"
		io := opts20(r.Addr(), "pushpull-unordered")
		io.ReorderWindow = -1
		unordered := newEngine(t, io)
		waitReady(t, unordered)
		rec, urec, drec := newRecorder(patient.hub, ch), newRecorder(unordered.hub, ch), newRecorder(e.hub, ch)
		c := orig.Dial(t, ch, "")
		testutil.WaitFor(t, "online", func() bool {
			n, err := e.Online(ctx, []string{ch})
			return err == nil && n[0] == 1
		})
		const each = 100
		errs := make(chan error, 3*each)
		var wg sync.WaitGroup
		post := func(p *ps20.Process, i int) error {
			req, _ := http.NewRequest(http.MethodPost, p.URL+"/bitrix/pub/?CHANNEL_ID="+ch, strings.NewReader(fmt.Sprintf(`{"i":%d}`, i)))
			req.Header.Set("Message-Expiry", "600")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					var err error
					switch w {
					case 0:
						err = post(orig, i)
					case 1:
						err = post(orig2, i)
					default:
						err = e.Publish(ctx, &protocol.Message{Channels: []string{ch}, Body: []byte(fmt.Sprintf(`{"i":%d}`, i)), Expiry: 600})
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := rec.wait(t, 3*each)
		if len(got) != 3*each {
			t.Fatalf("delivered %d messages, want %d", len(got), 3*each)
		}
		for i := 1; i < len(got); i++ {
			if got[i].MID <= got[i-1].MID {
				t.Fatalf("delivered %s after %s", got[i].MID, got[i-1].MID)
			}
		}
		// The original's client gets every message too, in whatever
		// order its process saw them.
		if n := len(c.Read(3 * each)); n != 3*each {
			t.Fatalf("the original delivered %d", n)
		}
		var late, seen int
		var newest string
		testutil.WaitFor(t, "every payload captured", func() bool { return len(arrivals.payloads()) >= 3*each })
		for _, p := range arrivals.payloads() {
			ms, err := decodeBatch20([]byte(p), store.DefaultTTLs)
			if err != nil || len(ms) != 1 || !slices.Contains(ms[0].Channels, ch) {
				continue
			}
			seen++
			if ms[0].MID < newest {
				late++
			}
			newest = max(newest, ms[0].MID)
		}
		// Without the window, a session would drop each message that came
		// after a later one as already sent; with the default window, none
		// is expected to.
		behind := func(ms []*protocol.Message) (n int) {
			newest := ""
			for _, m := range ms {
				if m.MID < newest {
					n++
				}
				newest = max(newest, m.MID)
			}
			return n
		}
		t.Logf("%d of %d messages reached pub/sub after a later id; delivered out of order: %d without a reorder window, %d with the default one",
			late, seen, behind(urec.wait(t, 3*each)), behind(drec.wait(t, 3*each)))
	})

	t.Run("process stats", func(t *testing.T) {
		testutil.WaitFor(t, "both processes in the stats", func() bool {
			st, err := e.Stats(ctx)
			if err != nil {
				return false
			}
			var ids []string
			for _, s := range st {
				ids = append(ids, s.ProcessUniqueID)
			}
			return slices.Contains(ids, "ps20-a") && slices.Contains(ids, "pushpull-a")
		})
		resp, err := http.Get(orig.URL + "/server-stat/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`"processUniqueId":"pushpull-a"`)) {
			t.Fatalf("the original's stats: %s", b)
		}
		if keep != "" {
			s, err := rc.Do(ctx, rawCmd("HGET", "stats", "ps20-a")).ToString()
			if err != nil {
				t.Fatal(err)
			}
			writeCapture(t, keep, "stats.json", s)
		}
	})
}

// patternSubscribers counts the connections with a pattern subscription.
func patternSubscribers(t *testing.T, rc rueidis.Client) int {
	list, err := rc.Do(context.Background(), rawCmd("CLIENT", "LIST")).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "psub=") && f != "psub=0" {
				n++
			}
		}
	}
	return n
}

func writeCapture(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
