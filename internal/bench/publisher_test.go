package bench

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestReadResponse(t *testing.T) {
	for name, c := range map[string]struct {
		in   string
		code int
		keep bool
		body string
	}{
		"empty 200":    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, true, ""},
		"200 body":     {"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", 200, true, ""},
		"close":        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, false, ""},
		"http/1.0":     {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, ""},
		"1.0 keep":     {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", 200, true, ""},
		"400 body":     {"HTTP/1.1 400 Bad Request\r\nContent-Length: 25\r\n\r\nChannel id is not correct", 400, true, "Channel id is not correct"},
		"chunked":      {"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nfail\r\n3\r\ned!\r\n0\r\nTrailer: 1\r\n\r\n", 500, true, "failed!"},
		"to eof":       {"HTTP/1.1 503 Service Unavailable\r\n\r\ndown", 503, false, "downNEXT"}, // the body runs to the end
		"304 no body":  {"HTTP/1.1 304 Not Modified\r\n\r\n", 304, true, ""},
		"201 body":     {"HTTP/1.1 201 Created\r\nContent-Length: 19\r\n\r\nqueued messages: 1\n", 201, true, ""},
		"long errbody": {"HTTP/1.1 413 Too Large\r\nContent-Length: 300\r\n\r\n" + strings.Repeat("x", 300), 413, true, strings.Repeat("x", 200)},
	} {
		br := bufio.NewReader(strings.NewReader(c.in + "NEXT"))
		var body []byte
		code, keep, err := ReadResponse(br, &body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if code != c.code || keep != c.keep || string(body) != c.body {
			t.Errorf("%s: got %d keep=%v body %q, want %d keep=%v body %q", name, code, keep, body, c.code, c.keep, c.body)
		}
		// A kept connection is positioned at the next response.
		if rest, _ := io.ReadAll(br); keep && string(rest) != "NEXT" {
			t.Errorf("%s: left %q unread", name, rest)
		}
	}
}

func TestReadResponseBad(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
	} {
		var body []byte
		if code, _, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), &body); err == nil {
			t.Errorf("%q: got %d, want an error", in, code)
		}
	}
}

func TestPublisher(t *testing.T) {
	var (
		mu    sync.Mutex
		got   []string
		conns atomic.Int32
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch := r.URL.Query().Get("CHANNEL_ID")
		if r.Method != http.MethodPost || r.URL.Path != "/bitrix/pub/" || ch == "bad" {
			http.Error(w, "Channel id is not correct.", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, ch+" "+string(body))
		mu.Unlock()
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	p, err := NewPublisher(srv.URL + "/bitrix/pub/")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := int64(0); i < 3; i++ {
		if err := p.Publish("abc.sig", AppendTickBody(nil, i, 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	err = p.Publish("bad", []byte("{}"))
	se, ok := err.(*StatusError)
	if !ok || se.Code != 400 || se.Body != "Channel id is not correct.\n" {
		t.Fatalf("bad channel: got %v", err)
	}
	// After the server drops the kept-alive connection, the next publish
	// reconnects.
	srv.CloseClientConnections()
	if err := p.Publish("abc.sig", AppendTickBody(nil, 3, 103)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`abc.sig {"module_id":"bench","command":"tick","params":{"seq":0,"t":100}}`,
		`abc.sig {"module_id":"bench","command":"tick","params":{"seq":1,"t":101}}`,
		`abc.sig {"module_id":"bench","command":"tick","params":{"seq":2,"t":102}}`,
		`abc.sig {"module_id":"bench","command":"tick","params":{"seq":3,"t":103}}`,
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("server received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (one kept alive, one after the drop)", n)
	}
}

func TestNewPublisherURL(t *testing.T) {
	p, err := NewPublisher("http://example.test/pub/?binaryMode=false")
	if err != nil {
		t.Fatal(err)
	}
	if p.addr != "example.test:80" || string(p.head) != "POST /pub/?binaryMode=false&CHANNEL_ID=" {
		t.Fatalf("addr %q head %q", p.addr, p.head)
	}
	if _, err := NewPublisher("https://example.test/pub/"); err == nil {
		t.Fatal("https accepted")
	}
}

// Message-Expiry goes with each publish when set, and not otherwise.
func TestPublisherExpiry(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Message-Expiry"))
		mu.Unlock()
	}))
	defer srv.Close()
	p, err := NewPublisher(srv.URL + "/bitrix/pub/")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish("a", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	p.Expiry = 86400
	if err := p.Publish("a", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != ",86400" {
		t.Fatalf("Message-Expiry sent: %q, want none then 86400", got)
	}
}
