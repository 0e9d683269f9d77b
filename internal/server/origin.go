package server

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/pushpull/pushpull/internal/config"
)

// Browsers and the trusted routes. The routes browsers use (subscribe,
// client publish, demo) answer any origin. The trusted ones (publish, api,
// stat, probes, metrics, backend) serve backends and monitoring, which send
// no Origin: they carry no CORS headers, so a page cannot read them, and
// they refuse a request a browser makes on a page's behalf, so a page
// cannot forge one, unless security.trustedOrigins lists the page's origin
// or the page is this process's own demo page.

// openCORS marks an answer of a browser route as readable by any page.
func openCORS(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// admit decides a request to a trusted route. It answers (and returns
// false) a refused request and an allowed origin's preflight; an allowed
// origin's other requests get their CORS header and go on.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			text(w, http.StatusForbidden, "This route serves backends: a request a browser sends on a page's behalf is refused.")
			return false
		}
		return true
	}
	if !s.trustedOrigin(origin, r) {
		text(w, http.StatusForbidden, "Origin "+strconv.Quote(origin)+" is not trusted on this route (security.trustedOrigins).")
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

// trustedOrigin reports whether origin is listed in
// security.trustedOrigins or is a page of this process's demo route: the
// origin's scheme and port are a demo server's, and its host is the one
// that server listens on (or, on loopback, localhost; on all interfaces,
// the host the request itself was sent to).
func (s *Server) trustedOrigin(origin string, r *http.Request) bool {
	list := s.live.Load().trustedOrigins
	if slices.Contains(list, "*") || slices.Contains(list, origin) {
		return true
	}
	if !config.IsOrigin(origin) {
		return false
	}
	u, _ := url.Parse(origin)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, sc := range s.cfg.Servers {
		if len(sc.Routes.Demo) == 0 || strconv.Itoa(sc.Port) != port || (sc.SSL != nil) != (u.Scheme == "https") {
			continue
		}
		host := u.Hostname()
		switch listen := sc.Hostname; {
		case listen == "" || listen == "0.0.0.0" || listen == "::":
			if reqHost, _, err := net.SplitHostPort(r.Host); err == nil && reqHost == host || r.Host == host {
				return true
			}
		case host == listen || host == "["+listen+"]":
			return true
		case host == "localhost" && isLoopback(listen):
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
