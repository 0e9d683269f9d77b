package ws

import (
	"encoding/binary"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// Encoder makes the frames of a session's messages.
type Encoder struct {
	// Frame turns a message into the complete frame a session sends. It
	// is called once per subscriber of a broadcast and returns a shared
	// encoding (see hub.Prepared).
	Frame func(p *hub.Prepared, channel string) []byte
	// Join lets the session send the data frames queued together as one
	// frame of their payloads concatenated (see format.Joinable).
	Join bool
}

// FormatEncoder returns the encoder of sessions that speak f: one frame per
// message, encoded once per broadcast, format and format.SharedKey.
func FormatEncoder(f format.Format) Encoder { return formatEncoders[f] }

var formatEncoders = func() (out [format.Count]Encoder) {
	for f := range format.Count {
		frame := frameEncoder(f)
		out[f] = Encoder{
			Frame: func(p *hub.Prepared, channel string) []byte {
				return p.Encoded(hub.Key{Format: int(f), Channel: f.SharedKey(channel)}, frame)
			},
			Join: f.Joinable(),
		}
	}
	return out
}()

// maxHeader is the longest header of an unmasked server frame.
const maxHeader = 10

// frameEncoder returns a function that makes the frame of one message in
// format f. The payload is written after room for the header, which is
// then put right before it: the frame is made without a copy.
func frameEncoder(f format.Format) func(m *protocol.Message, channel string) []byte {
	op := ws.OpText
	if f.Binary() {
		op = ws.OpBinary
	}
	return func(m *protocol.Message, channel string) []byte {
		b := make([]byte, maxHeader, maxHeader+len(m.Body)+256)
		b = f.AppendMessage(b, m, channel)
		return putHeader(b, op)
	}
}

// putHeader writes the header of a final, unmasked frame of opcode op
// whose payload is b[maxHeader:] into the room before it, and returns the
// frame.
func putHeader(b []byte, op ws.OpCode) []byte {
	return b[headerBefore(b[:maxHeader], op, len(b)-maxHeader):]
}

// putLength returns the header of a final, unmasked frame of opcode op
// with an n-byte payload, written at the end of hdr (maxHeader bytes).
func putLength(hdr []byte, op ws.OpCode, n int) []byte {
	return hdr[headerBefore(hdr, op, n):]
}

// headerBefore writes the header of a final, unmasked frame of opcode op
// with an n-byte payload so that it ends at maxHeader in b, and returns
// where it starts.
func headerBefore(b []byte, op ws.OpCode, n int) int {
	var start int
	switch {
	case n < 126:
		start = maxHeader - 2
		b[start+1] = byte(n)
	case n <= 0xffff:
		start = maxHeader - 4
		b[start+1] = 126
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	default:
		start = 0
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[start] = 0x80 | byte(op)
	return start
}

// MessageFrame is the frame of m for a session outside any broadcast (a
// message sent to one connection).
func (s *Session) MessageFrame(m *protocol.Message, channel string) []byte {
	return s.encode.Frame(hub.NewPrepared(m), channel)
}
