package ws

import (
	"bytes"
	"sync"

	"golang.org/x/sys/unix"
)

// poller is the reactor: one epoll instance watching every plain TCP
// session for readability, level-triggered, read by one goroutine.
type poller struct {
	epfd int
	mu   sync.RWMutex
	byFD []*Session
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{epfd: fd}, nil
}

func (p *poller) add(s *Session) error {
	fd := int(s.sock.fd)
	p.mu.Lock()
	for len(p.byFD) <= fd {
		p.byFD = append(p.byFD, nil)
	}
	p.byFD[fd] = s
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: s.sock.fd}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.drop(s)
		return err
	}
	return nil
}

// remove must run before the session's socket is closed, so that a reused
// descriptor number never reaches the wrong session.
func (p *poller) remove(s *Session) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(s.sock.fd), nil)
	p.drop(s)
}

func (p *poller) drop(s *Session) {
	p.mu.Lock()
	if fd := int(s.sock.fd); fd < len(p.byFD) && p.byFD[fd] == s {
		p.byFD[fd] = nil
	}
	p.mu.Unlock()
}

func (p *poller) lookup(fd int32) *Session {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if int(fd) < len(p.byFD) {
		return p.byFD[fd]
	}
	return nil
}

func (p *poller) run(stop <-chan struct{}) {
	defer unix.Close(p.epfd)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	var r bytes.Reader
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, 1000)
		if err != nil && err != unix.EINTR {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if s := p.lookup(ev.Fd); s != nil {
				s.readable(buf, &r)
			}
		}
	}
}

// readable is called by the reactor when a session's socket has data.
func (sess *Session) readable(buf []byte, r *bytes.Reader) {
	n, rerr := sess.sock.read(buf)
	switch {
	case rerr == errSocketClosed || rerr == unix.EAGAIN:
		return
	case rerr != nil || n <= 0:
		sess.shut()
		return
	}
	sess.received(buf[:n], r)
}
