// Package redistest runs real redis-server processes for tests, each on a
// free loopback port with its data in the test's temporary directory. It
// never touches a Redis the machine runs for others.
package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"testing"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/testutil"
)

// Server is one redis-server process of a test.
type Server struct {
	Port int
	Dir  string // its working directory: dumps and append-only files

	t    testing.TB
	args []string
	proc *spawn.Process
}

// Start runs redis-server without persistence (unless args ask for it,
// e.g. "--appendonly", "yes") and stops it when the test ends. A missing
// redis-server fails the test: the suite's script installs it. A server
// that finds its port taken by another process is started on another.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	var s *Server
	if err := spawn.RetryPorts(func() error {
		s = New(t, args...)
		return s.start()
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// New picks a port and directory for a server that Start will run later
// (for tests of what happens while Redis is down); it is stopped when the
// test ends.
func New(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, Port: FreePort(t), Dir: t.TempDir(), args: args}
	t.Cleanup(s.Kill)
	return s
}

// Binary returns the path of a Redis program, failing the test without it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (scripts/test installs it): %v", name, err)
	}
	return p
}

// FreePort returns a loopback port that is free, and whose cluster bus port
// (port + 10000) is free too. Both lie below Linux's ephemeral range
// (32768-60999), so that no outgoing connection takes one as its local
// port while a test has stopped its server to start it again.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 12000 + rand.IntN(10768)
		ok := true
		for _, p := range []int{port, port + 10000} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Start (re)starts the server on its port and directory and waits until it
// accepts connections, its data loaded.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
	}, s.args...)
	p, err := spawn.Start("redis-server", exec.Command(Binary(s.t, "redis-server"), args...))
	if err != nil {
		return err
	}
	s.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	if err := p.WaitLine(ctx, "Ready to accept connections"); err != nil {
		s.Kill()
		return fmt.Errorf("redis-server on %d did not start: %w", s.Port, err)
	}
	return nil
}

// running reports whether the server's process runs: it was started and
// not killed since.
func (s *Server) running() bool { return s.proc != nil }

// Kill ends the server as a crash would: no shutdown save.
func (s *Server) Kill() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Cmd.Process.Kill()
	<-s.proc.Done()
	s.proc = nil
}
