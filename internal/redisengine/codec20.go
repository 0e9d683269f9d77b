package redisengine

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// The 2.0 layout's values are the push server 2.0's protobuf messages:
//
//	message:<id>  OutgoingMessage {1 id: bytes, 2 body: string, 3 expiry: uint32 (s),
//	              4 created: fixed32 (unix s), 5 sender: Sender {1 type, 2 id: bytes}}
//	pushserver:*  NotificationBatch {1 notifications: Notification {1 ipcMessages:
//	              IPCMessages {1 messages: IPCMessage {1 receivers: Receiver {1 id: bytes,
//	              2 isPrivate: bool}, 3 outgoingMessage: OutgoingMessage}}}}
//
// pushpull adds fields of its own to OutgoingMessage, which the original's
// decoder skips:
//
//	100 channels: repeated string   the channels published to, as pushpull names them
//	101 userParams: string          JSON object: user id -> params (protocol 5)
//	102 dictionary: string          JSON object (protocol 5)
//	103 createdMs: uint64           unix ms (created holds seconds)
//
// The original's stored messages name no channels: a message read from a
// channel index is taken as published to the channels it was found in.
const (
	f20ID        protowire.Number = 1
	f20Body      protowire.Number = 2
	f20Expiry    protowire.Number = 3
	f20Created   protowire.Number = 4
	f20Sender    protowire.Number = 5
	f20Channels  protowire.Number = 100
	f20UserParam protowire.Number = 101
	f20Dict      protowire.Number = 102
	f20CreatedMs protowire.Number = 103
)

// storedHead20 is what a stored 2.0 message starts with, before its 13
// id bytes: the tag and length of field 1. The publish script writes
// storedHead20 + id + tail, since only the script knows the id.
const storedHead20 = "\x0a\x0d"

// encodeTail20 returns the stored OutgoingMessage after its id. lifetime
// is how long it is kept (0: not stored), its expiry for the original.
func encodeTail20(m *protocol.Message, created time.Time, lifetime time.Duration) []byte {
	b := make([]byte, 0, len(m.Body)+32+len(m.Channels)*36)
	b = protowire.AppendTag(b, f20Body, protowire.BytesType)
	b = protowire.AppendBytes(b, m.Body)
	if s := (lifetime + time.Second - 1) / time.Second; s > 0 {
		b = protowire.AppendTag(b, f20Expiry, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(min(s, math.MaxUint32)))
	}
	b = protowire.AppendTag(b, f20Created, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, uint32(created.Unix()))
	if m.Sender.Type != protocol.SenderUnknown {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(m.Sender.Type))
		if hexID(m.Sender.ID) {
			sb = protowire.AppendTag(sb, 2, protowire.BytesType)
			sb = protowire.AppendString(sb, binID(m.Sender.ID))
		}
		b = protowire.AppendTag(b, f20Sender, protowire.BytesType)
		b = protowire.AppendBytes(b, sb)
	}
	for _, ch := range m.Channels {
		b = protowire.AppendTag(b, f20Channels, protowire.BytesType)
		b = protowire.AppendString(b, ch)
	}
	if len(m.UserParams) > 0 {
		up, _ := json.Marshal(m.UserParams) // raw JSON values checked at publish
		b = protowire.AppendTag(b, f20UserParam, protowire.BytesType)
		b = protowire.AppendBytes(b, up)
	}
	if protocol.IsJSONObject(m.Dictionary) {
		b = protowire.AppendTag(b, f20Dict, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Dictionary)
	}
	b = protowire.AppendTag(b, f20CreatedMs, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(max(created.UnixMilli(), 0)))
}

// encodeBatchHead20 returns the pub/sub NotificationBatch up to the
// OutgoingMessage of storedLen bytes that ends it: the lengths around it
// and the receivers, each 32-hex-digit channel as a private and a public
// receiver (a client's message: public only), so that processes of the
// original deliver it to whichever kind of id their subscribers have.
func encodeBatchHead20(m *protocol.Message, storedLen int) []byte {
	var ipc []byte
	client := m.Sender.Type == protocol.SenderClient
	for _, ch := range m.Channels {
		if !hexID(ch) {
			continue
		}
		id := binID(ch)
		if !client {
			ipc = appendReceiver(ipc, id, true)
		}
		ipc = appendReceiver(ipc, id, false)
	}
	ipc = protowire.AppendTag(ipc, 3, protowire.BytesType)
	ipc = protowire.AppendVarint(ipc, uint64(storedLen))
	l1 := len(ipc) + storedLen // IPCMessage
	l2 := 1 + protowire.SizeVarint(uint64(l1)) + l1
	l3 := 1 + protowire.SizeVarint(uint64(l2)) + l2
	b := make([]byte, 0, len(ipc)+16)
	for _, l := range []int{l3, l2, l1} {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(l))
	}
	return append(b, ipc...)
}

func appendReceiver(b []byte, id string, private bool) []byte {
	var r []byte
	r = protowire.AppendTag(r, 1, protowire.BytesType)
	r = protowire.AppendString(r, id)
	if private {
		r = protowire.AppendTag(r, 2, protowire.VarintType)
		r = protowire.AppendVarint(r, 1)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, r)
}

// encode20 returns the whole stored message of m, as the publish script
// writes it.
func encode20(m *protocol.Message, ttl store.TTLs) []byte {
	b := append([]byte(storedHead20), binID(m.MID)...)
	return append(b, encodeTail20(m, m.Created, ttl.Lifetime(m.Expiry))...)
}

// encodeBatch20 returns the pub/sub payload of m.
func encodeBatch20(m *protocol.Message, ttl store.TTLs) []byte {
	stored := encode20(m, ttl)
	return append(encodeBatchHead20(m, len(stored)), stored...)
}

var (
	errProto     = errors.New("stored message: malformed protobuf")
	errBinaryMID = errors.New("stored message: id is not a message id")
)

// field is one protobuf field: its number, wire type and value (the bytes
// of a length-delimited field, else v).
type field struct {
	num protowire.Number
	typ protowire.Type
	b   []byte
	v   uint64
}

// fields calls f with each field of b, in order, and stops at the first
// malformed one or the first error f returns.
func fields(b []byte, f func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		fl := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			fl.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			fl.v = uint64(v)
		case protowire.Fixed64Type:
			fl.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			fl.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if err := f(fl); err != nil {
			return err
		}
	}
	return nil
}

// want checks a known field's wire type.
func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return errProto
	}
	return nil
}

// decode20 parses a stored OutgoingMessage, the original's or pushpull's.
// Channels are those pushpull named, nil for the original's. As decode,
// the body must be JSON text and is repaired to UTF-8; if it is not, the
// error is errBadText and the message returned holds only the id.
func decode20(data []byte, ttl store.TTLs) (*protocol.Message, error) {
	m := &protocol.Message{}
	var body []byte
	var created, createdMs uint64
	var userParams, dict []byte
	err := fields(data, func(f field) error {
		switch f.num {
		case f20ID:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			m.MID = textMID(string(f.b))
			if m.MID == "" {
				return errBinaryMID
			}
		case f20Body:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			body = f.b
		case f20Expiry:
			if err := f.want(protowire.VarintType); err != nil {
				return err
			}
			m.Expiry = uint32(min(f.v, math.MaxUint32))
		case f20Created:
			if err := f.want(protowire.Fixed32Type); err != nil {
				return err
			}
			created = f.v
		case f20Sender:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			s, err := decodeSender(f.b)
			if err != nil {
				return err
			}
			m.Sender = s
		case f20Channels:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			m.Channels = append(m.Channels, string(f.b))
		case f20UserParam:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			userParams = f.b
		case f20Dict:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			dict = f.b
		case f20CreatedMs:
			if err := f.want(protowire.VarintType); err != nil {
				return err
			}
			createdMs = f.v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if m.MID == "" {
		return nil, errBinaryMID
	}
	_, m.ID = protocol.SplitMID(m.MID)
	if len(body) == 0 || !json.Valid(body) {
		return &protocol.Message{ID: m.ID, MID: m.MID}, errBadText // the id only, for decodeBatch20
	}
	m.Body = protocol.RepairUTF8(append([]byte(nil), body...))
	switch {
	case createdMs > 0 && createdMs < 1e15:
		m.Created = time.UnixMilli(int64(createdMs))
	case created > 0:
		m.Created = time.Unix(int64(created), 0)
	}
	if !m.Created.IsZero() {
		m.Expires = ttl.Expires(m.Created, m.Expiry)
	}
	if len(userParams) > 0 {
		var up map[string]json.RawMessage
		if json.Unmarshal(userParams, &up) == nil {
			for u, p := range up {
				if protocol.IsJSONObject(p) {
					if m.UserParams == nil {
						m.UserParams = make(map[string]json.RawMessage, len(up))
					}
					m.UserParams[u] = protocol.RepairUTF8(p)
				}
			}
		}
	}
	if json.Valid(dict) && protocol.IsJSONObject(dict) {
		m.Dictionary = protocol.RepairUTF8(append([]byte(nil), dict...))
	}
	return m, nil
}

func decodeSender(b []byte) (protocol.Sender, error) {
	var s protocol.Sender
	err := fields(b, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.VarintType); err != nil {
				return err
			}
			if f.v == uint64(protocol.SenderClient) || f.v == uint64(protocol.SenderBackend) {
				s.Type = protocol.SenderType(f.v)
			}
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			if len(f.b) == protocol.ChannelIDLen/2 {
				s.ID = hex.EncodeToString(f.b)
			}
		}
		return nil
	})
	if s.Type == protocol.SenderUnknown {
		s.ID = ""
	}
	return s, err
}

// decodeBatch20 parses a pub/sub NotificationBatch into the messages it
// carries, each with its channels: those pushpull named, else the
// receivers' 16-byte ids in hex. Other notifications (licenses) are left
// out; a message whose body is not JSON comes with its id only.
func decodeBatch20(data []byte, ttl store.TTLs) ([]*protocol.Message, error) {
	var out []*protocol.Message
	ipcMessage := func(b []byte) error {
		var stored []byte
		var receivers []string
		err := fields(b, func(f field) error {
			switch f.num {
			case 1:
				if err := f.want(protowire.BytesType); err != nil {
					return err
				}
				return fields(f.b, func(r field) error {
					if r.num == 1 {
						if err := r.want(protowire.BytesType); err != nil {
							return err
						}
						if len(r.b) == protocol.ChannelIDLen/2 {
							receivers = append(receivers, hex.EncodeToString(r.b))
						}
					}
					return nil
				})
			case 3:
				if err := f.want(protowire.BytesType); err != nil {
					return err
				}
				stored = f.b
			}
			return nil
		})
		if err != nil || stored == nil {
			return err
		}
		m, err := decode20(stored, ttl)
		if errors.Is(err, errBadText) {
			// Not deliverable (clients need JSON), but its id tells the
			// subscriber that nothing before it is missing: kept, with
			// no body and no channel.
			out = append(out, m)
			return nil
		}
		if err != nil {
			return err
		}
		if m.Channels == nil {
			m.Channels = protocol.UniqueIDs(receivers)
		}
		// Even with no channel it is kept: its id tells the subscriber
		// that no message before it is missing.
		out = append(out, m)
		return nil
	}
	// nested calls g with the bytes of each field 1 of b.
	nested := func(b []byte, g func([]byte) error) error {
		return fields(b, func(f field) error {
			if f.num != 1 {
				return nil
			}
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			return g(f.b)
		})
	}
	err := nested(data, func(notification []byte) error {
		return nested(notification, func(ipcMessages []byte) error {
			return nested(ipcMessages, ipcMessage)
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decode parses a stored message of the layout.
func (l layout) decode(data []byte, ttl store.TTLs) (*protocol.Message, error) {
	if l.v20 {
		return decode20(data, ttl)
	}
	return decode(data, ttl)
}

// decodePublished parses a pub/sub payload of the layout.
func (l layout) decodePublished(data []byte, ttl store.TTLs) ([]*protocol.Message, error) {
	if l.v20 {
		return decodeBatch20(data, ttl)
	}
	m, err := decode(data, ttl)
	if err != nil {
		return nil, err
	}
	return []*protocol.Message{m}, nil
}
