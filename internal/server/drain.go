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
// envelope (protocol.SanitizeBody), once, whichever route it came by.
// Publishes hold mu for reading while they store and broadcast; a
// graceful stop takes it for writing, so every publish answered 200 is
// queued to the subscribers before they are told to reconnect, and later
// ones are refused.
type drainEngine struct {
	engine.Engine
	mu       sync.RWMutex
	draining bool
}

// Publish implements engine.Engine.
func (d *drainEngine) Publish(ctx context.Context, m *protocol.Message) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.draining {
		return errDraining
	}
	m.Body = protocol.SanitizeBody(m.Body)
	return d.Engine.Publish(ctx, m)
}

// drain waits for the publishes under way and refuses the rest.
func (d *drainEngine) drain() {
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
}
