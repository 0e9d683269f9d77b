package hub

import (
	"sync"
	"sync/atomic"

	"github.com/pushpull/pushpull/protocol"
)

// Key names one encoding of a message: a wire format (defined by the
// transport that uses it) and the channel the envelope names.
type Key struct {
	Format  int
	Channel string
}

// Prepared is a message on its way to subscribers. It caches each encoding
// the first time a subscriber asks for it, so a fan-out to any number of
// connections encodes once per format and channel.
type Prepared struct {
	Msg *protocol.Message

	first atomic.Pointer[encoding] // the first encoding made: the only one in most fan-outs

	mu   sync.Mutex
	keys []Key
	vals [][]byte
}

type encoding struct {
	key Key
	val []byte
}

// NewPrepared wraps m.
func NewPrepared(m *protocol.Message) *Prepared { return &Prepared{Msg: m} }

// Encoded returns the bytes for k, calling encode only the first time.
// The result is shared: callers must not modify it.
func (p *Prepared) Encoded(k Key, encode func(m *protocol.Message, channel string) []byte) []byte {
	if e := p.first.Load(); e != nil && e.key == k {
		return e.val
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.keys {
		if p.keys[i] == k {
			return p.vals[i]
		}
	}
	b := encode(p.Msg, k.Channel)
	p.keys = append(p.keys, k)
	p.vals = append(p.vals, b)
	if len(p.keys) == 1 {
		p.first.Store(&encoding{k, b})
	}
	return b
}
