package server

import (
	"container/list"
	"sync"
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
	max int // 0: unlimited

	mu        sync.Mutex
	byChannel map[string]*list.List // of *limitedConn, oldest first
}

// limitedConn is a connection the limit counts. evict ends it (once:
// eviction and the connection's own end may race).
type limitedConn struct {
	in    []membership
	evict func()
	once  sync.Once
}

// membership is a connection's place in one channel's list; el is nil
// once it has left it.
type membership struct {
	channel string
	el      *list.Element
}

// connEntry is one channel of a connection: its hub channel, and whether
// the connection names it with a public id.
type connEntry struct {
	channel string
	public  bool
}

func newConnLimit(max int) *connLimit {
	return &connLimit{max: max, byChannel: make(map[string]*list.List)}
}

// add counts a connection on its channels and ends the oldest connections
// its arrival puts over the limit; evict ends it in turn when a later one
// does. The caller must remove it when it ends. With no limit it returns
// nil, which remove accepts.
func (l *connLimit) add(entries []connEntry, evict func()) *limitedConn {
	if l.max <= 0 || len(entries) == 0 {
		return nil
	}
	c := &limitedConn{in: make([]membership, 0, len(entries)), evict: evict}
	var victims []*limitedConn
	l.mu.Lock()
	for _, e := range entries {
		if c.member(e.channel) {
			continue // a channel named twice counts once
		}
		if conns := l.byChannel[e.channel]; e.public && conns != nil && conns.Len() >= l.max {
			old := conns.Front().Value.(*limitedConn)
			l.removeLocked(old)
			victims = append(victims, old)
		}
		conns := l.byChannel[e.channel] // the eviction may have emptied and dropped it
		if conns == nil {
			conns = list.New()
			l.byChannel[e.channel] = conns
		}
		c.in = append(c.in, membership{channel: e.channel, el: conns.PushBack(c)})
	}
	l.mu.Unlock()
	for _, v := range victims {
		v.once.Do(v.evict)
	}
	return c
}

func (c *limitedConn) member(channel string) bool {
	for _, m := range c.in {
		if m.channel == channel {
			return true
		}
	}
	return false
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
	for i := range c.in {
		m := &c.in[i]
		if m.el == nil {
			continue
		}
		conns := l.byChannel[m.channel]
		conns.Remove(m.el)
		m.el = nil
		if conns.Len() == 0 {
			delete(l.byChannel, m.channel)
		}
	}
}

// count returns the connections counted on channel.
func (l *connLimit) count(channel string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if conns := l.byChannel[channel]; conns != nil {
		return conns.Len()
	}
	return 0
}
