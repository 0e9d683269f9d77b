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

// encodeTail returns the stored JSON after the mid: the publish script
// writes `{"id":"` + mid + tail, since only the script knows the mid.
func encodeTail(body []byte, expiry uint32, channels []string, created time.Time) string {
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
	return string(append(b, '}'))
}

// encode returns the whole stored JSON of m.
func encode(m *protocol.Message) string {
	return `{"id":"` + m.MID + encodeTail(m.Body, m.Expiry, m.Channels, m.Created)
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
		m.Expires = created.Add(ttl.Lifetime(expiry))
	}
	return m, nil
}
