package server

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// Running out of descriptors is logged at warning level, once a second
// however often accept fails.
func TestOutOfDescriptorsIsWarned(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	var out bytes.Buffer
	l := &watchedListener{Listener: failingListener{inner}, log: slog.New(slog.NewTextHandler(&out, nil))}
	for range 100 {
		if _, err := l.Accept(); err == nil {
			t.Fatal("Accept did not fail")
		}
	}
	if n := strings.Count(out.String(), "level=WARN"); n < 1 || n > 2 {
		t.Fatalf("%d warnings for 100 failed accepts; want one a second:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "file descriptors") {
		t.Fatalf("the warning does not say why: %s", out.String())
	}
}
