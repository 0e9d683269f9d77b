package protocol

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"
)

// MIDLen is the length of a message id: the 10-digit server start time
// followed by the 16-digit message counter.
const MIDLen = 26

// Message is one published command as the server keeps it.
type Message struct {
	ID       uint64   // the counter part of MID
	MID      string   // 26 digits; string order is creation order
	Channels []string // the channel ids it was published to
	Body     []byte   // JSON text, safe to embed raw in an envelope
	Created  time.Time
	Expiry   uint32 // lifetime in seconds as published; 0 means the store's default
	Expires  time.Time

	// Sender is who published the message (protocols 4 and 5); the zero
	// value, for messages stored before senders were kept, reads as the
	// backend.
	Sender Sender
	// UserParams holds, per user id, the params a protocol-5 receiver of
	// that user gets merged into the body's params; Dictionary is merged
	// for every receiver. Both are JSON objects, nil when not published.
	UserParams map[string]json.RawMessage
	Dictionary json.RawMessage
}

// SenderType is who published a message, with the values of the
// protocol-4 SenderType enum.
type SenderType uint8

// Sender types.
const (
	SenderUnknown SenderType = 0
	SenderClient  SenderType = 1
	SenderBackend SenderType = 2
)

// Sender is the publisher of a message.
type Sender struct {
	Type SenderType
	ID   string // for clients: their public channel id (hex)
}

// EffectiveSender is the sender clients are told: a message without one
// came from the backend.
func (m *Message) EffectiveSender() Sender {
	if m.Sender.Type == SenderUnknown {
		return Sender{Type: SenderBackend}
	}
	return m.Sender
}

// FormatMID builds a message id from the server start time and a counter.
func FormatMID(start int64, id uint64) string {
	var b [MIDLen]byte
	return string(AppendMID(b[:0], start, id))
}

// AppendMID appends the message id of start and id to dst.
func AppendMID(dst []byte, start int64, id uint64) []byte {
	dst = appendPadded(dst, uint64(start), 10)
	return appendPadded(dst, id, 16)
}

func appendPadded(dst []byte, v uint64, width int) []byte {
	var b [20]byte
	s := strconv.AppendUint(b[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// ValidMID reports whether s is a message id: exactly 26 digits. Clients
// send other values (empty, "null", hex ids of other versions); those are
// treated as absent.
func ValidMID(s string) bool {
	if len(s) != MIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Tag is the version 1-3 "tag" of a message: the last three digits of its
// creation time in milliseconds.
func (m *Message) Tag() string {
	return strconv.FormatInt(m.Created.UnixMilli()%1000, 10)
}

// HTTPTime is the version 1-3 "time" of a message, as an HTTP date.
func (m *Message) HTTPTime() string {
	sec := m.Created.Unix()
	if c := httpTimes.Load(); c != nil && c.sec == sec {
		return c.text
	}
	text := m.Created.UTC().Format(time.RFC1123[:len(time.RFC1123)-3] + "GMT")
	httpTimes.Store(&httpTime{sec, text})
	return text
}

// httpTime is the last second HTTPTime formatted: the messages of one
// second share it.
type httpTime struct {
	sec  int64
	text string
}

var httpTimes atomic.Pointer[httpTime]

// Expired reports whether m is past its lifetime at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// HasChannel reports whether m was published to channel id.
func (m *Message) HasChannel(id string) bool {
	for _, c := range m.Channels {
		if c == id {
			return true
		}
	}
	return false
}

// SplitMID returns the start time and counter of a valid message id.
func SplitMID(mid string) (start int64, id uint64) {
	st, _ := strconv.ParseInt(mid[:10], 10, 64)
	id, _ = strconv.ParseUint(mid[10:], 10, 64)
	return st, id
}

// IsJSONObject reports whether JSON text b is an object: its first byte
// after white space is '{'. It does not validate the rest.
func IsJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}
