// Package wedge is a TCP proxy to Redis that can make the pub/sub
// connections through it go silent: they stay open and answer pings, but
// the published messages stop coming, the failure a broker's health checks
// do not see. The chaos scenario and the Redis engine's tests put it
// between a process and its Redis.
package wedge

import (
	"bytes"
	"net"
	"sync"
)

// Proxy forwards each connection it accepts to one target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]bool // both sides of every open connection
	subbed  map[net.Conn]bool // client side of connections that sent SUBSCRIBE
	stalled map[net.Conn]bool
	closed  bool
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}, subbed: map[net.Conn]bool{}, stalled: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p, nil
}

// Addr is the address to connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Wedge makes every connection that has subscribed so far stop passing
// published messages on; connections made later are not affected.
func (p *Proxy) Wedge() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.subbed {
		p.stalled[c] = true
	}
}

// Close stops accepting and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	return err
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) forget(c, up net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	delete(p.subbed, c)
	delete(p.stalled, c)
	p.mu.Unlock()
	c.Close()
	up.Close()
}

func (p *Proxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	defer p.forget(c, up)
	go func() {
		defer p.forget(c, up)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("SUBSCRIBE")) {
					p.mu.Lock()
					p.subbed[c] = true
					p.mu.Unlock()
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		p.mu.Lock()
		stalled := p.stalled[c]
		p.mu.Unlock()
		if n > 0 && !(stalled && bytes.Contains(buf[:n], []byte("message\r\n"))) {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
