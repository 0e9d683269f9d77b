// Package redistest runs real redis-server processes for tests, each on a
// free loopback port with its data in the test's temporary directory. It
// never touches a Redis the machine runs for others.
package redistest

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process of a test.
type Server struct {
	Port int
	Dir  string // its working directory: dumps, append-only files, redis.log

	t    testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server without persistence (unless args ask for it,
// e.g. "--appendonly", "yes") and stops it when the test ends. A missing
// redis-server fails the test: the suite's script installs it.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := New(t, args...)
	s.Start()
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
// (port + 10000) is free too.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(30000)
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
// answers PING.
func (s *Server) Start() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}, s.args...)
	s.cmd = exec.Command(Binary(s.t, "redis-server"), args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("redis-server on %d did not start: %s", s.Port, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the server as a crash would: no shutdown save.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
