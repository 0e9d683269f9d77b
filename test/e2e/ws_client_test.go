package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/wsclient"
)

// server sends and answers its pings.
type WSClient struct {
	Frames <-chan Frame // closed when the connection ends
	conn   net.Conn

	mu          sync.Mutex
	closeCode   ws.StatusCode
	closeReason string
	readErr     error

	pending []Envelope // read from a frame but not yet returned
}

// Frame is one data message from the server.
type Frame struct {
	Op   ws.OpCode
	Data []byte
}

// dialWS opens a WebSocket to url. A refused upgrade is returned as
// ws.StatusError (the HTTP status).
func dialWS(t testing.TB, url string) (*WSClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	frames := make(chan Frame, 1024)
	c := &WSClient{Frames: frames, conn: conn}
	go c.readLoop(wsclient.Stream(conn, br), frames)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mustDialWS is dialWS failing the test on error.
func mustDialWS(t testing.TB, url string) *WSClient {
	t.Helper()
	c, err := dialWS(t, url)
	if err != nil {
		t.Fatalf("WebSocket %s: %v", url, err)
	}
	return c
}

func (c *WSClient) readLoop(rd io.Reader, frames chan<- Frame) {
	defer close(frames)
	rw := struct {
		io.Reader
		io.Writer
	}{rd, c.conn}
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			c.mu.Lock()
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				c.closeCode, c.closeReason = closed.Code, closed.Reason
			}
			c.readErr = err
			c.mu.Unlock()
			return
		}
		frames <- Frame{Op: op, Data: data}
	}
}

// CloseCode returns the code of the server's close frame, 0 if none came.
func (c *WSClient) CloseCode() ws.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// CloseReason returns the reason of the server's close frame.
func (c *WSClient) CloseReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeReason
}

// closedWith waits until the server closed c and checks its code and
// reason.
func closedWith(t testing.TB, c *WSClient, code ws.StatusCode, reason string) {
	t.Helper()
	for range c.Frames {
	}
	if c.CloseCode() != code || c.CloseReason() != reason {
		t.Errorf("closed with %d %q; want %d %q", c.CloseCode(), c.CloseReason(), code, reason)
	}
}

// wrongChannel checks that a WebSocket to url is upgraded and closed at
// once with 4010, as the push server 2.x refuses a channel.
func wrongChannel(t testing.TB, url string) {
	t.Helper()
	c, err := dialWS(t, url)
	if err != nil {
		t.Errorf("WebSocket %s: %v; want upgraded, then closed with 4010", url, err)
		return
	}
	closedWith(t, c, 4010, "4010: Wrong Channel Id.")
}

// Close sends a normal close frame and closes the connection.
func (c *WSClient) Close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.conn.Close()
}

// Send writes a text frame.
func (c *WSClient) Send(t testing.TB, text string) {
	t.Helper()
	if err := wsutil.WriteClientText(c.conn, []byte(text)); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// Next returns the next data frame, failing the test if none comes in time
// or the connection ends.
func (c *WSClient) Next(t testing.TB) Frame {
	t.Helper()
	select {
	case f, ok := <-c.Frames:
		if !ok {
			c.mu.Lock()
			err := c.readErr
			c.mu.Unlock()
			t.Fatalf("WebSocket ended while a frame was expected: %v", err)
		}
		return f
	case <-time.After(waitTimeout):
		t.Fatalf("no WebSocket frame within %v", waitTimeout)
	}
	return Frame{}
}

// NextEnvelopes returns the next n envelopes, reading text frames as
// needed. A frame may hold several envelopes (the server may coalesce what
// is queued); those beyond n are kept for the next call.
func (c *WSClient) NextEnvelopes(t testing.TB, n int) []Envelope {
	t.Helper()
	for len(c.pending) < n {
		f := c.Next(t)
		if f.Op != ws.OpText {
			t.Fatalf("WebSocket frame opcode %v; want text: %q", f.Op, f.Data)
		}
		c.pending = append(c.pending, parseEnvelopes(t, string(f.Data))...)
	}
	out := c.pending[:n:n]
	c.pending = c.pending[n:]
	return out
}
