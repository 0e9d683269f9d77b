package server

import (
	"encoding/hex"
	"strconv"

	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// WebSocket frame formats, keys of the per-message encoding cache.
const (
	textFrames   = iota // one #!NGINXNMS!# envelope per text frame
	jsonFrames          // a JSON array of one envelope object per text frame
	binaryFrames        // protocol 4: a protobuf ResponseBatch per binary frame
	rpcFrames           // protocol 5: a JSON-RPC incoming.message per text frame
)

var frameEncoders = [...]func(*protocol.Message, string) []byte{
	textFrames: func(m *protocol.Message, channel string) []byte {
		return ws.TextFrame(protocol.AppendEnvelope(make([]byte, 0, len(m.Body)+192), m, bareChannel(channel)))
	},
	jsonFrames: func(m *protocol.Message, channel string) []byte {
		b := append(make([]byte, 0, len(m.Body)+192), '[')
		b = protocol.AppendEnvelopeJSON(b, m, bareChannel(channel))
		return ws.TextFrame(append(b, ']'))
	},
	binaryFrames: func(m *protocol.Message, _ string) []byte {
		return ws.BinaryFrame(appendBinary(make([]byte, 0, len(m.Body)+96), m))
	},
	rpcFrames: func(m *protocol.Message, channel string) []byte {
		return ws.TextFrame(appendIncomingMessage(make([]byte, 0, len(m.Body)+256), m, channel))
	},
}

// encodeFrame encodes m for one session, outside any broadcast.
func encodeFrame(format int, m *protocol.Message, channel string) []byte {
	return frameEncoders[format](m, channel)
}

// hexBytes decodes a hex id; ids that are not hex (never made by this
// server) go out as their raw bytes rather than not at all.
func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return []byte(s)
	}
	return b
}

// outgoing is m as a protocol-4 OutgoingMessage. The id is the mid
// hex-decoded: a mid is 26 decimal digits, valid hex, so the client's
// hex encoding of the bytes gives back the very mid it resumes from.
func outgoing(m *protocol.Message) pb.Outgoing {
	snd := m.EffectiveSender()
	o := pb.Outgoing{
		ID:         hexBytes(m.MID),
		Body:       m.Body,
		Expiry:     m.Expiry,
		Created:    uint32(m.Created.Unix()),
		SenderType: pb.SenderType(snd.Type),
	}
	if snd.ID != "" {
		o.SenderID = hexBytes(snd.ID)
	}
	return o
}

// appendBinary appends the ResponseBatch carrying m.
func appendBinary(dst []byte, m *protocol.Message) []byte {
	return pb.AppendResponseBatch(dst, outgoing(m))
}

// appendIncomingMessage appends the protocol-5 notification of m for a
// subscriber that got it through channel: a user channel picks that
// user's user_params.
func appendIncomingMessage(dst []byte, m *protocol.Message, channel string) []byte {
	snd := m.EffectiveSender()
	dst = append(dst, `{"jsonrpc":"2.0","method":"incoming.message","params":{"mid":"`...)
	dst = append(dst, m.MID...)
	dst = append(dst, `","body":`...)
	if protocol.IsJSONObject(m.Body) {
		dst = append(dst, m.Body...)
	} else {
		// Clients add fields to the body: it must be an object. A text
		// publish of something else reaches them wrapped.
		dst = append(dst, `{"module_id":"","command":"","params":{"text":`...)
		dst = append(dst, m.Body...)
		dst = append(dst, `},"extra":{}}`...)
	}
	dst = append(dst, `,"sender":{"type":`...)
	dst = strconv.AppendUint(dst, uint64(snd.Type), 10)
	if snd.ID != "" {
		dst = append(dst, `,"id":"`...)
		dst = append(dst, snd.ID...)
		dst = append(dst, '"')
	}
	dst = append(dst, '}')
	if u := channelUser(channel); u != "" {
		if p, ok := m.UserParams[u]; ok {
			dst = append(dst, `,"user_params":`...)
			dst = append(dst, p...)
		}
	}
	if protocol.IsJSONObject(m.Dictionary) {
		dst = append(dst, `,"dictionary":`...)
		dst = append(dst, m.Dictionary...)
	}
	dst = append(dst, `,"expiry":`...)
	dst = strconv.AppendUint(dst, uint64(m.Expiry), 10)
	dst = append(dst, `,"created":`...)
	dst = strconv.AppendInt(dst, m.Created.Unix(), 10)
	return append(dst, "}}"...)
}
