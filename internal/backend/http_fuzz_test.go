package backend

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/hub"
)

// FuzzServeHTTP sends arbitrary bodies to every backend call: the API
// must answer each with a status the documentation lists and a JSON body,
// never panic.
func FuzzServeHTTP(f *testing.F) {
	paths := []string{"config", "publish", "watch", "watch/extend", "unwatch", "online", "public", "command", "nope"}
	for i, body := range []string{
		`{"userId":7}`,
		`{"users":[7,"8"],"message":{"module_id":"im","command":"m","params":{}}}`,
		`{"batch":[{"tags":["t"],"message":{"module_id":"im","command":"m"}}]}`,
		`{"userId":"7","tags":["a","b"],"ttl":60}`,
		`{"users":[1,2,3]}`,
		`{"users":[1],"command":"config_expire"}`,
		`{"userId":{"x":1}}`,
		`[`,
		``,
	} {
		f.Add(uint8(i), body)
	}
	s := newService(f, hub.New(), &clock{time.Now()})
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true, 413: true, 503: true}
	f.Fuzz(func(t *testing.T, path uint8, body string) {
		req := httptest.NewRequest(http.MethodPost, "/pushpull/"+paths[int(path)%len(paths)], strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer bk")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("content type %q", ct)
		}
	})
}

// The backend key is a bearer token in any case of the scheme; anything
// else is refused.
func TestAuthorization(t *testing.T) {
	s := newService(t, hub.New(), &clock{time.Now()})
	for auth, want := range map[string]int{
		"Bearer bk": 200, "bearer bk": 200, "BEARER  bk ": 200,
		"": 401, "Bearer": 401, "Bearer bk2": 401, "Basic bk": 401, "bk": 401,
	} {
		req := httptest.NewRequest(http.MethodPost, "/pushpull/config", strings.NewReader(`{"userId":7}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Authorization %q: status %d, want %d (%s)", auth, w.Code, want, w.Body)
		}
	}
}
