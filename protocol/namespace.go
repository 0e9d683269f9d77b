package protocol

import (
	"fmt"
	"strings"
)

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

// Namespace returns the clientId a hub channel, user or status name lives
// under: "" outside the shared mode. It names the installation whose one
// message counter orders the channel's messages.
func Namespace(ch string) string {
	if i := strings.Index(ch, NamespaceSep); i >= 0 {
		return ch[:i]
	}
	return ""
}

// ValidInstallationID reports why id cannot be an installation's Redis
// hash tag (storage.tags "installation"):
// Redis Cluster hashes a key by the text between its first '{' and the
// next '}', so a tag holds neither brace; it is also kept short and
// printable, as it is part of every key.
func ValidInstallationID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("installation id %q: 1 to 64 characters", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("installation id %q: only letters, digits and - _ . : make a hash tag (found %q)", id, c)
		}
	}
	return nil
}
