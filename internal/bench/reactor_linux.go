package bench

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reactor reads every subscriber socket from a few goroutines blocked in
// epoll_wait, one per CPU, each owning a share of the sockets. Against a
// goroutine per connection it saves, per received frame, a read that
// returns EAGAIN and a goroutine park and wake-up: the bench shares the
// cores with the server it measures, so what it spends is taken from it.
type reactor struct {
	s        *Swarm
	epfds    []int
	conns    []atomic.Pointer[conn] // by conn index; nil once ended
	stopping atomic.Bool
	wg       sync.WaitGroup
}

func newReactor(s *Swarm) *reactor {
	r := &reactor{s: s, conns: make([]atomic.Pointer[conn], len(s.conns))}
	for range runtime.GOMAXPROCS(0) {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			r.stop()
			return nil
		}
		r.epfds = append(r.epfds, fd)
	}
	for _, fd := range r.epfds {
		r.wg.Add(1)
		go r.run(fd)
	}
	return r
}

// add takes over c's socket. It reports false, leaving c as it was, when
// the socket cannot be had; the caller then reads it with a goroutine.
func (r *reactor) add(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if cerr := rc.Control(func(f uintptr) { fd, err = unix.Dup(int(f)) }); cerr != nil || err != nil {
		return false
	}
	// The duplicate shares the socket; closing the net.Conn takes it out
	// of the runtime's poller, which would otherwise be woken for it too.
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return false
	}
	if c.br != nil && c.br.Buffered() > 0 {
		// The handshake read past the response: those bytes begin the
		// first frames.
		b, _ := c.br.Peek(c.br.Buffered())
		c.in = append([]byte(nil), b...)
	}
	c.br = nil
	c.nc.Close()
	c.nc, c.fd = nil, fd
	if len(c.in) > 0 {
		if err := r.feed(c, nil); err != nil {
			unix.Close(fd)
			r.s.ended(c, err)
			return true
		}
	}
	// Published after the last write to c here: the reader that finds c
	// through this pointer sees all of it.
	r.conns[c.idx].Store(c)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.idx)}
	if err := unix.EpollCtl(r.epfds[c.idx%len(r.epfds)], unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.end(c, err)
	}
	return true
}

func (r *reactor) run(epfd int) {
	defer r.wg.Done()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for !r.stopping.Load() {
		// The timeout lets stop end the loop without another wake-up
		// mechanism.
		n, err := unix.EpollWait(epfd, events, 50)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if c := r.conns[ev.Fd].Load(); c != nil {
				r.readable(c, buf)
			}
		}
	}
}

// readable reads what c's socket holds. Level-triggered: what a short
// read leaves is reported again.
func (r *reactor) readable(c *conn, buf []byte) {
	for {
		n, err := unix.Read(c.fd, buf)
		switch {
		case n > 0:
			if err := r.feed(c, buf[:n]); err != nil {
				r.end(c, err)
				return
			}
			if n < len(buf) {
				return
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default:
			if err == nil {
				err = io.EOF
			}
			r.end(c, err)
			return
		}
	}
}

// feed handles the complete frames in c's carried-over bytes followed by
// data, and keeps a trailing partial frame for the next read.
func (r *reactor) feed(c *conn, data []byte) error {
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	off := 0
	for off < len(data) {
		h, hs, err := parseFrameHeader(data[off:])
		if err == errIncomplete {
			break
		}
		if err != nil {
			return err
		}
		if h.Length > maxFrame {
			return errFrameSize
		}
		end := off + hs + int(h.Length)
		if end > len(data) {
			break
		}
		reply, err := r.s.handle(c, h, data[off+hs:end])
		if reply != nil {
			if werr := writeAll(c.fd, reply); err == nil {
				err = werr
			}
		}
		if err != nil {
			return err
		}
		off = end
	}
	c.in = append(c.in[:0], data[off:]...)
	if len(c.in) == 0 && cap(c.in) > 4096 {
		c.in = nil // an idle connection keeps no large buffer
	}
	return nil
}

// writeAll writes a control frame. They are a few bytes, so a full socket
// buffer only means a short wait.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			time.Sleep(time.Millisecond)
		case err != nil:
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}

// end closes c's socket and records why.
func (r *reactor) end(c *conn, err error) {
	if !r.conns[c.idx].CompareAndSwap(c, nil) {
		return
	}
	unix.EpollCtl(r.epfds[c.idx%len(r.epfds)], unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	r.s.ended(c, err)
}

// stop ends the readers and closes every socket they held.
func (r *reactor) stop() {
	r.stopping.Store(true)
	r.wg.Wait()
	for i := range r.conns {
		if c := r.conns[i].Swap(nil); c != nil {
			unix.Close(c.fd)
		}
	}
	for _, fd := range r.epfds {
		unix.Close(fd)
	}
}
