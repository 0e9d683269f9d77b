package protocol

import "strings"

// Hub and store channel names. In the shared ("cloud") mode the channels,
// users and status subscriptions of each client live under its own
// namespace, "<clientId>|<id>", so the same id under two clientIds names
// two channels; clients never see the prefix. A protocol-5 user's
// connections also join the channel "user:<id>", and followers of the
// user's status "status:<id>".

// NamespaceSep separates a clientId from the id it namespaces; it occurs
// in neither.
const NamespaceSep = "|"

// BareChannel strips a clientId namespace from a hub channel name: the id
// the client knows.
func BareChannel(ch string) string {
	if i := strings.LastIndex(ch, NamespaceSep); i >= 0 {
		return ch[i+len(NamespaceSep):]
	}
	return ch
}

// ChannelUser returns the user id of a user channel, or "".
func ChannelUser(ch string) string {
	u, ok := strings.CutPrefix(BareChannel(ch), "user:")
	if !ok {
		return ""
	}
	return u
}

// FirstChannel is the channel an envelope of m names for a subscriber of
// channels: the first of them that m was published to.
func FirstChannel(m *Message, channels []string) string {
	for _, c := range m.Channels {
		for _, mine := range channels {
			if c == mine {
				return c
			}
		}
	}
	if len(channels) > 0 {
		return channels[0]
	}
	return ""
}
