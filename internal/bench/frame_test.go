package bench

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

func TestParseFrameHeader(t *testing.T) {
	for _, f := range []ws.Frame{
		ws.NewTextFrame([]byte("hi")),
		ws.NewTextFrame(bytes.Repeat([]byte("x"), 126)),
		ws.NewBinaryFrame(bytes.Repeat([]byte("y"), 70000)),
		ws.NewPingFrame(nil),
		ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"))),
		{Header: ws.Header{OpCode: ws.OpContinuation, Rsv: 4, Length: 3}, Payload: []byte("abc")},
	} {
		b, err := ws.CompileFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		h, size, err := parseFrameHeader(b)
		if err != nil {
			t.Fatalf("%+v: %v", f.Header, err)
		}
		if h != f.Header || size != len(b)-int(f.Header.Length) {
			t.Fatalf("got %+v size %d, want %+v size %d", h, size, f.Header, len(b)-int(f.Header.Length))
		}
		// Every proper prefix of a header is incomplete.
		for i := 0; i < size; i++ {
			if _, _, err := parseFrameHeader(b[:i]); err != errIncomplete {
				t.Fatalf("%+v cut at %d: %v", f.Header, i, err)
			}
		}
	}
	huge := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}
	if _, _, err := parseFrameHeader(huge); err != errFrameSize {
		t.Fatalf("2^63-byte frame: %v", err)
	}
}

func FuzzParseFrameHeader(f *testing.F) {
	for _, fr := range []ws.Frame{ws.NewTextFrame([]byte("hello")), ws.MaskFrame(ws.NewPongFrame([]byte("p"))), ws.NewBinaryFrame(make([]byte, 300))} {
		b, _ := ws.CompileFrame(fr)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, size, err := parseFrameHeader(b)
		if err != nil {
			return
		}
		if size < 2 || size > 14 || size > len(b) || h.Length < 0 {
			t.Fatalf("header %+v size %d from %d bytes", h, size, len(b))
		}
		// gobwas/ws reads the same header from a stream.
		want, err := ws.ReadHeader(bytes.NewReader(b))
		if err == nil && want != h {
			t.Fatalf("got %+v, ws.ReadHeader says %+v", h, want)
		}
	})
}
