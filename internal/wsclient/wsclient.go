// Package wsclient holds what the project's WebSocket clients (the CLI's
// subscriber, the load tool, the tests) share on top of gobwas/ws.
package wsclient

import (
	"bufio"
	"io"
	"net"
)

// Stream is a WebSocket dialed with gobwas/ws as one io.ReadWriter. Reads
// come first from br, the handshake's reader, which holds what the server
// sent right after its answer (history, often), then from the connection;
// writes go to the connection, so wsutil's readers can answer pings.
func Stream(conn net.Conn, br *bufio.Reader) io.ReadWriter {
	if br == nil {
		return conn
	}
	return struct {
		io.Reader
		io.Writer
	}{br, conn}
}
