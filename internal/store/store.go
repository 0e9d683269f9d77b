// Package store keeps published messages for as long as their TTL allows, so
// that a client reconnecting with its last message id gets what it missed.
package store

import (
	"context"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// Store keeps message history. Implementations are safe for concurrent use.
type Store interface {
	// Save assigns m its ID, MID, Created and Expires, and keeps it for each
	// of its channels until it expires. Nothing is kept when Save fails.
	Save(ctx context.Context, m *protocol.Message) error
	// Reserve assigns m its ID, MID, Created and Expires without keeping it:
	// for control messages that must carry a resume position but must not
	// be replayed.
	Reserve(ctx context.Context, m *protocol.Message) error
	// Since returns the live messages of channels whose MID sorts after
	// after, oldest first, each message once.
	Since(ctx context.Context, channels []string, after string) ([]*protocol.Message, error)
	// Last returns the newest live MID among channels, or "".
	Last(ctx context.Context, channels []string) (string, error)
}

// TTLs are the lifetimes of what a store keeps.
type TTLs struct {
	Message time.Duration // a message is kept at most this long (messageTTL)
	Channel time.Duration // a channel's index lives this long after its first write (channelTTL)
	// Default is the life of a message published without an expiry: 0
	// means Message (the push server 1.0), Transient that it is delivered
	// to the clients connected and never stored (the original 2.0).
	Default time.Duration
}

// Transient as TTLs.Default: messages without an expiry are not stored.
const Transient time.Duration = -1

// DefaultTTLs are the original server's defaults: one day each.
var DefaultTTLs = TTLs{Message: 24 * time.Hour, Channel: 24 * time.Hour}

// Lifetime is how long a message published with expiry seconds is kept:
// min(expiry, Message), with expiry 0 meaning Default. A lifetime of 0
// means the message is transient.
func (t TTLs) Lifetime(expiry uint32) time.Duration {
	d := time.Duration(expiry) * time.Second
	if expiry == 0 {
		switch {
		case t.Default < 0:
			return 0
		case t.Default == 0:
			return t.Message
		}
		d = t.Default
	}
	return min(d, t.Message)
}

// Expires is when a message created at created with expiry seconds
// expires: zero (never, for delivery) when it is transient, which no
// store keeps.
func (t TTLs) Expires(created time.Time, expiry uint32) time.Time {
	d := t.Lifetime(expiry)
	if d <= 0 {
		return time.Time{}
	}
	return created.Add(d)
}
