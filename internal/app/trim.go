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
	trimSpacing  = 4 * time.Second // the least time between two releases
	trimChurn    = 4 << 20         // allocated since the last release before one is worth a collection
	trimQuiet    = 1 << 20         // allocated between two looks by a process at rest
)

// heapReading is what the trimmer looks at.
type heapReading struct {
	allocated uint64 // bytes allocated since the process started
	live      uint64 // the heap the last collection left live
}

// trimmer decides, at each look, whether to collect and release the free
// heap.
type trimmer struct {
	read      func() heapReading
	release   func() // debug.FreeOSMemory
	last      uint64 // allocated at the previous look
	atRelease uint64 // allocated at the last release
	done      time.Time
}

// look releases when a burst is over: since the last release more was
// allocated than trimChurn and than an eighth of the live heap (so a
// release costs at most eight times what the collector's own cycles
// would), less than trimQuiet since the previous look, and the last
// release was more than trimSpacing ago. A busy server is left to its
// collector.
func (t *trimmer) look(now time.Time) bool {
	r := t.read()
	quiet := r.allocated-t.last < trimQuiet
	t.last = r.allocated
	churn := r.allocated - t.atRelease
	if !quiet || churn < trimChurn || churn < r.live/8 || now.Sub(t.done) < trimSpacing {
		return false
	}
	t.release()
	t.atRelease, t.done = r.allocated, now
	return true
}

func readHeap() heapReading {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return heapReading{allocated: s[0].Value.Uint64(), live: s[1].Value.Uint64()}
}

// trimMemory runs the trimmer until ctx ends.
func trimMemory(ctx context.Context) {
	t := &trimmer{read: readHeap, release: debug.FreeOSMemory}
	t.last = t.read().allocated
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
