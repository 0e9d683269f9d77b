package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// fakeServer speaks just enough of the subscribe, publish and stat routes
// for the scenarios to run against it: it pings each subscriber once,
// fragments every other message, and counts the pongs it gets back.
type fakeServer struct {
	signer *protocol.Signer
	refuse atomic.Bool // answer every publish with 503
	mu     sync.Mutex
	subs   map[string][]*fakeConn
	next   uint64
	open   atomic.Int64
	pongs  atomic.Int64
	rdrs   sync.WaitGroup
}

type fakeConn struct {
	mu sync.Mutex
	nc net.Conn
}

func newFakeServer(t *testing.T, key string) (*fakeServer, Target) {
	sg, err := protocol.NewSigner(key, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{signer: sg, subs: map[string][]*fakeConn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/bitrix/subws/", f.subscribe)
	mux.HandleFunc("/bitrix/pub/", f.publish)
	mux.HandleFunc("/server-stat/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"pid":1,"websockets":`+strconv.FormatInt(f.open.Load(), 10)+`,"pollings":0}]`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		for _, cs := range f.subs {
			for _, c := range cs {
				c.nc.Close()
			}
		}
		f.mu.Unlock()
		f.rdrs.Wait()
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	return f, Target{
		PID:     os.Getpid(),
		SubURL:  "ws://" + host + "/bitrix/subws/",
		PubURL:  srv.URL + "/bitrix/pub/",
		StatURL: srv.URL + "/server-stat/",
	}
}

func (f *fakeServer) subscribe(w http.ResponseWriter, r *http.Request) {
	chs, err := f.signer.ParseChannels(r.URL.Query().Get("CHANNEL_ID"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &fakeConn{nc: nc}
	c.mu.Lock()
	ws.WriteFrame(nc, ws.NewPingFrame([]byte("hi")))
	c.mu.Unlock()
	f.mu.Lock()
	f.subs[chs[0].ID] = append(f.subs[chs[0].ID], c)
	f.mu.Unlock()
	f.open.Add(1)
	f.rdrs.Add(1)
	go func() {
		defer f.rdrs.Done()
		defer f.open.Add(-1)
		for {
			h, err := ws.ReadHeader(nc)
			if err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, nc, h.Length); err != nil {
				return
			}
			if h.OpCode == ws.OpPong {
				f.pongs.Add(1)
			}
		}
	}()
}

func (f *fakeServer) publish(w http.ResponseWriter, r *http.Request) {
	ids, err := f.signer.ParseIDList(r.URL.Query().Get("CHANNEL_ID"), true)
	body, _ := io.ReadAll(r.Body)
	if err != nil || len(body) == 0 {
		http.Error(w, "bad publish", http.StatusBadRequest)
		return
	}
	if f.refuse.Load() {
		http.Error(w, "engine down", http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	m := &protocol.Message{ID: f.next, MID: protocol.FormatMID(1700000000, f.next), Body: body, Created: time.Now()}
	for _, id := range ids {
		frame := format.AppendEnvelope(nil, m, id)
		for _, c := range f.subs[id] {
			c.mu.Lock()
			if f.next%2 == 0 {
				// In two fragments: the subscriber must reassemble them.
				ws.WriteFrame(c.nc, ws.Frame{Header: ws.Header{OpCode: ws.OpText, Length: 10}, Payload: frame[:10]})
				ws.WriteFrame(c.nc, ws.Frame{Header: ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: int64(len(frame) - 10)}, Payload: frame[10:]})
			} else {
				wsutil.WriteServerText(c.nc, frame)
			}
			c.mu.Unlock()
		}
	}
}

func TestFanoutScenario(t *testing.T) {
	f, target := newFakeServer(t, "secret")
	o := Options{Target: target, Key: "secret", Subs: 5, Messages: 20, Rate: 5000, Drain: 10 * time.Second}
	r, err := Fanout(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Expected != 100 || r.Delivered != 100 || r.Lost != 0 || r.Duplicates != 0 || r.Stray != 0 || r.Unparsed != 0 || r.Dropped != 0 {
		t.Fatalf("got %+v", r)
	}
	if r.Latency.Samples != 100 || r.Latency.Max < r.Latency.P50 || r.PublishErrors != 0 {
		t.Fatalf("got %+v", r)
	}
	if r.Storage != "external" || r.Subscribers != 5 || r.Messages != 20 {
		t.Fatalf("got %+v", r)
	}
	f.rdrs.Wait() // the bench has closed its connections
	if n := f.pongs.Load(); n != 5 {
		t.Fatalf("%d pongs, want one per subscriber", n)
	}
}

func TestUnicastScenario(t *testing.T) {
	_, target := newFakeServer(t, "")
	o := Options{Target: target, Subs: 4, Messages: 41, Concurrency: 3, Drain: 10 * time.Second}
	r, err := Unicast(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Expected != 41 || r.Delivered != 41 || r.Lost != 0 || r.Duplicates != 0 || r.Stray != 0 || r.Latency.Samples != 41 {
		t.Fatalf("got %+v", r)
	}
	if r.Delivered > 0 && r.DeliveriesPerSec <= 0 {
		t.Fatalf("no delivery rate: %+v", r)
	}
}

func TestPublishFailures(t *testing.T) {
	// A server that refuses every publish: the run stops and says why.
	f, target := newFakeServer(t, "")
	f.refuse.Store(true)
	o := Options{Target: target, Subs: 2, Messages: 500, Concurrency: 1, Drain: time.Millisecond}
	r, err := Unicast(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("got %v, want the 503 reported", err)
	}
	if r == nil || r.PublishErrors != 100 || r.Delivered != 0 || r.Lost != 500 {
		t.Fatalf("got %+v", r)
	}
}

func TestBadKey(t *testing.T) {
	// Subscribers with the wrong signature are refused at the upgrade.
	_, target := newFakeServer(t, "secret")
	_, err := Fanout(context.Background(), Options{Target: target, Key: "other", Subs: 2, Messages: 1})
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("got %v, want the 400 reported", err)
	}
}

func TestIdleScenario(t *testing.T) {
	_, target := newFakeServer(t, "")
	o := Options{Target: target, Conns: 50, Settle: time.Millisecond}
	r, err := Idle(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Connections != 50 || r.ServerWebSockets != 50 || r.RSSAfter <= 0 || r.Threads < 1 || r.Dropped != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestMissingTarget(t *testing.T) {
	if _, err := Fanout(context.Background(), Options{}); err == nil {
		t.Fatal("ran without a server")
	}
}

func TestSwarmModes(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		f, target := newFakeServer(t, "")
		const subs, msgs = 3, 6
		ledger := NewLedger(subs, msgs, true)
		ch := newChannelID()
		sw, err := OpenSwarm(context.Background(), SwarmOptions{
			URL:         target.SubURL,
			Channel:     func(int) string { return ch },
			Count:       subs,
			Concurrency: 2,
			Ledger:      ledger,
			PerConn:     msgs,
			goroutines:  goroutines,
		})
		if err != nil {
			t.Fatal(err)
		}
		if goroutines != (sw.reactor == nil) {
			t.Fatalf("goroutines=%v but reactor %v", goroutines, sw.reactor)
		}
		testutil.WaitFor(t, "the subscribers connected", func() bool { return f.open.Load() >= subs })
		p, err := NewPublisher(target.PubURL)
		if err != nil {
			t.Fatal(err)
		}
		for i := range int64(msgs) {
			if err := p.Publish(ch, AppendTickBody(nil, i, time.Now().UnixNano())); err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		testutil.WaitFor(t, "every message delivered", func() bool { return ledger.Delivered() >= subs*msgs })
		sw.Close()
		f.rdrs.Wait()
		if n, err := sw.Dropped(); n != 0 {
			t.Fatalf("goroutines=%v: %d dropped: %v", goroutines, n, err)
		}
		if got := len(sw.Latencies()); got != subs*msgs || sw.Frames() != subs*msgs || f.pongs.Load() != subs {
			t.Fatalf("goroutines=%v: %d latencies, %d frames, %d pongs", goroutines, got, sw.Frames(), f.pongs.Load())
		}
	}
}

func TestSwarmServerClose(t *testing.T) {
	// Connections the server ends count as dropped, with the reason.
	for _, goroutines := range []bool{false, true} {
		f, target := newFakeServer(t, "")
		sw, err := OpenSwarm(context.Background(), SwarmOptions{
			URL:        target.SubURL,
			Channel:    func(int) string { return newChannelID() },
			Count:      2,
			goroutines: goroutines,
		})
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the subscribers connected", func() bool { return f.open.Load() >= 2 })
		f.mu.Lock()
		for _, cs := range f.subs {
			for _, c := range cs {
				c.mu.Lock()
				ws.WriteFrame(c.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(protocol.CloseServerRestarted), "restart")))
				c.mu.Unlock()
			}
		}
		f.mu.Unlock()
		testutil.WaitFor(t, "both connections dropped", func() bool {
			n, _ := sw.Dropped()
			return n == 2
		})
		_, err = sw.Dropped()
		if !errors.Is(err, errServerClosed) || !strings.Contains(err.Error(), "3002 restart") {
			t.Fatalf("goroutines=%v: reason %v", goroutines, err)
		}
		sw.Close()
	}
}
