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
