package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandler(t *testing.T) {
	h := Handler("/demo/", config.Default())
	for _, c := range []struct {
		path, ctype, contains string
	}{
		{"/demo/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/demo/index.html", "text/html; charset=utf-8", "pushpull"},
		{"/demo/app.js", "text/javascript; charset=utf-8", `from "./client/index.js"`},
		{"/demo/client/index.js", "text/javascript; charset=utf-8", " as PullClient"},
	} {
		w := get(t, h, http.MethodGet, c.path)
		if w.Code != 200 || w.Header().Get("Content-Type") != c.ctype || !strings.Contains(w.Body.String(), c.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, w.Code, w.Header().Get("Content-Type"), c.contains, strings.Contains(w.Body.String(), c.contains))
		}
	}
	for _, p := range []string{"/demo/nope", "/demo/client/../app.js", "/demo/client/x/index.js", "/demo/client/index.d.ts", "/demo/client/client.js", "/demo/static/index.html"} {
		if w := get(t, h, http.MethodGet, p); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	if w := get(t, h, http.MethodPost, "/demo/"); w.Code != 404 {
		t.Errorf("POST: %d, want 404", w.Code)
	}
	if w := get(t, h, http.MethodHead, "/demo/app.js"); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", w.Code, w.Body.Len())
	}
}

func TestDefaults(t *testing.T) {
	cfg := config.Default()
	w := get(t, Handler("/demo/", cfg), http.MethodGet, "/demo/defaults.json")
	var d Defaults
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	want := Defaults{WebSocket: "/bitrix/subws/", LongPolling: "/bitrix/sub/", Publish: "/bitrix/pub/", PublishPort: 9010, PublishScheme: "http"}
	if d != want {
		t.Errorf("defaults = %+v, want %+v", d, want)
	}

	// One server with every route: publish on the page's own origin.
	cfg.Servers[0].Routes.Pub = []string{"/p/"}
	if got := defaultsFor("/demo/", cfg); got.Publish != "/p/" || got.PublishPort != 0 {
		t.Errorf("same-server defaults = %+v", got)
	}
}
