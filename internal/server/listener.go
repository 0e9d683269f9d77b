package server

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// watchedListener logs, at warning level and at most once a second, the
// accept errors that mean the process cannot take new connections (out of
// file descriptors): net/http retries them quietly, and the clients the
// server already has go on being served.
type watchedListener struct {
	net.Listener
	log    *slog.Logger
	logged atomic.Int64 // unix seconds of the last warning
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
		now := time.Now().Unix()
		if last := l.logged.Load(); now > last && l.logged.CompareAndSwap(last, now) {
			l.log.Warn("cannot accept connections: out of file descriptors (raise LimitNOFILE / ulimit -n)",
				"addr", l.Addr().String(), "err", err)
		}
	}
	return c, err
}
