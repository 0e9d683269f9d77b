package server

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
)

// A request body that does not arrive whole in time is answered 408 and
// the connection closed: a slow sender holds no descriptor for ever.
func TestSlowBodyTimesOut(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.RequestTimeout = 0.2
	s := &Server{cfg: cfg}
	s.live.Store(&live{limits: cfg.Limits})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.readBody(w, r); ok {
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer hs.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One byte of the hundred announced, then nothing.
	if _, err := conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d; want 408", resp.StatusCode)
	}
}
