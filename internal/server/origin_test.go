package server

import (
	"net/http/httptest"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
)

// The trusted routes let backends in (no Origin), refuse what a browser
// sends on a page's behalf, and allow the listed origins and this
// process's demo pages.
func TestTrustedRoutesAdmit(t *testing.T) {
	cfg := config.Default() // demo on sub, 127.0.0.1:8010
	cfg.Security.TrustedOrigins = []string{"https://admin.example"}
	wild := config.Default()
	wild.Servers[0].Hostname = "0.0.0.0"
	cases := []struct {
		name    string
		cfg     *config.Config
		method  string
		host    string
		header  map[string]string
		admit   bool
		status  int // when not admitted
		allowed string
	}{
		{"backend", cfg, "POST", "127.0.0.1:9010", nil, true, 0, ""},
		{"foreign page", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "https://evil.example"}, false, 403, ""},
		{"opaque origin", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "null"}, false, 403, ""},
		{"form without Origin", cfg, "POST", "127.0.0.1:9010", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403, ""},
		{"navigation", cfg, "GET", "127.0.0.1:9010", map[string]string{"Sec-Fetch-Site": "none"}, true, 0, ""},
		{"listed origin", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "https://admin.example"}, true, 0, "https://admin.example"},
		{"listed origin's preflight", cfg, "OPTIONS", "127.0.0.1:9010", map[string]string{"Origin": "https://admin.example", "Access-Control-Request-Method": "DELETE"}, false, 204, "https://admin.example"},
		{"demo page", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "http://127.0.0.1:8010"}, true, 0, "http://127.0.0.1:8010"},
		{"demo page by localhost", cfg, "POST", "localhost:9010", map[string]string{"Origin": "http://localhost:8010"}, true, 0, "http://localhost:8010"},
		{"demo port, other host", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "http://10.1.1.1:8010"}, false, 403, ""},
		{"demo host, other port", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "http://127.0.0.1:8011"}, false, 403, ""},
		{"demo page over https", cfg, "POST", "127.0.0.1:9010", map[string]string{"Origin": "https://127.0.0.1:8010"}, false, 403, ""},
		{"demo on all interfaces", wild, "POST", "push.example:9010", map[string]string{"Origin": "http://push.example:8010"}, true, 0, "http://push.example:8010"},
		{"all interfaces, other host", wild, "POST", "push.example:9010", map[string]string{"Origin": "http://evil.example:8010"}, false, 403, ""},
	}
	for _, c := range cases {
		s := &Server{cfg: c.cfg}
		s.live.Store(&live{trustedOrigins: c.cfg.Security.TrustedOrigins})
		r := httptest.NewRequest(c.method, "http://"+c.host+"/bitrix/pub/", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		if got := s.admit(w, r); got != c.admit {
			t.Errorf("%s: admitted %v; want %v", c.name, got, c.admit)
			continue
		}
		if !c.admit && w.Code != c.status {
			t.Errorf("%s: status %d; want %d (%q)", c.name, w.Code, c.status, w.Body)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != c.allowed {
			t.Errorf("%s: Access-Control-Allow-Origin %q; want %q", c.name, got, c.allowed)
		}
	}
	all := config.Default()
	all.Security.TrustedOrigins = []string{"*"}
	r := httptest.NewRequest("GET", "http://127.0.0.1:9010/metrics", nil)
	r.Header.Set("Origin", "https://grafana.example")
	s := &Server{cfg: all}
	s.live.Store(&live{trustedOrigins: all.Security.TrustedOrigins})
	if !s.admit(httptest.NewRecorder(), r) {
		t.Error(`trustedOrigins ["*"] refused an origin`)
	}
}

func TestIsOrigin(t *testing.T) {
	for o, want := range map[string]bool{
		"https://admin.example":      true,
		"http://127.0.0.1:8010":      true,
		"http://[::1]:8010":          true,
		"https://admin.example/":     false,
		"https://admin.example/x":    false,
		"admin.example":              false,
		"ftp://admin.example":        false,
		"https://u@admin.example":    false,
		"https://admin.example?x":    false,
		"null":                       false,
		"":                           false,
		"https://admin.example#frag": false,
		"HTTPS://admin.example":      false,
		"https://admin.example:8443": true,
	} {
		if got := config.IsOrigin(o); got != want {
			t.Errorf("IsOrigin(%q) = %v; want %v", o, got, want)
		}
	}
}
