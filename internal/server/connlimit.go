package server

import "sync"

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
	byChannel map[string]*connRing
}

// connRing is one channel's connections, oldest first: a doubly linked
// list through the connections' memberships.
type connRing struct {
	head, tail *membership
	n          int
}

// membership is a connection's place in one channel's list.
type membership struct {
	channel    string
	ring       *connRing
	prev, next *membership
	owner      *limitedConn
}

// limitedConn is a connection the limit counts. evict ends it (once:
// eviction and the connection's own end may race).
type limitedConn struct {
	in    []membership
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
	return &connLimit{max: max, byChannel: make(map[string]*connRing)}
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
		r := l.byChannel[e.channel]
		if r == nil {
			r = &connRing{}
			l.byChannel[e.channel] = r
		}
		if e.public && r.n >= l.max {
			old := r.head.owner
			l.removeLocked(old)
			victims = append(victims, old)
		}
		c.in = append(c.in, membership{channel: e.channel, owner: c})
		r.push(&c.in[len(c.in)-1])
	}
	l.mu.Unlock()
	for _, v := range victims {
		v.once.Do(v.evict)
	}
	return c
}

func (c *limitedConn) member(channel string) bool {
	for i := range c.in {
		if c.in[i].channel == channel {
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
		if m.ring == nil {
			continue
		}
		r := m.ring
		r.unlink(m)
		if r.n == 0 {
			delete(l.byChannel, m.channel)
		}
	}
}

// count returns the connections counted on channel.
func (l *connLimit) count(channel string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.byChannel[channel]; r != nil {
		return r.n
	}
	return 0
}

func (r *connRing) push(m *membership) {
	m.ring, m.prev = r, r.tail
	if r.tail != nil {
		r.tail.next = m
	} else {
		r.head = m
	}
	r.tail = m
	r.n++
}

func (r *connRing) unlink(m *membership) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		r.head = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		r.tail = m.prev
	}
	m.prev, m.next, m.ring = nil, nil, nil
	r.n--
}
