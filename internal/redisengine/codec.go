package redisengine

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// A stored message is the original server's JSON, field for field:
//
//	{"id":"<mid>","text":"<body>","expiry":<s>,"channels":["<id>",...],"dateCreated":<ms>}
//
// The same text is the pub/sub payload, so processes of the original server
// and pushpull processes on one Redis read each other's messages.
//
// pushpull adds, only when set, the publisher and the protocol-5 extras:
//
//	"sender":{"type":<1 client|2 backend>,"id":"<public id>"},
//	"userParams":{"<user id>":{...}},"dictionary":{...}
//
// Messages without them (the original's, or pushpull's before they were
// kept) read as backend messages without extras.

// encodeTail returns the stored JSON after the mid: the publish script
// writes `{"id":"` + mid + tail, since only the script knows the mid.
func encodeTail(m *protocol.Message, created time.Time) string {
	body, expiry, channels := m.Body, m.Expiry, m.Channels
	b := make([]byte, 0, len(body)+64+len(channels)*36)
	b = append(b, `","text":`...)
	b = appendJSONString(b, body)
	b = append(b, `,"expiry":`...)
	b = strconv.AppendUint(b, uint64(expiry), 10)
	b = append(b, `,"channels":[`...)
	for i, c := range channels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, []byte(c))
	}
	b = append(b, `],"dateCreated":`...)
	b = strconv.AppendInt(b, created.UnixMilli(), 10)
	if m.Sender.Type != protocol.SenderUnknown {
		b = append(b, `,"sender":{"type":`...)
		b = strconv.AppendUint(b, uint64(m.Sender.Type), 10)
		if m.Sender.ID != "" {
			b = append(b, `,"id":`...)
			b = appendJSONString(b, []byte(m.Sender.ID))
		}
		b = append(b, '}')
	}
	if len(m.UserParams) > 0 {
		up, _ := json.Marshal(m.UserParams) // raw JSON values checked at publish
		b = append(b, `,"userParams":`...)
		b = append(b, up...)
	}
	if protocol.IsJSONObject(m.Dictionary) {
		b = append(b, `,"dictionary":`...)
		b = append(b, m.Dictionary...)
	}
	return string(append(b, '}'))
}

// encode returns the whole stored JSON of m.
func encode(m *protocol.Message) string {
	return `{"id":"` + m.MID + encodeTail(m, m.Created)
}

func appendJSONString(dst, s []byte) []byte {
	q, _ := json.Marshal(string(s)) // a string always marshals
	return append(dst, q...)
}

type storedMessage struct {
	ID          string          `json:"id"`
	Text        json.RawMessage `json:"text"`
	Expiry      float64         `json:"expiry"`
	Channels    []string        `json:"channels"`
	DateCreated float64         `json:"dateCreated"`
	Sender      *struct {
		Type float64 `json:"type"`
		ID   string  `json:"id"`
	} `json:"sender"`
	UserParams map[string]json.RawMessage `json:"userParams"`
	Dictionary json.RawMessage            `json:"dictionary"`
}

var (
	errBadMID  = errors.New("stored message: id is not a message id")
	errBadText = errors.New("stored message: text is not JSON")
)

// decode parses a stored or published message. Its lifetime is recomputed
// from dateCreated and expiry with ttl, as the original kept no expiry
// time of its own. The body must be JSON text, as the envelopes embed it raw.
func decode(data []byte, ttl store.TTLs) (*protocol.Message, error) {
	var s storedMessage
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	if !protocol.ValidMID(s.ID) {
		return nil, errBadMID
	}
	body := []byte(s.Text)
	if len(body) > 0 && body[0] == '"' {
		var text string
		if err := json.Unmarshal(body, &text); err != nil {
			return nil, err
		}
		body = []byte(text)
	}
	if len(body) == 0 || !json.Valid(body) {
		return nil, errBadText
	}
	// Another server sharing the Redis (the original, or an older
	// pushpull) may have stored bytes that are not UTF-8: repaired here,
	// as the publish gate repairs what this server accepts, so that no
	// stored message can make clients fail their WebSocket.
	body = protocol.RepairUTF8(body)
	var expiry uint32
	if s.Expiry > 0 && s.Expiry <= math.MaxUint32 {
		expiry = uint32(s.Expiry)
	}
	created := time.Time{}
	if s.DateCreated > 0 && s.DateCreated < 1e15 {
		created = time.UnixMilli(int64(s.DateCreated))
	}
	_, id := protocol.SplitMID(s.ID)
	m := &protocol.Message{
		ID:       id,
		MID:      s.ID,
		Channels: s.Channels,
		Body:     body,
		Created:  created,
		Expiry:   expiry,
	}
	if !created.IsZero() {
		m.Expires = ttl.Expires(created, expiry)
	}
	if s.Sender != nil && (s.Sender.Type == 1 || s.Sender.Type == 2) {
		m.Sender = protocol.Sender{Type: protocol.SenderType(s.Sender.Type), ID: s.Sender.ID}
	}
	for u, p := range s.UserParams {
		if protocol.IsJSONObject(p) {
			if m.UserParams == nil {
				m.UserParams = make(map[string]json.RawMessage, len(s.UserParams))
			}
			m.UserParams[u] = protocol.RepairUTF8(p)
		}
	}
	if protocol.IsJSONObject(s.Dictionary) {
		m.Dictionary = protocol.RepairUTF8(s.Dictionary)
	}
	return m, nil
}
