package ws

import (
	"bytes"
	"errors"
	"io"

	"github.com/gobwas/ws"
)

var (
	errUnmasked   = errors.New("client frame is not masked")
	errTooBig     = errors.New("frame exceeds the size limit")
	errBadFrame   = errors.New("malformed frame")
	errIncomplete = errors.New("incomplete frame")
	errNotUTF8    = errors.New("text is not UTF-8")
)

// parseHeader reads a client frame header at the start of b, returning the
// header and its encoded size, or errIncomplete when b holds only part of it.
func parseHeader(r *bytes.Reader, b []byte, maxPayload int) (ws.Header, int, error) {
	r.Reset(b)
	h, err := ws.ReadHeader(r)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return h, 0, errIncomplete
	case err != nil:
		return h, 0, errBadFrame
	case h.Rsv != 0:
		return h, 0, errBadFrame // no extension is negotiated
	case h.OpCode.IsControl() && (h.Length > 125 || !h.Fin):
		return h, 0, errBadFrame // control frames are short and never fragmented
	case !h.Masked:
		return h, 0, errUnmasked
	case h.Length > int64(maxPayload):
		return h, 0, errTooBig
	}
	return h, ws.HeaderSize(h), nil
}

// frame builds a server frame: unmasked, final.
func frame(op ws.OpCode, payload []byte) []byte {
	return ws.MustCompileFrame(ws.NewFrame(op, true, payload))
}

// TextFrame builds a server text frame around payload.
func TextFrame(payload []byte) []byte { return frame(ws.OpText, payload) }

// BinaryFrame builds a server binary frame around payload.
func BinaryFrame(payload []byte) []byte { return frame(ws.OpBinary, payload) }

func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return frame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

var pingFrame = frame(ws.OpPing, nil)

// maxJoined bounds the payload of a frame join makes: larger runs are split,
// and a larger message goes alone.
const maxJoined = 256 << 10

// join returns frames with each run of two or more data frames of one
// opcode replaced by a single frame: a new header, then the payloads in
// order, as slices of the frames (nothing is copied). It also returns how
// many frames that makes. Control frames are left as they are.
func join(frames [][]byte) ([][]byte, int) {
	var out [][]byte // nil until a run is found
	count := 0
	for i := 0; i < len(frames); {
		op, hl, ok := dataFrame(frames[i])
		j, size := i+1, len(frames[i])-hl
		for ok && j < len(frames) {
			op2, hl2, ok2 := dataFrame(frames[j])
			if !ok2 || op2 != op || size+len(frames[j])-hl2 > maxJoined {
				break
			}
			size += len(frames[j]) - hl2
			j++
		}
		count++
		if j-i < 2 {
			if out != nil {
				out = append(out, frames[i])
			}
			i++
			continue
		}
		if out == nil {
			out = append(make([][]byte, 0, len(frames)+1), frames[:i]...)
		}
		out = append(out, putLength(make([]byte, maxHeader), op, size))
		for k := i; k < j; k++ {
			_, hl, _ := dataFrame(frames[k])
			out = append(out, frames[k][hl:])
		}
		i = j
	}
	if out == nil {
		return frames, count
	}
	return out, count
}

// dataFrame reads the opcode and header length of a frame this server
// made; ok is false for control frames and anything not final.
func dataFrame(f []byte) (op ws.OpCode, headerLen int, ok bool) {
	if len(f) < 2 || f[0]&0x80 == 0 || f[0]&0x70 != 0 || f[1]&0x80 != 0 {
		return 0, 0, false
	}
	op = ws.OpCode(f[0] & 0x0f)
	if op != ws.OpText && op != ws.OpBinary {
		return 0, 0, false
	}
	switch f[1] & 0x7f {
	case 126:
		headerLen = 4
	case 127:
		headerLen = 10
	default:
		headerLen = 2
	}
	return op, headerLen, len(f) >= headerLen
}
