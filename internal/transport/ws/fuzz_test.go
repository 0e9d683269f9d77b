package ws

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// discardConn is a client that accepts every write and never sends.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReceived feeds arbitrary client bytes, split at an arbitrary point,
// to a session: it must never panic, and whatever it keeps for the next
// read stays bounded by the frame limit.
func FuzzReceived(f *testing.F) {
	for _, fr := range []ws.Frame{
		ws.NewTextFrame([]byte("hello")),
		ws.NewFrame(ws.OpText, false, []byte("he")),
		ws.NewFrame(ws.OpContinuation, true, []byte("llo")),
		ws.NewPingFrame([]byte("p")),
		ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")),
		ws.NewBinaryFrame(bytes.Repeat([]byte{1}, 300)),
	} {
		b, _ := ws.CompileFrame(ws.MaskFrame(fr))
		f.Add(b, uint8(len(b)/2))
	}
	f.Add([]byte{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(3))
	srv := NewServer(Options{MaxFrameBytes: 1024})
	defer srv.Close()
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		sess := &Session{srv: srv, conn: discardConn{}}
		sess.onMessage = func(*Session, ws.OpCode, []byte) {}
		cut := int(split)
		if cut > len(data) {
			cut = len(data)
		}
		var r bytes.Reader
		sess.received(append([]byte(nil), data[:cut]...), &r)
		sess.received(append([]byte(nil), data[cut:]...), &r)
		if len(sess.in) > 1024+14 || len(sess.fragment) > 1024 {
			t.Fatalf("kept %d bytes of partial frame and %d of fragment", len(sess.in), len(sess.fragment))
		}
	})
}
