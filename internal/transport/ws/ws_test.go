package ws

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// harness runs a Server behind an HTTP test server: every request upgrades,
// subscribes to channel "c" of a hub and goes live at once.
type harness struct {
	srv  *Server
	hub  *hub.Hub
	http *httptest.Server
	url  string

	mu       sync.Mutex
	messages []string // text messages clients sent
}

var encodeText = Encoder{Frame: func(p *hub.Prepared, channel string) []byte {
	return p.Encoded(hub.Key{Channel: channel}, func(m *protocol.Message, _ string) []byte {
		return TextFrame(m.Body)
	})
}}

func newHarness(t *testing.T, opts Options, useTLS bool) *harness {
	t.Helper()
	h := &harness{srv: NewServer(opts), hub: hub.New()}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := h.srv.Upgrade(w, r, encodeText)
		if err != nil {
			return
		}
		h.hub.Subscribe(sess, []string{"c"})
		sess.Start(func(s *Session, op ws.OpCode, p []byte) {
			h.mu.Lock()
			h.messages = append(h.messages, string(p))
			h.mu.Unlock()
		}, func() { h.hub.Unsubscribe(sess, []string{"c"}) })
		sess.Live(nil, nil)
	})
	if useTLS {
		h.http = httptest.NewTLSServer(handler)
		h.url = "wss" + strings.TrimPrefix(h.http.URL, "https")
	} else {
		h.http = httptest.NewServer(handler)
		h.url = "ws" + strings.TrimPrefix(h.http.URL, "http")
	}
	t.Cleanup(func() {
		h.http.Close()
		h.srv.Close()
	})
	return h
}

func (h *harness) dial(t *testing.T) net.Conn {
	t.Helper()
	d := ws.Dialer{TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	conn, br, _, err := d.Dial(context.Background(), h.url)
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		t.Fatal("server sent data before the client spoke")
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitSessions waits until the server holds n sessions.
func (h *harness) waitSessions(t *testing.T, n int64) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d sessions subscribed", n), func() bool {
		return h.srv.Count() == n && h.hub.Count("c") == int(n)
	})
}

// lastMID numbers the messages the tests publish.
var lastMID atomic.Uint64

func publish(h *hub.Hub, body string) {
	publishMID(h, protocol.FormatMID(1, lastMID.Add(1)), body)
}

func publishMID(h *hub.Hub, mid, body string) {
	b := hub.GetBatch()
	h.Broadcast(&protocol.Message{Channels: []string{"c"}, Body: []byte(body), MID: mid}, b)
	b.Flush()
}

func readText(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := wsutil.ReadServerText(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeliversInOrder(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			h := newHarness(t, Options{}, useTLS)
			conns := []net.Conn{h.dial(t), h.dial(t), h.dial(t)}
			h.waitSessions(t, 3)
			const n = 500
			for i := 0; i < n; i++ {
				publish(h.hub, fmt.Sprint(i))
			}
			for _, c := range conns {
				for i := 0; i < n; i++ {
					if got := readText(t, c); got != fmt.Sprint(i) {
						t.Fatalf("message %d = %q", i, got)
					}
				}
			}
		})
	}
}

// dialHeld connects a client to a session of enc subscribed to channel
// "c" of a hub and not yet live, which the test drives itself.
func dialHeld(t *testing.T, enc Encoder) (*hub.Hub, *Session, net.Conn) {
	t.Helper()
	srv := NewServer(Options{})
	hb := hub.New()
	ready := make(chan *Session, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := srv.Upgrade(w, r, enc)
		if err != nil {
			return
		}
		hb.Subscribe(sess, []string{"c"})
		sess.Start(nil, func() { hb.Unsubscribe(sess, []string{"c"}) })
		ready <- sess
	}))
	t.Cleanup(func() { hs.Close(); srv.Close() })
	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hb, <-ready, conn
}

func TestLiveSendsHistoryFirstWithoutRepeats(t *testing.T) {
	hb, sess, conn := dialHeld(t, encodeText)
	mid := func(n uint64) string { return protocol.FormatMID(2, n) }
	// Live messages 2 and 3 arrive while history (1, 2) is being read.
	publishMID(hb, mid(2), "2")
	publishMID(hb, mid(3), "3")
	history := []*protocol.Message{{MID: mid(1), Body: []byte("1")}, {MID: mid(2), Body: []byte("2")}}
	sess.Live(history, func(*protocol.Message) string { return "c" })
	publishMID(hb, mid(4), "4")
	// Older than what the session sent: never sent again.
	publishMID(hb, mid(3), "3 again")
	publishMID(hb, mid(5), "5")
	for _, want := range []string{"1", "2", "3", "4", "5"} {
		if got := readText(t, conn); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestClientPingGetsPong(t *testing.T) {
	h := newHarness(t, Options{}, false)
	conn := h.dial(t)
	if err := wsutil.WriteClientMessage(conn, ws.OpPing, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readFrame(conn)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
		t.Fatalf("got op %v payload %q, want pong \"hi\"", f.Header.OpCode, f.Payload)
	}
}

// clientFrames is one message in two fragments, then one whole: "hello",
// "world".
func clientFrames() []byte {
	var buf []byte
	for _, f := range []ws.Frame{
		ws.NewFrame(ws.OpText, false, []byte("hel")),
		ws.NewFrame(ws.OpContinuation, true, []byte("lo")),
		ws.NewTextFrame([]byte("world")),
	} {
		b, _ := ws.CompileFrame(ws.MaskFrame(f))
		buf = append(buf, b...)
	}
	return buf
}

func TestClientMessagesReachHandler(t *testing.T) {
	h := newHarness(t, Options{}, false)
	conn := h.dial(t)
	if _, err := conn.Write(clientFrames()); err != nil {
		t.Fatal(err)
	}
	var got []string
	testutil.WaitFor(t, "two messages", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		got = append(got[:0], h.messages...)
		return len(got) >= 2
	})
	if len(got) != 2 || got[0] != "hello" || got[1] != "world" {
		t.Fatalf("messages = %q", got)
	}
}

// Frames split across reads, at every byte, arrive whole: a partial frame
// is carried over to the next read.
func TestPartialFramesCarryOver(t *testing.T) {
	srv := NewServer(Options{})
	defer srv.Close()
	buf := clientFrames()
	for cut := range len(buf) + 1 {
		var got []string
		sess := &Session{srv: srv, conn: discardConn{}}
		sess.onMessage = func(_ *Session, _ ws.OpCode, p []byte) { got = append(got, string(p)) }
		var r bytes.Reader
		sess.received(append([]byte(nil), buf[:cut]...), &r)
		sess.received(append([]byte(nil), buf[cut:]...), &r)
		if len(got) != 2 || got[0] != "hello" || got[1] != "world" {
			t.Fatalf("split at byte %d: messages = %q", cut, got)
		}
	}
}

// closeCode reads frames until a close frame and returns its code.
func closeCode(t *testing.T, conn net.Conn) ws.StatusCode {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
}

func TestBadFramesCloseTheSession(t *testing.T) {
	cases := []struct {
		name  string
		frame func() []byte
		want  ws.StatusCode
	}{
		{"oversized", func() []byte {
			b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame(make([]byte, 2048))))
			return b
		}, protocol.CloseTooBig},
		{"unmasked", func() []byte {
			b, _ := ws.CompileFrame(ws.NewTextFrame([]byte("x")))
			return b
		}, protocol.CloseProtocolError},
		{"reserved opcode", func() []byte {
			b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpCode(0x3), true, nil)))
			return b
		}, protocol.CloseProtocolError},
		{"continuation without start", func() []byte {
			b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte("x"))))
			return b
		}, protocol.CloseProtocolError},
		{"huge length field", func() []byte {
			b := []byte{0x81, 0xFF}
			b = binary.BigEndian.AppendUint64(b, 1<<62)
			return append(b, 1, 2, 3, 4)
		}, protocol.CloseTooBig},
		{"ping over 125 bytes", func() []byte {
			return masked(ws.NewFrame(ws.OpPing, true, make([]byte, 200)))
		}, protocol.CloseProtocolError},
		{"fragmented ping", func() []byte {
			return masked(ws.NewFrame(ws.OpPing, false, []byte("x")))
		}, protocol.CloseProtocolError},
		{"close code 999", func() []byte {
			return masked(ws.NewCloseFrame(ws.NewCloseFrameBody(999, "")))
		}, protocol.CloseProtocolError},
		{"close code 1005 sent", func() []byte {
			return masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1005, "")))
		}, protocol.CloseProtocolError},
		{"1-byte close body", func() []byte {
			return masked(ws.NewCloseFrame([]byte{3}))
		}, protocol.CloseProtocolError},
		{"close reason not UTF-8", func() []byte {
			return masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "\xff")))
		}, protocol.CloseInvalidPayload},
		{"fragments over the limit", func() []byte {
			return append(masked(ws.NewFrame(ws.OpText, false, make([]byte, 1000))),
				masked(ws.NewFrame(ws.OpContinuation, true, make([]byte, 100)))...)
		}, protocol.CloseTooBig},
		{"text not UTF-8", func() []byte {
			return masked(ws.NewTextFrame([]byte("ok \xc3\x28")))
		}, protocol.CloseInvalidPayload},
		{"fragmented text not UTF-8", func() []byte {
			return append(masked(ws.NewFrame(ws.OpText, false, []byte{0xe2, 0x82})),
				masked(ws.NewFrame(ws.OpContinuation, true, []byte{0x28}))...)
		}, protocol.CloseInvalidPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{MaxFrameBytes: 1024}, false)
			conn := h.dial(t)
			h.waitSessions(t, 1)
			if _, err := conn.Write(tc.frame()); err != nil {
				t.Fatal(err)
			}
			if got := closeCode(t, conn); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
			h.waitSessions(t, 0)
		})
	}
}

func masked(f ws.Frame) []byte {
	b, err := ws.CompileFrame(ws.MaskFrame(f))
	if err != nil {
		panic(err)
	}
	return b
}

// A client's close is answered with its code; a close without a body
// with 1000. A text message split across frames may split a character.
func TestClientCloseIsEchoed(t *testing.T) {
	for _, tc := range []struct {
		body []byte
		want ws.StatusCode
	}{
		{ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"), ws.StatusGoingAway},
		{ws.NewCloseFrameBody(3000, "app"), 3000},
		{ws.NewCloseFrameBody(4999, ""), 4999},
		{nil, ws.StatusNormalClosure},
	} {
		h := newHarness(t, Options{}, false)
		conn := h.dial(t)
		h.waitSessions(t, 1)
		split := append(masked(ws.NewFrame(ws.OpText, false, []byte{0xe2, 0x82})),
			masked(ws.NewFrame(ws.OpContinuation, true, []byte{0xac}))...)
		if _, err := conn.Write(append(split, masked(ws.NewCloseFrame(tc.body))...)); err != nil {
			t.Fatal(err)
		}
		if got := closeCode(t, conn); got != tc.want {
			t.Fatalf("close code %d, want %d", got, tc.want)
		}
		h.waitSessions(t, 0)
	}
}

func TestTruncatedFrameThenHangUp(t *testing.T) {
	h := newHarness(t, Options{}, false)
	conn := h.dial(t)
	h.waitSessions(t, 1)
	if _, err := conn.Write([]byte{0x81, 0xFE, 0x01}); err != nil { // header cut short
		t.Fatal(err)
	}
	conn.Close()
	h.waitSessions(t, 0)
}

func TestSilentPeerIsDropped(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 100 * time.Millisecond}, false)
	// A raw socket that completes the handshake and then never reads or
	// answers pings.
	u := strings.TrimPrefix(h.url, "ws://")
	conn, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	h.waitSessions(t, 1)
	h.waitSessions(t, 0)
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	h := newHarness(t, Options{MaxQueueBytes: 256 << 10}, false)
	slow := h.dial(t) // never reads
	fast := h.dial(t)
	h.waitSessions(t, 2)
	received := make(chan string)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(received)
		for {
			_ = fast.SetReadDeadline(time.Now().Add(testutil.Timeout))
			b, err := wsutil.ReadServerText(fast)
			if err != nil {
				return
			}
			select {
			case received <- string(b):
			case <-stop:
				return
			}
		}
	}()
	next := func() string {
		t.Helper()
		m, ok := <-received
		if !ok {
			t.Fatal("the reading client lost its connection")
		}
		return m
	}
	// Each message goes out once the reading client has the one before,
	// so only the client that never reads falls behind: its socket
	// buffers fill, then its queue.
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < 2000 && h.srv.Metrics().SlowConsumers.Load() == 0; i++ {
		publish(h.hub, big)
		if next() != big {
			t.Fatal("the reading client got another message")
		}
	}
	if h.srv.Metrics().SlowConsumers.Load() != 1 {
		t.Fatal("the client that never reads was not disconnected")
	}
	h.waitSessions(t, 1)
	_ = slow
	// The reading client is unaffected and still receives.
	publish(h.hub, "after")
	if got := next(); got != "after" {
		t.Fatalf("the reading client got %q; want the message after", got)
	}
}

func TestShutdownSendsLastMessageAndCloseCode(t *testing.T) {
	h := newHarness(t, Options{}, false)
	conns := []net.Conn{h.dial(t), h.dial(t)}
	h.waitSessions(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go h.srv.Shutdown(ctx, func(s *Session) { s.Send(TextFrame([]byte("restart"))) }, protocol.CloseServerRestarted, "restart")
	for _, c := range conns {
		if got := readText(t, c); got != "restart" {
			t.Fatalf("got %q", got)
		}
		if got := closeCode(t, c); got != protocol.CloseServerRestarted {
			t.Fatalf("close code %d", got)
		}
	}
	h.waitSessions(t, 0)
}

// readFrame reads one server frame, refusing implausible lengths.
func readFrame(conn net.Conn) (ws.Frame, error) {
	h, err := ws.ReadHeader(conn)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, fmt.Errorf("frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(conn, p); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

func TestKeepaliveReplacesPings(t *testing.T) {
	srv := NewServer(Options{PingInterval: time.Hour, KeepaliveInterval: 20 * time.Millisecond})
	defer srv.Close()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := srv.Upgrade(w, r, encodeText)
		if err != nil {
			return
		}
		sess.SetKeepalive(TextFrame([]byte("ping")))
		sess.Start(nil, nil)
		sess.Live(nil, nil)
	}))
	defer hs.Close()
	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 3; i++ {
		if got := readText(t, conn); got != "ping" {
			t.Fatalf("got %q, want the keepalive", got)
		}
	}
}

// A publish that meets subscribers whose sockets are gone neither hangs
// nor leaves them subscribed: the write error found by the delivering
// goroutine's inline flush tears each session down, and the teardown,
// which takes the lock the publisher held while delivering, runs after
// that lock is released.
func TestInlineWriteErrorTearsDownOutsideLocks(t *testing.T) {
	srv := NewServer(Options{})
	defer srv.Close()
	hb := hub.New()
	var engineMu sync.Mutex // stands for the engine's delivery lock
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := srv.Upgrade(w, r, encodeText)
		if err != nil {
			return
		}
		hb.Subscribe(sess, []string{"c"})
		sess.Start(nil, func() {
			engineMu.Lock()
			defer engineMu.Unlock()
			hb.Unsubscribe(sess, []string{"c"})
		})
		sess.Live(nil, nil)
	}))
	defer hs.Close()
	publishLocked := func(body string) {
		b := hub.GetBatch()
		engineMu.Lock()
		hb.Broadcast(&protocol.Message{Channels: []string{"c"}, Body: []byte(body), MID: protocol.FormatMID(1, lastMID.Add(1))}, b)
		engineMu.Unlock()
		b.Flush()
	}
	for round := range 30 {
		conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"))
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the session to subscribe", func() bool { return hb.Count("c") == 1 })
		// Reset the connection: the next write to it fails.
		_ = conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; hb.Count("c") != 0 && i < 100_000; i++ {
				publishLocked(strings.Repeat("x", 1024))
			}
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: publishing to a reset subscriber hangs", round)
		}
		testutil.WaitFor(t, "the session to be torn down", func() bool { return hb.Count("c") == 0 && srv.Count() == 0 })
	}
}

// The frames FormatEncoder makes without a copy are the frames gobwas/ws
// makes, at every length class of the header.
func TestFormatFrames(t *testing.T) {
	for _, n := range []int{0, 1, 100, 125, 126, 1000, 65535, 65536, 200000} {
		for f := range format.Count {
			m := &protocol.Message{MID: protocol.FormatMID(1, 1), Channels: []string{"c"}, Body: []byte(`{"x":"` + strings.Repeat("y", n) + `"}`)}
			want := frame(ws.OpText, f.AppendMessage(nil, m, "c"))
			if f.Binary() {
				want = frame(ws.OpBinary, f.AppendMessage(nil, m, "c"))
			}
			if got := FormatEncoder(f).Frame(hub.NewPrepared(m), "c"); string(got) != string(want) {
				t.Fatalf("%v frame of a %d-byte body differs from gobwas/ws's", f, n)
			}
		}
	}
}

// The queue limit cuts a client whose socket is full; one that reads but
// waits for the server to write its queue may queue more, up to a bound.
func TestQueueLimitTellsSlowClientFromBusyServer(t *testing.T) {
	srv := &Server{opts: Options{MaxQueueBytes: 1000}}
	frame := make([]byte, 100)
	fill := func(stalled bool) (queued int, closed bool) {
		s := &Session{srv: srv, flushing: true, stalled: stalled}
		for i := 0; i < 100; i++ {
			s.mu.Lock()
			s.enqueueLocked(frame)
			closed = s.state == stateClosed
			queued = s.queued
			s.mu.Unlock()
			if closed {
				return queued, true
			}
		}
		return queued, false
	}
	if q, closed := fill(true); !closed || q > 1000 {
		t.Errorf("a client that does not read: queued %d, closed %v; want closed at 1000 bytes", q, closed)
	}
	if q, closed := fill(false); !closed || q <= 1000 || q > busyFactor*1000 {
		t.Errorf("a reading client of a busy server: queued %d, closed %v; want it to queue past the limit, up to %d", q, closed, busyFactor*1000)
	}
}

// Each socket's kernel send buffer is bounded.
func TestSendBufferIsBounded(t *testing.T) {
	h := newHarness(t, Options{SendBuffer: 32 << 10}, false)
	h.dial(t)
	h.waitSessions(t, 1)
	sess := h.srv.snapshot()[0]
	got, err := unix.GetsockoptInt(int(sess.sock.fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	if got > 2*(32<<10) {
		t.Fatalf("SO_SNDBUF %d; want at most twice the 32 KiB asked (the kernel doubles it)", got)
	}
}

// A client that begins a message and does not finish it in time is
// closed with 1008, however it trickles bytes to look alive.
func TestUnfinishedMessageIsClosed(t *testing.T) {
	h := newHarness(t, Options{FrameTimeout: time.Second, KeepaliveInterval: 100 * time.Millisecond, PingInterval: time.Minute}, false)
	conn := h.dial(t)
	h.waitSessions(t, 1)
	// A 60,000-byte text frame of which only the header and a byte come.
	full := masked(ws.NewTextFrame(make([]byte, 60000)))
	if _, err := conn.Write(full[:ws.HeaderSize(ws.Header{Length: 60000, Masked: true})+1]); err != nil {
		t.Fatal(err)
	}
	if got := closeCode(t, conn); got != protocol.ClosePolicy {
		t.Fatalf("close code %d, want %d", got, protocol.ClosePolicy)
	}
	h.waitSessions(t, 0)
}

// A session resumed after a mid sends nothing at or below it, even when
// history is empty and messages the client has reach this process late.
func TestResumeAfterDropsWhatTheClientHas(t *testing.T) {
	hb, sess, conn := dialHeld(t, encodeText)
	mid := func(n uint64) string { return protocol.FormatMID(3, n) }
	sess.ResumeAfter(mid(5))
	publishMID(hb, mid(4), "4 late") // held, then dropped
	sess.Live(nil, nil)
	publishMID(hb, mid(5), "5 late")
	publishMID(hb, mid(6), "6")
	if got := readText(t, conn); got != "6" {
		t.Fatalf("got %q, want 6 alone", got)
	}
}

// join makes one frame of each run of data frames of one opcode, at every
// header length class, leaves control frames where they are, and keeps
// joined payloads within maxJoined.
func TestJoin(t *testing.T) {
	text := func(n int) []byte { return TextFrame(bytes.Repeat([]byte{'a' + byte(n%26)}, n)) }
	ping := frame(ws.OpPing, nil)
	bin := BinaryFrame([]byte{1, 2, 3})
	big := TextFrame(bytes.Repeat([]byte{'z'}, maxJoined))
	frames := [][]byte{text(1), text(125), text(126), text(70000), ping, text(3), bin, bin, text(5), big, text(2), text(4)}
	type msg struct {
		op      ws.OpCode
		payload string
	}
	read := func(bufs [][]byte) []msg {
		var buf bytes.Buffer
		for _, b := range bufs {
			buf.Write(b)
		}
		var out []msg
		for buf.Len() > 0 {
			h, err := ws.ReadHeader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(&buf, p); err != nil {
				t.Fatal(err)
			}
			out = append(out, msg{h.OpCode, string(p)})
		}
		return out
	}
	payload := func(fs ...[]byte) string {
		var s string
		for _, f := range fs {
			s += read([][]byte{f})[0].payload
		}
		return s
	}
	joined, count := join(frames)
	got := read(joined)
	want := []msg{
		{ws.OpText, payload(frames[0], frames[1], frames[2], frames[3])},
		{ws.OpPing, ""},
		{ws.OpText, payload(frames[5])},
		{ws.OpBinary, payload(bin, bin)},
		{ws.OpText, payload(frames[8])}, // the next would pass maxJoined
		{ws.OpText, payload(big)},
		{ws.OpText, payload(frames[10], frames[11])},
	}
	if count != len(want) || len(got) != len(want) {
		t.Fatalf("join made %d frames (said %d); want %d", len(got), count, len(want))
	}
	for i := range want {
		if got[i].op != want[i].op || got[i].payload != want[i].payload {
			t.Errorf("frame %d: opcode %v, %d bytes; want %v, %d bytes", i, got[i].op, len(got[i].payload), want[i].op, len(want[i].payload))
		}
	}
	if same, n := join([][]byte{text(1), ping, text(2)}); n != 3 || len(same) != 3 {
		t.Errorf("nothing to join: %d frames, %d buffers; want 3, 3", n, len(same))
	}
}

// A session of a joinable format sends what was queued together as one
// frame: one frame of three envelopes for three messages queued at once.
func TestJoinedDelivery(t *testing.T) {
	_, sess, conn := dialHeld(t, FormatEncoder(format.Text))
	sess.Live(nil, nil)
	var flush hub.Flusher
	for i := 1; i <= 3; i++ {
		m := &protocol.Message{MID: protocol.FormatMID(1, uint64(i)), Channels: []string{"c"}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if f := sess.Deliver(hub.NewPrepared(m), "c"); f != nil {
			flush = f
		}
	}
	if flush == nil {
		t.Fatal("no flusher for the first delivery")
	}
	flush.Flush(true)
	got := readText(t, conn)
	if n := strings.Count(got, protocol.EnvelopeStart); n != 3 || !strings.Contains(got, `{"n":1}`) || strings.Index(got, `{"n":2}`) > strings.Index(got, `{"n":3}`) {
		t.Fatalf("one frame of %d envelopes: %s; want all three, in order", n, got)
	}
}

// A message of the largest size, trickled in reads of a byte, arrives whole
// and once; the read buffer is reused after each read, so the session must
// keep its own copy of what it holds.
func TestTrickledMessage(t *testing.T) {
	srv := &Server{opts: Options{MaxFrameBytes: 1 << 20}}
	var got [][]byte
	s := &Session{srv: srv, onMessage: func(_ *Session, _ ws.OpCode, p []byte) {
		got = append(got, append([]byte(nil), p...))
	}}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	data := append(masked(ws.NewBinaryFrame(big)), masked(ws.NewTextFrame([]byte("next")))...)
	var r bytes.Reader
	buf := make([]byte, 1)
	for _, b := range data[:len(data)-20] {
		buf[0] = b
		s.received(buf, &r)
		buf[0] = 0
	}
	s.received(append([]byte(nil), data[len(data)-20:]...), &r)
	if len(got) != 2 || !bytes.Equal(got[0], big) || string(got[1]) != "next" {
		t.Fatalf("got %d messages", len(got))
	}
	if s.in != nil || s.partialSince.Load() != 0 {
		t.Errorf("a partial frame is kept: %d bytes", len(s.in))
	}
}

// A client that stops reading until its socket is full, then reads again,
// gets every message in order: the writes that waited for it went through
// the connection the session made on its own descriptor.
func TestPausedReaderCatchesUp(t *testing.T) {
	h := newHarness(t, Options{MaxQueueBytes: 4 << 20, SendBuffer: 8 << 10}, false)
	conn := h.dial(t)
	h.waitSessions(t, 1)
	sess := h.srv.snapshot()[0]
	body := strings.Repeat("y", 16<<10)
	n := 0
	stalled := func() bool {
		sess.mu.Lock()
		defer sess.mu.Unlock()
		return sess.stalled
	}
	for ; n < 2000 && !stalled(); n++ {
		publish(h.hub, fmt.Sprintf("%04d%s", n, body))
	}
	if !stalled() {
		t.Fatal("the socket of a client that does not read never filled")
	}
	for i := 0; i < 10; i++ { // more while it waits
		publish(h.hub, fmt.Sprintf("%04d%s", n, body))
		n++
	}
	for i := 0; i < n; i++ {
		got := readText(t, conn)
		if want := fmt.Sprintf("%04d", i); got[:4] != want {
			t.Fatalf("message %d is %q...; want %s", i, got[:4], want)
		}
	}
	if h.srv.Metrics().SlowConsumers.Load() != 0 {
		t.Fatal("a client that read everything was dropped")
	}
}
