package pb

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// Outgoing is a message as a binary-mode subscriber receives it.
type Outgoing struct {
	ID         []byte // the message id, hex-decoded
	Body       []byte // JSON text as published
	Expiry     uint32
	Created    uint32 // unix seconds
	SenderType SenderType
	SenderID   []byte // the sender's public channel id, hex-decoded; nil for none
}

// AppendResponseBatch appends a serialized ResponseBatch holding one
// Response with the messages, byte-identical to what proto.Marshal makes of
// the equivalent generated structs. Written by hand because it runs once
// per published message and format: the generated path allocates the
// whole tree first.
func AppendResponseBatch(dst []byte, msgs ...Outgoing) []byte {
	inner := 0
	for i := range msgs {
		n := msgs[i].size()
		inner += protowire.SizeTag(1) + protowire.SizeBytes(n)
	}
	resp := protowire.SizeTag(1) + protowire.SizeBytes(inner) // Response.outgoingMessages
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)    // ResponseBatch.responses
	dst = protowire.AppendVarint(dst, uint64(resp))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType) // Response.outgoingMessages
	dst = protowire.AppendVarint(dst, uint64(inner))
	for i := range msgs {
		m := &msgs[i]
		dst = protowire.AppendTag(dst, 1, protowire.BytesType) // OutgoingMessagesResponse.messages
		dst = protowire.AppendVarint(dst, uint64(m.size()))
		dst = m.append(dst)
	}
	return dst
}

func (m *Outgoing) senderSize() int {
	n := protowire.SizeTag(1) + protowire.SizeVarint(uint64(m.SenderType))
	if m.SenderID != nil {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(m.SenderID))
	}
	return n
}

func (m *Outgoing) size() int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(m.ID)) +
		protowire.SizeTag(2) + protowire.SizeBytes(len(m.Body)) +
		protowire.SizeTag(3) + protowire.SizeVarint(uint64(m.Expiry)) +
		protowire.SizeTag(4) + protowire.SizeFixed32() +
		protowire.SizeTag(5) + protowire.SizeBytes(m.senderSize())
}

func (m *Outgoing) append(dst []byte) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendBytes(dst, m.ID)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendBytes(dst, m.Body)
	dst = protowire.AppendTag(dst, 3, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(m.Expiry))
	dst = protowire.AppendTag(dst, 4, protowire.Fixed32Type)
	dst = protowire.AppendFixed32(dst, m.Created)
	dst = protowire.AppendTag(dst, 5, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(m.senderSize()))
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(m.SenderType))
	if m.SenderID != nil {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendBytes(dst, m.SenderID)
	}
	return dst
}
