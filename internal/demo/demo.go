// Package demo serves a small page on which a person watches a channel's
// messages arrive live, through the browser client of js/, and publishes
// one. The page and the client are embedded in the binary.
package demo

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/js"
)

//go:embed static
var static embed.FS

// Defaults tell the page where the server's routes are, so that it works
// without the visitor typing URLs. Paths are absolute on the page's host.
type Defaults struct {
	WebSocket   string `json:"websocket,omitempty"`
	LongPolling string `json:"long_polling,omitempty"`
	// The publish route: on this server (Publish) or on another port of
	// the same host (PublishPort, PublishScheme).
	Publish       string `json:"publish,omitempty"`
	PublishPort   int    `json:"publish_port,omitempty"`
	PublishScheme string `json:"publish_scheme,omitempty"`
}

// Handler serves the page under prefix (for example "/demo/"): the page
// at prefix, its script, the client modules under prefix+"client/", and
// prefix+"defaults.json" computed from cfg at the first request, when the
// servers listen and cfg holds the ports of those configured on port 0.
func Handler(prefix string, cfg *config.Config) http.HandlerFunc {
	page, _ := fs.Sub(static, "static")
	client := js.Dist()
	defaults := sync.OnceValue(func() []byte {
		b, _ := json.Marshal(defaultsFor(prefix, cfg))
		return b
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			notFound(w)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, prefix)
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		switch {
		case name == "" || name == "index.html":
			serve(w, r, page, "index.html", "text/html; charset=utf-8")
		case name == "app.js":
			serve(w, r, page, "app.js", "text/javascript; charset=utf-8")
		case name == "defaults.json":
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(defaults())
		case name == "client/sw.js":
			// The Web Push service worker may control the whole page.
			h.Set("Service-Worker-Allowed", prefix)
			serve(w, r, client, "sw.js", "text/javascript; charset=utf-8")
		case strings.HasPrefix(name, "client/") && strings.HasSuffix(name, ".js"):
			serve(w, r, client, strings.TrimPrefix(name, "client/"), "text/javascript; charset=utf-8")
		default:
			notFound(w)
		}
	}
}

func serve(w http.ResponseWriter, r *http.Request, fsys fs.FS, name, ctype string) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil || strings.Contains(name, "/") {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", ctype)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusNotFound)
}

// defaultsFor finds the subscribe routes of the server that serves the
// page and the first publish route of any server.
func defaultsFor(prefix string, cfg *config.Config) Defaults {
	var d Defaults
	var home *config.Server
	for i := range cfg.Servers {
		for _, p := range cfg.Servers[i].Routes.Demo {
			if p == prefix && home == nil {
				home = &cfg.Servers[i]
			}
		}
	}
	if home != nil && len(home.Routes.Sub) > 0 {
		sub := home.Routes.Sub
		d.LongPolling = sub[0]
		// The stock layout lists /bitrix/sub/ then /bitrix/subws/.
		d.WebSocket = sub[len(sub)-1]
	}
	if home != nil && len(home.Routes.Pub) > 0 {
		d.Publish = home.Routes.Pub[0]
		return d
	}
	for _, s := range cfg.Servers {
		if len(s.Routes.Pub) > 0 {
			d.Publish = s.Routes.Pub[0]
			d.PublishPort = s.Port
			d.PublishScheme = "http"
			if s.SSL != nil {
				d.PublishScheme = "https"
			}
			break
		}
	}
	return d
}
