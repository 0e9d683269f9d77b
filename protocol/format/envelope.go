package format

import (
	"encoding/hex"
	"strconv"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// AppendEnvelopeJSON appends the JSON object clients receive for m on
// channel: {"id","mid","channel","tag","time","text"}, text raw.
func AppendEnvelopeJSON(dst []byte, m *protocol.Message, channel string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, m.ID, 10)
	dst = append(dst, `,"mid":"`...)
	dst = append(dst, m.MID...)
	dst = append(dst, `","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","tag":"`...)
	dst = append(dst, m.Tag()...)
	dst = append(dst, `","time":"`...)
	dst = append(dst, m.HTTPTime()...)
	dst = append(dst, `","text":`...)
	dst = append(dst, m.Body...)
	return append(dst, '}')
}

// AppendEnvelope appends the text-mode envelope of m on channel:
// #!NGINXNMS!#{...}#!NGINXNME!#.
func AppendEnvelope(dst []byte, m *protocol.Message, channel string) []byte {
	dst = append(dst, protocol.EnvelopeStart...)
	dst = AppendEnvelopeJSON(dst, m, channel)
	return append(dst, protocol.EnvelopeEnd...)
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
	if u := protocol.ChannelUser(channel); u != "" {
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

// appendPushStream appends the envelope of m on channel in the message
// template the appliance configured in nginx-push-stream-module 0.4 for
// version 2:
//
//	#!NGINXNMS!#{"id":~id~,"channel":"~channel~","tag":"~tag~","time":"~time~","eventid":"~event-id~","text":~text~}#!NGINXNME!#
//
// with the message id as tag and an empty event id (the backend never sent
// one). Version 1 (module 0.3.4) had no channel and eventid; its clients
// parse the object as JSON and read id, tag, time and text only, so both
// versions get this one template.
func appendPushStream(dst []byte, m *protocol.Message, channel string) []byte {
	dst = append(dst, protocol.EnvelopeStart...)
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, m.ID, 10)
	dst = append(dst, `,"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","tag":"`...)
	dst = append(dst, m.MID...)
	dst = append(dst, `","time":"`...)
	dst = append(dst, m.HTTPTime()...)
	dst = append(dst, `","eventid":"","text":`...)
	dst = append(dst, m.Body...)
	dst = append(dst, '}')
	return append(dst, protocol.EnvelopeEnd...)
}
