package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
)

// Response is a whole HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// request sends one HTTP request and reads the whole answer.
func request(t testing.TB, method, url, body string, header map[string]string) Response {
	t.Helper()
	r, err := tryRequest(method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func tryRequest(method, url, body string, header map[string]string) (Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// publish posts body to channels (joined by "/", as the PHP module does)
// and fails the test unless the server answers 200.
func publish(t testing.TB, srv *Server, channels []string, body string) {
	t.Helper()
	publishWith(t, srv, channels, body, nil)
}

// publishWith is publish with extra request headers (Message-Expiry).
func publishWith(t testing.TB, srv *Server, channels []string, body string, header map[string]string) {
	t.Helper()
	r := request(t, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+strings.Join(channels, "/"), body, header)
	if r.Status != http.StatusOK {
		t.Fatalf("publish to %v: status %d, body %q; want 200", channels, r.Status, r.Body)
	}
}

// command returns a message body as the PHP module publishes it.
func command(module, cmd string, n int) string {
	return fmt.Sprintf(`{"module_id":%q,"command":%q,"params":{"n":%d},"extra":{"server_time":%q,"server_time_unix":%d,"revision_web":19}}`,
		module, cmd, n, time.Now().UTC().Format(time.RFC3339), time.Now().Unix())
}

// online returns the subscriber count the publish route reports for each
// channel asked (absent channels count 0).
func online(t testing.TB, srv *Server, channels ...string) map[string]int {
	t.Helper()
	r := request(t, http.MethodGet, srv.PubURL+"?CHANNEL_ID="+strings.Join(channels, "/"), "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET publish route: status %d, body %q", r.Status, r.Body)
	}
	return onlineCounts(t, r.Body)
}

// onlineCounts reads the publish route's answer to GET: the subscriber
// count of each channel it lists.
func onlineCounts(t testing.TB, body string) map[string]int {
	t.Helper()
	var ans struct {
		Infos []struct {
			Channel     string `json:"channel"`
			Subscribers int    `json:"subscribers"`
		} `json:"infos"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("GET publish route: %v in %q", err, body)
	}
	out := make(map[string]int)
	for _, i := range ans.Infos {
		out[i.Channel] = i.Subscribers
	}
	return out
}

// waitOnline waits until the server reports channel online (online is
// true) or offline (false).
func waitOnline(t testing.TB, srv *Server, channel string, want bool) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("channel %s online=%v", channel, want), func() bool {
		return (online(t, srv, channel)[channel] > 0) == want
	})
}

// longPoll sends one long-polling request and waits for its answer.
func longPoll(t testing.TB, url string) Response {
	t.Helper()
	return request(t, http.MethodGet, url, "", nil)
}

// startLongPoll sends a long-polling request in the background; the answer
// arrives on the returned channel.
func startLongPoll(t testing.TB, url string) <-chan Response {
	t.Helper()
	out := make(chan Response, 1)
	go func() {
		r, err := tryRequest(http.MethodGet, url, "", nil)
		if err != nil {
			r = Response{Status: -1, Body: err.Error()}
		}
		out <- r
	}()
	return out
}

// awaitResponse waits for a background request's answer.
func awaitResponse(t testing.TB, ch <-chan Response) Response {
	t.Helper()
	select {
	case r := <-ch:
		if r.Status < 0 {
			t.Fatalf("long poll failed: %s", r.Body)
		}
		return r
	case <-time.After(90 * time.Second):
		t.Fatal("long poll did not end within 90 s")
	}
	return Response{}
}
