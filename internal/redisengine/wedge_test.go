package redisengine

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// wedgeProxy forwards TCP connections to Redis. wedge makes the
// connections that have subscribed so far stop delivering published
// messages while they still answer pings: a pub/sub connection gone
// silent, which the client library's own keepalive does not notice.
type wedgeProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	subbed  map[net.Conn]bool // client side of connections that sent SUBSCRIBE
	stalled map[net.Conn]bool
}

func startWedgeProxy(t *testing.T, target string) *wedgeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &wedgeProxy{ln: ln, target: target, subbed: map[net.Conn]bool{}, stalled: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *wedgeProxy) addr() string { return p.ln.Addr().String() }

func (p *wedgeProxy) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("SUBSCRIBE")) {
					p.mu.Lock()
					p.subbed[c] = true
					p.mu.Unlock()
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				up.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		p.mu.Lock()
		stalled := p.stalled[c]
		p.mu.Unlock()
		if n > 0 && !(stalled && bytes.Contains(buf[:n], []byte("message\r\n"))) {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// wedge stalls every connection that has subscribed so far.
func (p *wedgeProxy) wedge() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.subbed {
		p.stalled[c] = true
	}
}

// A pub/sub connection that silently stops delivering is found by the
// probes within seconds: readiness goes red, the subscription is rebuilt
// on a new connection, and what was published meanwhile is recovered, so
// nothing accepted is lost.
func TestSilentSubscriptionIsRebuilt(t *testing.T) {
	r := redistest.Start(t)
	proxy := startWedgeProxy(t, r.Addr())
	po := opts(r.Addr())
	po.PublishMode = true
	pub := newEngine(t, po)
	so := opts(proxy.addr())
	so.ProbeInterval, so.ProbeTimeout = 100*time.Millisecond, 300*time.Millisecond
	// The client library's own keepalive would notice only a connection
	// that stops answering, and only after this long.
	so.Client.ConnWriteTimeout = time.Minute
	sub := newEngine(t, so)
	waitReady(t, pub)
	waitReady(t, sub)
	rec := newRecorder(sub.hub, chA)
	before := publish(t, pub, `{"n":1}`, chA)
	rec.wait(t, 1)

	proxy.wedge()
	during := publish(t, pub, `{"n":2}`, chA) // accepted, but not delivered by the wedged connection
	ctx := context.Background()
	testutil.WaitFor(t, "readiness red once the probes stop coming back", func() bool { return sub.Ready(ctx) != nil })
	waitReady(t, sub)
	after := publish(t, pub, `{"n":3}`, chA)
	got := rec.wait(t, 3)
	want := []string{before.MID, during.MID, after.MID}
	if m := mids(got); len(m) != 3 || m[0] != want[0] || m[1] != want[1] || m[2] != want[2] {
		t.Fatalf("delivered %v; want %v, each once", m, want)
	}
}
