package server

import (
	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
)

// WebSocket frame formats, keys of the per-message encoding cache.
const (
	textFrames = iota // one #!NGINXNMS!# envelope per text frame
	jsonFrames        // a JSON array of one envelope object per text frame
)

var frameEncoders = [...]func(*protocol.Message, string) []byte{
	textFrames: func(m *protocol.Message, channel string) []byte {
		return ws.TextFrame(protocol.AppendEnvelope(make([]byte, 0, len(m.Body)+192), m, channel))
	},
	jsonFrames: func(m *protocol.Message, channel string) []byte {
		b := append(make([]byte, 0, len(m.Body)+192), '[')
		b = protocol.AppendEnvelopeJSON(b, m, channel)
		return ws.TextFrame(append(b, ']'))
	},
}

// encodeFrame encodes m for one session, outside any broadcast.
func encodeFrame(format int, m *protocol.Message, channel string) []byte {
	return frameEncoders[format](m, channel)
}
