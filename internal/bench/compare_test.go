package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func TestSpreadOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{4}, Spread{4, 4, 4, 1}},
		{[]float64{3, 1, 2}, Spread{2, 1, 3, 3}},
		{[]float64{10, 1, 4, 2}, Spread{3, 1, 10, 4}}, // even: the middle two's mean
	} {
		in := append([]float64(nil), c.in...)
		if got := SpreadOf(c.in); got != c.want {
			t.Errorf("%v: got %+v, want %+v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("SpreadOf reordered its input: %v", c.in)
			}
		}
	}
}

// The table has a row per figure with each server's median and range and
// the ratio of the medians, pushpull over the peer.
func TestCompareRows(t *testing.T) {
	run := func(p50, cpu float64, lost int64) *DeliveryResult {
		return &DeliveryResult{Latency: Latency{P50: p50}, CPUPer1000: cpu, Lost: lost}
	}
	pushpull := []any{run(1, 10, 0), run(3, 30, 0), run(2, 20, 0)}
	peer := []any{run(4, 5, 0), run(8, 15, 2)}
	rows := compareRows(pushpull, peer)
	byName := map[string]CompareRow{}
	for _, r := range rows {
		byName[r.Figure] = r
	}
	if len(rows) != len(figuresOf(&DeliveryResult{})) || rows[0].Figure != "latency p50 (ms)" {
		t.Fatalf("rows %+v", rows)
	}
	p50 := byName["latency p50 (ms)"]
	if p50.Pushpull != (Spread{2, 1, 3, 3}) || p50.Peer != (Spread{6, 4, 8, 2}) || math.Abs(p50.Ratio-2.0/6) > 1e-9 {
		t.Errorf("p50 row %+v", p50)
	}
	cpu := byName["server CPU per 1,000 deliveries (ms)"]
	if cpu.Pushpull.Median != 20 || cpu.Peer.Median != 10 || cpu.Ratio != 2 {
		t.Errorf("cpu row %+v", cpu)
	}
	if lost := byName["lost"]; lost.Pushpull.Median != 0 || lost.Peer != (Spread{1, 0, 2, 2}) || lost.Ratio != 0 {
		t.Errorf("lost row %+v", lost)
	}
	// The other processes' share is context: no ratio, whatever it is.
	busy := compareRows([]any{&DeliveryResult{OtherCPUShare: 0.5}}, []any{&DeliveryResult{OtherCPUShare: 0.25}})
	for _, r := range busy {
		if r.Figure == "other processes' CPU share (%)" && (r.Pushpull.Median != 50 || r.Ratio != 0) {
			t.Errorf("busy row %+v", r)
		}
	}
	// A side without runs has no spread and no ratio.
	for _, r := range compareRows(pushpull, nil) {
		if r.Peer.N != 0 || r.Ratio != 0 || r.Pushpull.N != 3 {
			t.Errorf("no peer runs: %+v", r)
		}
	}
	idle := compareRows([]any{&IdleResult{BytesPerConn: 3000}}, []any{&IdleResult{BytesPerConn: 12000}})
	if idle[0].Figure != "RSS per connection (bytes)" || idle[0].Ratio != 0.25 {
		t.Errorf("idle rows %+v", idle)
	}
}

func TestWriteComparison(t *testing.T) {
	c := &Comparison{
		Scenario: "fanout", Peer: KindNchan, Pinned: true, Runs: 3, PeerWorkers: 1,
		Setup:        "1000 subscribers on one channel, 500 messages at 100/s",
		PushpullRuns: []any{1, 2, 3}, PeerRuns: []any{1, 2},
		Rows: []CompareRow{
			{Figure: "latency p50 (ms)", Pushpull: Spread{0.5, 0.41, 0.62, 3}, Peer: Spread{1, 1, 1, 2}, Ratio: 0.5},
			{Figure: "lost", Pushpull: Spread{0, 0, 0, 3}, Peer: Spread{0, 0, 0, 2}},
			{Figure: "deliveries per second", Pushpull: Spread{99800, 99000, 100123.4, 3}},
		},
		Errors: []string{"nchan run 3: nginx exited (exit status 1):\nsome output\n[emerg] bind() failed"},
	}
	var b strings.Builder
	WriteComparison(&b, c)
	out := b.String()
	for _, s := range []string{
		"fanout vs nchan (1 nginx worker): pinned: server on CPU 0, bench on CPU 1; 1000 subscribers",
		"3 alternating runs each (pushpull 3, nchan 2 finished)",
		"PUSHPULL median (min-max)", "NCHAN median (min-max)", "PUSHPULL/NCHAN",
		"0.500 (0.410-0.620)", "0.50\n",
		"99800 (99000-100123)",
		"not measured: nchan run 3: nginx exited (exit status 1): [emerg] bind() failed",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "lost") && !strings.HasSuffix(strings.TrimSpace(l), "-") {
			t.Errorf("a 0/0 ratio is not shown as -: %q", l)
		}
		if strings.HasPrefix(l, "deliveries") && !strings.Contains(l, " -  ") {
			t.Errorf("a side without runs is not shown as -: %q", l)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 3: "3", 0.1234: "0.123", 1.234: "1.23", 12.34: "12.3", 1234.5: "1234", -2.5: "-2.50"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

// fakeNchan speaks nchan's routes as the bench uses them: WebSocket
// subscribers on ?CHANNEL_ID=, each message's body alone in a text frame;
// publishes answered 201 (202 with no subscriber); a stub status.
type fakeNchan struct {
	mu    sync.Mutex
	subs  map[string][]net.Conn
	open  atomic.Int64
	rdrs  sync.WaitGroup
	heads sync.Map // Message-Expiry values seen
}

func newFakeNchan(t *testing.T) (*fakeNchan, Target) {
	f := &fakeNchan{subs: map[string][]net.Conn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/sub/", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("CHANNEL_ID")
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.subs[ch] = append(f.subs[ch], nc)
		f.mu.Unlock()
		f.open.Add(1)
		f.rdrs.Add(1)
		go func() {
			defer f.rdrs.Done()
			defer f.open.Add(-1)
			for {
				if _, _, err := wsutil.ReadClientData(nc); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("/pub/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.heads.Store(r.Header.Get("Message-Expiry"), true)
		f.mu.Lock()
		subs := f.subs[r.URL.Query().Get("CHANNEL_ID")]
		for _, nc := range subs {
			wsutil.WriteServerText(nc, body)
		}
		f.mu.Unlock()
		code := http.StatusCreated
		if len(subs) == 0 {
			code = http.StatusAccepted
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "queued messages: 1\nlast requested: 0 sec. ago\nactive subscribers: %d\n", len(subs))
	})
	mux.HandleFunc("/nchan-stat/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "total published messages: 0\nchannels: 1\nsubscribers: %d\nnchan version: 1.3.6\n", f.open.Load())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		for _, cs := range f.subs {
			for _, nc := range cs {
				nc.Close()
			}
		}
		f.mu.Unlock()
		f.rdrs.Wait()
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	return f, Target{
		Kind:    KindNchan,
		PID:     os.Getpid(),
		SubURL:  "ws://" + host + "/sub/",
		PubURL:  srv.URL + "/pub/",
		StatURL: srv.URL + "/nchan-stat/",
	}
}

// Compare alternates the two servers with the same generator: each reads
// its own frames (envelopes, bare bodies) and publish answers (200, 201),
// and every run delivers everything.
func TestCompareFakes(t *testing.T) {
	_, pp := newFakeServer(t, "secret")
	peer, nc := newFakeNchan(t)
	o := Options{Target: pp, PeerTarget: nc, Key: "secret", Runs: 2, Subs: 6, Messages: 12, Rate: 2000,
		Channels: 2, Expiry: 600, Drain: 10 * time.Second}
	c := Compare(context.Background(), o, "fanout", false)
	if len(c.Errors) != 0 || len(c.PushpullRuns) != 2 || len(c.PeerRuns) != 2 || c.Peer != KindNchan {
		t.Fatalf("got %+v", c)
	}
	for side, runs := range [][]any{c.PushpullRuns, c.PeerRuns} {
		for _, res := range runs {
			r := res.(*DeliveryResult)
			if r.Expected != 36 || r.Delivered != 36 || r.Lost != 0 || r.Unparsed != 0 || r.Stray != 0 || r.PublishErrors != 0 || r.Channels != 2 {
				t.Fatalf("side %d: %+v", side, r)
			}
		}
	}
	if r := c.PeerRuns[0].(*DeliveryResult); r.Server != KindNchan || c.PushpullRuns[0].(*DeliveryResult).Server != KindPushpull {
		t.Fatalf("servers %q, %q", r.Server, c.PushpullRuns[0].(*DeliveryResult).Server)
	}
	if _, ok := peer.heads.Load("600"); !ok {
		t.Error("the peer's publishes lacked Message-Expiry")
	}
	var delivered CompareRow
	for _, r := range c.Rows {
		if r.Figure == "delivered" {
			delivered = r
		}
	}
	if delivered.Pushpull != (Spread{36, 36, 36, 2}) || delivered.Ratio != 1 {
		t.Fatalf("delivered row %+v", delivered)
	}
	if !strings.Contains(c.Setup, "6 subscribers on 2 channels, 12 messages") {
		t.Errorf("setup %q", c.Setup)
	}

	// Unicast for a time and idle run the same way.
	o.Duration, o.Concurrency, o.Runs = 100*time.Millisecond, 2, 1
	c = Compare(context.Background(), o, "unicast", false)
	if len(c.Errors) != 0 || len(c.PeerRuns) != 1 {
		t.Fatalf("unicast: %+v", c)
	}
	if r := c.PeerRuns[0].(*DeliveryResult); r.Messages == 0 || r.Delivered != int64(r.Messages) || r.Expected != r.Delivered {
		t.Fatalf("unicast for a time: %+v", r)
	}
	o.Conns, o.Settle = 20, time.Millisecond
	c = Compare(context.Background(), o, "idle", false)
	if len(c.Errors) != 0 || len(c.PeerRuns) != 1 || c.PeerRuns[0].(*IdleResult).ServerWebSockets != 20 {
		t.Fatalf("idle: %+v", c)
	}

	// A peer that is gone is reported per run; pushpull's runs stand.
	o.PeerTarget.PID = -1
	c = Compare(context.Background(), o, "idle", false)
	if len(c.Errors) != 1 || !strings.Contains(c.Errors[0], "nchan run 1") || len(c.PushpullRuns) != 1 {
		t.Fatalf("a missing peer: %+v", c)
	}
	if c := Compare(context.Background(), o, "chaos", false); len(c.Errors) == 0 {
		t.Fatal("compared an unknown scenario")
	}
}

func TestPublisherNchan(t *testing.T) {
	_, nc := newFakeNchan(t)
	p, err := NewPublisher(nc.PubURL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// 202: no subscriber. pushpull answers 200, so only a publisher told
	// so takes it.
	if err := p.Publish("c", []byte("x")); err == nil {
		t.Fatal("202 taken from a pushpull publish route")
	}
	p.Created = true
	for range 3 { // the body of each answer is read past
		if err := p.Publish("c", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
}
