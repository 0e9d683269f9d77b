package bench

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

var (
	errIncomplete = errors.New("incomplete frame header")
	errFrameSize  = errors.New("frame length out of range")
)

// parseFrameHeader reads a WebSocket frame header (RFC 6455 5.2) from the
// start of b and returns it with its size in bytes. errIncomplete means b
// holds only part of it.
func parseFrameHeader(b []byte) (h ws.Header, size int, err error) {
	if len(b) < 2 {
		return h, 0, errIncomplete
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	size = 2
	switch n := b[1] & 0x7f; n {
	case 126:
		if len(b) < 4 {
			return h, 0, errIncomplete
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		size = 4
	case 127:
		if len(b) < 10 {
			return h, 0, errIncomplete
		}
		l := binary.BigEndian.Uint64(b[2:])
		if l > 1<<62 {
			return h, 0, errFrameSize
		}
		h.Length = int64(l)
		size = 10
	default:
		h.Length = int64(n)
	}
	if h.Masked {
		if len(b) < size+4 {
			return h, 0, errIncomplete
		}
		copy(h.Mask[:], b[size:size+4])
		size += 4
	}
	return h, size, nil
}
