package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushpull/pushpull/internal/testutil"
)

// The client address comes from the forwarding headers only when the peer
// is a trusted proxy, and then from the rightmost address no trusted proxy
// holds: what a client writes into the header itself cannot name it.
func TestClientAddr(t *testing.T) {
	trusting, err := newProxies([]string{"127.0.0.1", "10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		proxies proxies
		peer    string
		xff     []string
		realIP  string
		want    string
	}{
		{"no proxies", nil, "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.8", "127.0.0.1"},
		{"untrusted peer", trusting, "198.51.100.1:5000", []string{"203.0.113.9"}, "203.0.113.8", "198.51.100.1"},
		{"trusted, forwarded", trusting, "127.0.0.1:5000", []string{"203.0.113.9"}, "", "203.0.113.9"},
		{"trusted, real ip", trusting, "127.0.0.1:5000", nil, "203.0.113.8", "203.0.113.8"},
		{"spoofed left part", trusting, "127.0.0.1:5000", []string{"1.1.1.1, 203.0.113.9"}, "", "203.0.113.9"},
		{"chain of proxies", trusting, "127.0.0.1:5000", []string{"203.0.113.9, 10.1.2.3", "10.0.0.7"}, "", "203.0.113.9"},
		{"only proxies", trusting, "127.0.0.1:5000", []string{"10.0.0.7"}, "", "10.0.0.7"},
		{"garbage stops", trusting, "127.0.0.1:5000", []string{"203.0.113.9, junk, 10.0.0.7"}, "", "10.0.0.7"},
		{"with port", trusting, "127.0.0.1:5000", []string{"203.0.113.9:4711"}, "", "203.0.113.9"},
		{"ipv6 peer", trusting, "[::1]:5000", []string{"2001:db8::1"}, "", "2001:db8::1"},
		{"mapped peer", trusting, "[::ffff:127.0.0.1]:5000", nil, "203.0.113.8", "203.0.113.8"},
		{"bad real ip", trusting, "127.0.0.1:5000", nil, "nonsense", "127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{}
			s.live.Store(&live{proxies: c.proxies})
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if c.realIP != "" {
				r.Header.Set("X-Real-IP", c.realIP)
			}
			if got := s.clientAddr(r); got != c.want {
				t.Errorf("clientAddr = %q; want %q", got, c.want)
			}
		})
	}
	if _, err := newProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad network accepted")
	}
}

// Each address has its own count; a release frees a place once, however
// often it is called; no limit counts nothing.
func TestAddrLimit(t *testing.T) {
	l := newAddrLimit(2)
	r1, ok1 := l.acquire("a")
	_, ok2 := l.acquire("a")
	_, ok3 := l.acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three connections of a with a limit of 2: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := l.acquire("b"); !ok {
		t.Fatal("b refused for a's connections")
	}
	r1()
	r1()
	if _, ok := l.acquire("a"); !ok {
		t.Fatal("a refused after one of its connections ended")
	}
	if _, ok := l.acquire("a"); ok {
		t.Fatal("a second release freed a second place")
	}
	off := newAddrLimit(0)
	for range 10 {
		if _, ok := off.acquire("a"); !ok {
			t.Fatal("no limit refused")
		}
	}
	if len(off.byAddr) != 0 {
		t.Fatal("no limit counted")
	}
}

// FuzzClientAddr feeds clientAddr arbitrary peers and forwarding headers.
// It must never panic; from a peer that is no trusted proxy the answer is
// the peer whatever the headers; from a trusted one it is an address.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:5000", "203.0.113.9, 10.0.0.7", "198.51.100.1")
	f.Add("[::1]:80", "[2001:db8::1]:443,junk", "")
	f.Add("198.51.100.1:1", "1.1.1.1", "2.2.2.2")
	f.Add("garbage", ",,,", "::ffff:1.2.3.4")
	trusting, err := newProxies([]string{"127.0.0.0/8", "10.0.0.0/8", "::1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, peer, xff, realIP string) {
		s := &Server{}
		s.live.Store(&live{proxies: trusting})
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("X-Real-IP", realIP)
		got := s.clientAddr(r)
		p := peerAddr(r)
		switch {
		case !p.IsValid():
			if got != peer {
				t.Fatalf("peer %q without an address: %q", peer, got)
			}
		case !trusting.trusted(p):
			if got != p.String() {
				t.Fatalf("untrusted peer %q: %q", peer, got)
			}
		default:
			if _, err := netip.ParseAddr(got); err != nil {
				t.Fatalf("trusted peer %q, headers %q %q: %q is no address", peer, xff, realIP, got)
			}
		}
	})
}

// limits.maxConnPerIP on the subscribe route: a held long poll counts for
// its client's address until it ends; the address is the forwarded one
// only once a reload trusts the proxy, and the reloaded limit applies to
// the next connection.
func TestMaxConnPerIPRoute(t *testing.T) {
	f := newRouteFixture(t, time.Hour)
	next := *f.s.cfg
	next.Limits.MaxConnPerIP = 1
	if err := f.s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	poll := func(ctx context.Context, ch, forwarded string) *httptest.ResponseRecorder {
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/bitrix/sub/?CHANNEL_ID="+ch, nil)
		r.RemoteAddr = "127.0.0.1:4000"
		r.Header.Set("X-Forwarded-For", forwarded)
		w := httptest.NewRecorder()
		f.s.subscribe(w, r)
		return w
	}
	held, stop := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- poll(held, chA, "203.0.113.1") }()
	testutil.WaitFor(t, "the first poll to be held", func() bool { return f.s.hub.Count(chA) != 0 })
	if w := poll(context.Background(), chB, "203.0.113.2"); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "maxConnPerIP is 1") {
		t.Fatalf("second poll of the proxy's address: %d %q; want 429", w.Code, w.Body)
	}
	stop()
	<-done
	// The first ended: its place is free.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- poll(ctx, chA, "203.0.113.1") }()
	testutil.WaitFor(t, "a poll to be held again", func() bool { return f.s.hub.Count(chA) != 0 })
	// Trusting the proxy, the second client is another address.
	next.Security.TrustedProxies = []string{"127.0.0.1"}
	if err := f.s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	second, stopSecond := context.WithCancel(context.Background())
	secondDone := make(chan *httptest.ResponseRecorder, 1)
	go func() { secondDone <- poll(second, chB, "203.0.113.2") }()
	testutil.WaitFor(t, "the second client's poll to be held", func() bool { return f.s.hub.Count(chB) != 0 })
	if w := poll(context.Background(), chB, "203.0.113.2"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a second poll of 203.0.113.2: %d; want 429", w.Code)
	}
	stopSecond()
	<-secondDone
	cancel()
	<-done
	if n := promtest.ToFloat64(f.s.metrics.refusedPerIP); n != 2 {
		t.Errorf("pushpull_refused_connections_total %v; want the 2 refusals", n)
	}
}
