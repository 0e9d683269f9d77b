package redisengine

import (
	"encoding/hex"

	"github.com/pushpull/pushpull/protocol"
)

// The push server 2.0's layout (storage.layout "2.0") keeps binary ids:
//
//	message:<13 bytes>                 protobuf OutgoingMessage (codec20.go), expires with the message
//	channel:messages:<16 bytes>        sorted set of 13-byte ids, score 0, of a private channel
//	pubchannel:messages:<16 bytes>     the same for a public channel
//	channel:online:<16 bytes>          "1" while the private channel has subscribers
//	pubchannel:online:<16 bytes>       the same for a public channel
//	server:messagecounter, server:startdate, stats, pushserver:<uid>   as in the 1.0 layout
//
// A message id in binary is its 26 digits read as hex (13 bytes), a
// channel id its 32 hex digits (16 bytes), so both sort as their text.
//
// pushpull's channels do not say whether an id is a private or a public
// one (a subscriber listens on both of its ids in one namespace), so a
// message is indexed, and a channel marked online, under both kinds; a
// client's publish, which only public channels can receive, under the
// public kind only. Reads look at both. Channels the original cannot name
// (anything but 32 lower-case hex digits: protocol-5 user and status
// channels) are kept under pushpull's own keys:
//
//	pushpull:channel:messages:<name>   sorted set of 13-byte ids
//	pushpull:online:<name>             the name, while it has subscribers

// hexID reports whether ch is a channel id the original keeps in binary:
// 32 lower-case hex digits.
func hexID(ch string) bool {
	if len(ch) != protocol.ChannelIDLen {
		return false
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// binID is a 32-hex-digit channel id, or a 26-digit message id, in binary.
func binID(s string) string {
	b, _ := hex.DecodeString(s) // callers pass hex digits only
	return string(b)
}

// binMIDLen is a message id's length in binary.
const binMIDLen = protocol.MIDLen / 2

// textMID is the message id of its binary form, "" if it is not one.
func textMID(bin string) string {
	if len(bin) != binMIDLen {
		return ""
	}
	mid := hex.EncodeToString([]byte(bin))
	if !protocol.ValidMID(mid) {
		return ""
	}
	return mid
}

// member is how mid is kept in channel indexes and message keys.
func (l layout) member(mid string) string {
	if l.v20 {
		return binID(mid)
	}
	return mid
}

// midOf reads a channel index member back: "" if it is no message id.
func (l layout) midOf(member string) string {
	if l.v20 {
		return textMID(member)
	}
	if protocol.ValidMID(member) {
		return member
	}
	return ""
}

// messageKey is the key of the message with id mid.
func (l layout) messageKey(mid string) string { return l.messagePrefix() + l.member(mid) }

// indexes are the sorted sets a message published to ch is indexed in;
// public only for a client's message. Reads pass public false: every
// kind.
func (l layout) indexes(ch string, publicOnly bool) []string {
	if !l.v20 {
		return []string{l.channel(ch)}
	}
	if !hexID(ch) {
		return []string{l.prefix + "pushpull:channel:messages:" + ch}
	}
	b := binID(ch)
	pub := l.prefix + "pubchannel:messages:" + b
	if publicOnly {
		return []string{pub}
	}
	return []string{l.prefix + "channel:messages:" + b, pub}
}

// onlineKey is one key that marks ch online, with the value it holds.
type onlineKey struct{ key, value string }

// onlines are the keys that mark ch online; it is online if any exists.
func (l layout) onlines(ch string) []onlineKey {
	if !l.v20 {
		// The value is the channel id, as the original's online route
		// reads it back.
		return []onlineKey{{l.online(ch), ch}}
	}
	if !hexID(ch) {
		return []onlineKey{{l.prefix + "pushpull:online:" + ch, ch}}
	}
	b := binID(ch)
	return []onlineKey{{l.prefix + "channel:online:" + b, "1"}, {l.prefix + "pubchannel:online:" + b, "1"}}
}
