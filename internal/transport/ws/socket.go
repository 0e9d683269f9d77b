package ws

import (
	"errors"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// A session the reactor drives owns its socket's descriptor outright: the
// net.Conn the handshake came on is closed once its descriptor is
// duplicated, so an idle connection holds neither the runtime's poll
// descriptor nor net's wrappers and addresses. Reads (the reactor) and
// non-blocking writes (flushes) use the descriptor directly; a write that
// must wait for a peer's full socket gets a net.Conn made for it then.

// errSocketClosed is what an I/O call on a torn-down session's socket gets.
var errSocketClosed = errors.New("ws: socket closed")

// socket is a session's own descriptor. mu is held around every system
// call on fd and to close it, so a descriptor number the kernel reuses
// never reaches the old session's calls. None of the calls blocks, and
// only the reactor's read and one flush contend for it.
type socket struct {
	mu     sync.Mutex
	fd     int32
	owned  bool // false: the session has no descriptor of its own (TLS, or no reactor)
	closed bool
}

// detach takes conn's descriptor for the session and closes conn. On
// failure conn is left as it was.
func detach(conn *net.TCPConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	// The duplicate shares the open file, which stays non-blocking;
	// closing conn closes only its own descriptor, not the connection.
	conn.Close()
	return fd, nil
}

// read reads what the socket has.
func (k *socket) read(buf []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return 0, errSocketClosed
	}
	for {
		n, err := unix.Read(int(k.fd), buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// writev writes as much of bufs as the socket takes now.
func (k *socket) writev(bufs [][]byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return 0, errSocketClosed
	}
	return unix.Writev(int(k.fd), bufs)
}

// conn returns a net.Conn of its own on the socket, for writes that wait
// with a deadline.
func (k *socket) conn() (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errSocketClosed
	}
	fd, err := unix.FcntlInt(uintptr(k.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "websocket")
	defer f.Close()
	return net.FileConn(f) // a duplicate of f's descriptor
}

// close closes the descriptor, waiting for calls in progress (none of
// which block). The session's net.Conn, if one was made, is closed by the
// caller first, which ends a write waiting on it.
func (k *socket) close() {
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		unix.Close(int(k.fd))
	}
	k.mu.Unlock()
}
