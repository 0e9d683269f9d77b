package app

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Returning memory after bursts. A storm of connections (every client
// reconnecting after a restart) leaves the heap with pages its handshakes
// used and freed. The runtime gives them back to the system only after
// its next collection, which an idle server runs every two minutes, and
// then slowly: until then they count in the process's resident memory,
// about twice what the connections themselves hold. Once the burst is
// over, the trimmer hands them back at once.

const (
	trimInterval = 2 * time.Second // how often the trimmer looks
	trimSpacing  = time.Minute     // the least time between two releases
	trimChurn    = 8 << 20         // allocated since the last release before one is worth a collection
	trimQuiet    = 1 << 20         // allocated between two looks by a process at rest
)

// trimmer decides, at each look, whether to collect and release the free
// heap, from the bytes the process allocated since it started.
type trimmer struct {
	allocated func() uint64
	release   func() // debug.FreeOSMemory
	last      uint64 // allocated at the previous look
	atRelease uint64 // allocated at the last release
	done      time.Time
}

// look releases when a burst is over: much was allocated since the last
// release (at least trimChurn), little since the previous look (less than
// trimQuiet), and the last release was more than trimSpacing ago. A busy
// server is left to its collector.
func (t *trimmer) look(now time.Time) bool {
	a := t.allocated()
	quiet := a-t.last < trimQuiet
	t.last = a
	if !quiet || a-t.atRelease < trimChurn || now.Sub(t.done) < trimSpacing {
		return false
	}
	t.release()
	t.atRelease, t.done = a, now
	return true
}

func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// trimMemory runs the trimmer until ctx ends.
func trimMemory(ctx context.Context) {
	t := &trimmer{allocated: allocatedBytes, release: debug.FreeOSMemory}
	t.last = t.allocated()
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.look(now)
		}
	}
}
