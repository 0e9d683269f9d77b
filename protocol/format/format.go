// Package format holds the bytes of every protocol version: how a message
// is written to a subscriber of each version, over WebSocket and over long
// polling. It does no I/O; the transports frame and write what it makes.
package format

import (
	"strconv"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// Format is how one protocol version writes messages.
type Format uint8

// The formats. A WebSocket of protocols 1-2 speaks Text; PushStream is
// their long-polling answer.
const (
	Text       Format = iota // protocol 3: #!NGINXNMS!# envelopes
	JSON                     // protocol 3 with format=json: arrays of envelope objects
	Protobuf                 // protocol 4: protobuf ResponseBatch
	JSONRPC                  // protocol 5: JSON-RPC incoming.message notifications
	PushStream               // protocols 1-2 long polling: the nginx-push-stream 0.4 template
	Count                    // how many formats there are
)

var names = [Count]string{"text", "json", "protobuf", "jsonrpc", "pushstream"}

func (f Format) String() string {
	if f < Count {
		return names[f]
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Binary reports whether the format's WebSocket messages are binary.
func (f Format) Binary() bool { return f == Protobuf }

// Joinable reports whether the payloads of several WebSocket messages,
// concatenated, are one valid payload that carries them all, in order:
// text envelopes follow one another, and concatenated protobuf
// ResponseBatches are one batch of all their responses. The original 2.0
// sends messages bound for one socket close together that way, and the
// stock clients read them.
func (f Format) Joinable() bool { return f == Text || f == Protobuf }

// SharedKey is the part of the channel a message came through that its
// encoding depends on: subscribers whose SharedKey is the same get the same
// bytes, so a fan-out encodes once per format and key. Protocol 4 names no
// channel; protocol 5 names one only on a user's channel (user_params).
func (f Format) SharedKey(channel string) string {
	switch {
	case f == Protobuf:
		return ""
	case f == JSONRPC && protocol.ChannelUser(channel) == "":
		return ""
	}
	return channel
}

// AppendMessage appends the payload of the one WebSocket message that
// carries m to a subscriber that got it through channel (a hub channel:
// a namespace is stripped from what the client sees).
func (f Format) AppendMessage(dst []byte, m *protocol.Message, channel string) []byte {
	switch f {
	case JSON:
		dst = append(dst, '[')
		dst = AppendEnvelopeJSON(dst, m, protocol.BareChannel(channel))
		return append(dst, ']')
	case Protobuf:
		return pb.AppendResponseBatch(dst, outgoing(m))
	case JSONRPC:
		return appendIncomingMessage(dst, m, channel)
	case PushStream:
		return appendPushStream(dst, m, protocol.BareChannel(channel))
	}
	return AppendEnvelope(dst, m, protocol.BareChannel(channel))
}

// Delivery is a message with the channel it came through.
type Delivery struct {
	Msg     *protocol.Message
	Channel string
}

// AppendBody appends the long-polling answer that carries ds, oldest
// first.
func (f Format) AppendBody(dst []byte, ds []Delivery) []byte {
	switch f {
	case JSON, JSONRPC:
		dst = append(dst, '[')
		for i, d := range ds {
			if i > 0 {
				dst = append(dst, ',')
			}
			if f == JSON {
				dst = AppendEnvelopeJSON(dst, d.Msg, protocol.BareChannel(d.Channel))
			} else {
				dst = appendIncomingMessage(dst, d.Msg, d.Channel)
			}
		}
		return append(dst, ']')
	case Protobuf:
		out := make([]pb.Outgoing, len(ds))
		for i, d := range ds {
			out[i] = outgoing(d.Msg)
		}
		return pb.AppendResponseBatch(dst, out...)
	}
	for _, d := range ds {
		dst = f.AppendMessage(dst, d.Msg, d.Channel)
	}
	return dst
}

// ContentType is the Content-Type of a long-polling answer. The text
// formats answer text/plain, as the original did (format=json included);
// JSON-RPC answers application/json (the clients read the body as text
// whatever it says).
func (f Format) ContentType() string {
	switch f {
	case Protobuf:
		return "application/octet-stream"
	case JSONRPC:
		return "application/json"
	}
	return "text/plain"
}
