package server

import (
	"slices"
	"sync"
	"sync/atomic"
)

// connLimit bounds the connections of a private channel on this process
// (limits.maxConnPerChannel), as the push server 2.x does: a connection
// that names a private channel with its public id ("<private>:<public>"),
// joining a channel that already has the limit's number of connections
// (of any kind: WebSocket or held long poll, with a public id or without),
// ends the channel's oldest connection. The count is this process's, as
// the original's is: behind a load balancer a channel may have the limit
// on each process.
type connLimit struct {
	max atomic.Int64 // 0: unlimited; a reload may change it

	mu sync.Mutex
	// Each channel's connections, oldest first. A channel mostly has one
	// (each user's own), so a slice costs least; it never holds more
	// than max.
	byChannel map[string][]*limitedConn
}

// limitedConn is a connection the limit counts. evict ends it (once:
// eviction and the connection's own end may race).
type limitedConn struct {
	in    []string // the channels it is counted on; emptied once it has left them
	evict func()
	once  sync.Once
}

// connEntry is one channel of a connection: its hub channel, and whether
// the connection names it with a public id.
type connEntry struct {
	channel string
	public  bool
}

func newConnLimit(max int) *connLimit {
	l := &connLimit{byChannel: make(map[string][]*limitedConn)}
	l.setMax(max)
	return l
}

// setMax changes the limit. A channel over a lowered one keeps its
// connections; each arrival with a public id ends its oldest, as always.
func (l *connLimit) setMax(max int) { l.max.Store(int64(max)) }

// limited reports whether there is a limit.
func (l *connLimit) limited() bool { return l.max.Load() > 0 }

// add counts a connection on its channels and ends the oldest connections
// its arrival puts over the limit; evict ends it in turn when a later one
// does. The caller must remove it when it ends. With no limit it returns
// nil, which remove accepts.
func (l *connLimit) add(entries []connEntry, evict func()) *limitedConn {
	limit := int(l.max.Load())
	if limit <= 0 || len(entries) == 0 {
		return nil
	}
	c := &limitedConn{in: make([]string, 0, len(entries)), evict: evict}
	var victims []*limitedConn
	l.mu.Lock()
	for _, e := range entries {
		if slices.Contains(c.in, e.channel) {
			continue // a channel named twice counts once
		}
		if conns := l.byChannel[e.channel]; e.public && len(conns) >= limit {
			old := conns[0]
			l.removeLocked(old)
			victims = append(victims, old)
		}
		l.byChannel[e.channel] = append(l.byChannel[e.channel], c)
		c.in = append(c.in, e.channel)
	}
	l.mu.Unlock()
	for _, v := range victims {
		v.once.Do(v.evict)
	}
	return c
}

// remove stops counting a connection that ended.
func (l *connLimit) remove(c *limitedConn) {
	if c == nil {
		return
	}
	l.mu.Lock()
	l.removeLocked(c)
	l.mu.Unlock()
}

func (l *connLimit) removeLocked(c *limitedConn) {
	for _, ch := range c.in {
		conns := l.byChannel[ch]
		if i := slices.Index(conns, c); i >= 0 {
			conns = slices.Delete(conns, i, i+1)
		}
		if len(conns) == 0 {
			delete(l.byChannel, ch)
		} else {
			l.byChannel[ch] = conns
		}
	}
	c.in = c.in[:0]
}

// count returns the connections counted on channel.
func (l *connLimit) count(channel string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byChannel[channel])
}
