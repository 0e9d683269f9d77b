// Package ws serves subscribers over WebSocket with little memory per idle
// connection: no goroutine waits on an idle socket. On Linux one reactor
// goroutine watches every plain TCP socket with epoll and reads only when
// data arrives; outgoing frames go to a byte-bounded queue per session that
// a small pool of flush workers writes with non-blocking writev, handing a
// session to a goroutine of its own only while the peer's socket is full.
// TLS sessions, and every session where epoll is unavailable, use a reader
// goroutine and blocking writes instead.
package ws
