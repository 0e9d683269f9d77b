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

	// The first encoding made, the only one in most fan-outs: written
	// once under mu, before ready is set, and read without it after.
	ready    atomic.Bool
	firstKey Key
	firstVal []byte

	mu   sync.Mutex
	keys []Key // the encodings after the first
	vals [][]byte
}

// NewPrepared wraps m.
func NewPrepared(m *protocol.Message) *Prepared { return &Prepared{Msg: m} }

// Encoded returns the bytes for k, calling encode only the first time.
// The result is shared: callers must not modify it.
func (p *Prepared) Encoded(k Key, encode func(m *protocol.Message, channel string) []byte) []byte {
	if p.ready.Load() && p.firstKey == k {
		return p.firstVal
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready.Load() {
		p.firstKey, p.firstVal = k, encode(p.Msg, k.Channel)
		p.ready.Store(true)
		return p.firstVal
	}
	if p.firstKey == k {
		return p.firstVal
	}
	for i := range p.keys {
		if p.keys[i] == k {
			return p.vals[i]
		}
	}
	b := encode(p.Msg, k.Channel)
	p.keys = append(p.keys, k)
	p.vals = append(p.vals, b)
	return b
}
