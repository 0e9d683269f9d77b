package server

import (
	"context"
	"errors"
	"sync"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/protocol"
)

// errDraining refuses publishes that arrive during a graceful stop.
var errDraining = errors.New("server is shutting down")

// drainEngine is the engine every publish of this process goes through,
// the backend API's included. It makes each body safe to embed in an
// envelope (protocol.SanitizeBody), and every JSON it carries UTF-8, once,
// whichever route it came by.
// It counts the publishes under way without holding a lock through them;
// a graceful stop refuses new ones and waits for those under way, so every
// publish answered 200 is queued to the subscribers before they are told
// to reconnect.
type drainEngine struct {
	engine.Engine
	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup // publishes admitted before draining began
}

// Immediate implements engine.Immediate for the engine it wraps.
func (d *drainEngine) Immediate() bool {
	i, ok := d.Engine.(engine.Immediate)
	return ok && i.Immediate()
}

// Publish implements engine.Engine.
func (d *drainEngine) Publish(ctx context.Context, m *protocol.Message) error {
	d.mu.Lock()
	if d.draining {
		d.mu.Unlock()
		return errDraining
	}
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()
	m.Body = protocol.SanitizeBody(m.Body)
	// The protocol-5 extras go into JSON-RPC text frames too.
	m.Dictionary = protocol.RepairUTF8(m.Dictionary)
	for u, p := range m.UserParams {
		m.UserParams[u] = protocol.RepairUTF8(p)
	}
	return d.Engine.Publish(ctx, m)
}

// drain refuses publishes from now on and waits for those under way.
func (d *drainEngine) drain() {
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	d.inflight.Wait()
}
