package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/demo"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/transport/poll"
	"github.com/pushpull/pushpull/internal/transport/ws"
	"github.com/pushpull/pushpull/protocol"
)

// Server serves every configured listener.
type Server struct {
	cfg        *config.Config
	clientRate *clientLimiter // how fast clients may publish
	log        *slog.Logger
	hub        *hub.Hub
	engine     engine.Engine
	ws         *ws.Server
	poll       *poll.Handler
	metrics    *metrics

	live    atomic.Pointer[live] // limits, keys and proxies, which a reload replaces
	connSeq atomic.Uint64        // numbers connections for presence
	conns   *connLimit           // limits.maxConnPerChannel
	perAddr *addrLimit           // limits.maxConnPerIP

	listeners []net.Listener
	certs     []*certHolder // per listener; nil for one without TLS
	servers   []*http.Server

	// Connections accepted but without a request yet: a graceful stop
	// closes them at once rather than waiting for them to speak.
	idleMu sync.Mutex
	fresh  map[net.Conn]struct{}

	gate *drainEngine // s.engine: refuses publishes once a stop began

	serving chan struct{} // closed once Serve accepts on every listener

	backend http.Handler // the backend API; nil: its routes answer 404
	admin   AdminPage    // the admin page under the backend routes; nil: none
}

// AdminPage is the admin page, served under each backend route's
// admin/.
type AdminPage interface {
	Handler(prefix string) http.Handler
}

// SetAdmin serves the admin page under every backend route (its admin/).
// Call it before Listen.
func (s *Server) SetAdmin(a AdminPage) { s.admin = a }

// Engine returns the engine publishes of this process must go through:
// the server's own, gated so that a graceful stop loses none.
func (s *Server) Engine() engine.Engine { return s.engine }

// SetBackend serves h on the backend routes. Call it before Listen.
func (s *Server) SetBackend(h http.Handler) { s.backend = h }

// New builds a server for cfg on engine e, which delivers to h.
func New(cfg *config.Config, e engine.Engine, h *hub.Hub, log *slog.Logger) (*Server, error) {
	if _, err := protocol.NewSigner(cfg.Security.Key, cfg.Security.Algo); err != nil {
		return nil, fmt.Errorf("security.algo: %w", err)
	}
	gate := &drainEngine{Engine: e}
	s := &Server{
		cfg:    cfg,
		log:    log,
		hub:    h,
		engine: gate,
		gate:   gate,

		serving: make(chan struct{}),

		clientRate: newClientLimiter(cfg.Limits.ClientMessages, cfg.Limits.ClientBurst),
		conns:      newConnLimit(cfg.Limits.MaxConnPerChannel),
		perAddr:    newAddrLimit(cfg.Limits.MaxConnPerIP),
		ws: ws.NewServer(ws.Options{
			PingInterval:  config.Seconds(cfg.WebSocket.PingInterval),
			MaxQueueBytes: cfg.WebSocket.MaxQueueBytes,
			MaxFrameBytes: cfg.WebSocket.MaxFrameBytes,
			FrameTimeout:  config.Seconds(cfg.Limits.RequestTimeout),
			// Protocol-5 clients reconnect when no "ping" came for 20 s.
			KeepaliveInterval: 10 * time.Second,
		}),
	}
	l, err := s.newLive(cfg, nil, time.Now())
	if err != nil {
		return nil, err
	}
	s.live.Store(l)
	s.poll = &poll.Handler{Hub: h, Engine: e, Timeout: config.Seconds(cfg.Polling.Timeout), Log: log}
	s.metrics = newMetrics(s)
	return s, nil
}

// Counters returns the live connection counts, for the engine's stats.
func Counters(s *Server) engine.Counters { return counters{s} }

type counters struct{ s *Server }

func (c counters) WebSockets() int64 { return c.s.ws.Count() }
func (c counters) Pollings() int64   { return c.s.poll.Count() }

// Resync makes every client of this process resume from history: WebSocket
// sessions close with protocol.CloseServiceRestart (1012), after which
// clients reconnect with their last mid, and held long polls end with 304.
// The engine calls it when this process's live feed lost messages it cannot
// replay.
func (s *Server) Resync() {
	s.log.Warn("live feed lost messages: clients resume from history")
	s.ws.CloseAll(protocol.CloseServiceRestart, "resync")
	s.poll.Resync()
}

// Registry returns the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Listen binds every configured server. Addrs then reports the bound
// addresses.
func (s *Server) Listen() error {
	for i, sc := range s.cfg.Servers {
		tcp, err := net.Listen("tcp", sc.Addr())
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("servers[%d] (%s): %w", i, sc.Addr(), err)
		}
		var ln net.Listener = &watchedListener{Listener: tcp, log: s.log}
		var certs *certHolder
		if sc.SSL != nil {
			certs = &certHolder{}
			tc, err := tlsConfig(sc.SSL, certs)
			if err != nil {
				ln.Close()
				s.closeListeners()
				return fmt.Errorf("servers[%d].ssl: %w", i, err)
			}
			ln = tls.NewListener(ln, tc)
		}
		s.listeners = append(s.listeners, ln)
		s.certs = append(s.certs, certs)
		s.servers = append(s.servers, &http.Server{
			Handler:           s.router(sc.Routes),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ConnState:         s.trackConn,
		})
	}
	return nil
}

func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if state == http.StateNew {
		if s.fresh == nil {
			s.fresh = make(map[net.Conn]struct{})
		}
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

func (s *Server) closeFresh() {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	for c := range s.fresh {
		c.Close()
	}
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.listeners, s.certs = nil, nil
}

// Addrs returns the bound address of each configured server, in order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Serve serves until ctx ends, then shuts down gracefully: listeners close,
// held long polls and WebSocket clients get the server_restart command and
// WebSockets close with protocol.CloseServerRestarted (3002), in-flight
// publishes finish.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.servers))
	var started sync.WaitGroup
	for i, srv := range s.servers {
		started.Add(1)
		go func() {
			// Serve accepts on the listener from here on.
			started.Done()
			if err := srv.Serve(s.listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	started.Wait()
	close(s.serving)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.shutdown()
	return serveErr
}

// Serving is closed once Serve serves every listener.
func (s *Server) Serving() <-chan struct{} { return s.serving }

func (s *Server) shutdown() {
	timeout := config.Seconds(s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.log.Info("shutting down", "timeout", timeout)

	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		}()
	}
	s.closeFresh()
	s.gate.drain()
	restarts := newRestarts(sctx, s.engine, s.log)
	s.poll.Shutdown(restarts.of)
	s.ws.Shutdown(sctx, func(sess *ws.Session) {
		if restart := restarts.of(sess.Channel); restart != nil {
			sess.Send(sess.MessageFrame(restart, sess.Channel))
		}
	}, protocol.CloseServerRestarted, "server restart")
	wg.Wait()
	s.ws.Close()
	s.log.Info("stopped")
}

// restarts hands out the server_restart command per installation, its id
// taken from the counter that numbers the installation's messages (on
// Redis with storage.tags "installation" each clientId has its own), so
// that a client resuming after it asks for what it has not seen.
type restarts struct {
	ctx    context.Context
	engine engine.Engine
	log    *slog.Logger
	mu     sync.Mutex
	by     map[string]*protocol.Message // by clientId; nil: no id could be had
}

func newRestarts(ctx context.Context, e engine.Engine, log *slog.Logger) *restarts {
	return &restarts{ctx: ctx, engine: e, log: log, by: map[string]*protocol.Message{}}
}

// of returns the restart command for a subscriber of channel, or nil.
func (r *restarts) of(channel string) *protocol.Message {
	ns := protocol.Namespace(channel)
	r.mu.Lock()
	m, ok := r.by[ns]
	r.mu.Unlock()
	if ok {
		return m
	}
	m = serverRestart()
	m.Channels = []string{channel} // names the installation
	if err := r.engine.Reserve(r.ctx, m); err != nil {
		r.log.Warn("no id for the restart message", "err", err)
		m = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if first, ok := r.by[ns]; ok {
		return first // another session's came first
	}
	r.by[ns] = m
	return m
}

// serverRestart is the command that tells clients the server restarts.
func serverRestart() *protocol.Message {
	now := time.Now()
	body := fmt.Sprintf(`{"module_id":"pull","command":"server_restart","params":{},"extra":{"server_time":%q,"server_time_unix":%d}}`,
		now.UTC().Format(time.RFC3339), now.Unix())
	return &protocol.Message{Body: []byte(body)}
}

// route is one path prefix and its handler; trusted routes serve
// backends and monitoring, not browsers (see origin.go).
type route struct {
	prefix  string
	h       http.HandlerFunc
	trusted bool
	// sameOrigin admits requests from pages of the route's own origin (the
	// admin page's calls), besides what admit admits: the route checks a
	// key of its own on every call that reads or changes anything.
	sameOrigin bool
}

func (s *Server) router(r config.Routes) http.Handler {
	var routes []route
	add := func(prefixes []string, h http.HandlerFunc, trusted bool) {
		for _, p := range prefixes {
			routes = append(routes, route{prefix: p, h: h, trusted: trusted})
		}
	}
	const browser, trusted = false, true
	if s.cfg.PublishMode {
		if len(r.Sub) > 0 {
			s.log.Warn("publishMode: subscribe routes are not served", "routes", r.Sub)
		}
	} else {
		add(r.Sub, s.subscribe, browser)
	}
	add(r.Pub, s.publishRoute, trusted)
	add(r.API, s.apiRoute, trusted)
	add(r.Rest, s.restRoute, browser)
	add(r.Stat, s.stats, trusted)
	add(r.Health, s.health, trusted)
	add(r.Ready, s.ready, trusted)
	add(r.Metrics, s.metrics.serve, trusted)
	for _, p := range r.Demo {
		add([]string{p}, demo.Handler(p, s.cfg), browser)
	}
	if s.admin != nil {
		for _, p := range r.Backend {
			p = strings.TrimSuffix(p, "/") + "/admin/"
			routes = append(routes, route{prefix: p, h: s.admin.Handler(p).ServeHTTP, trusted: true, sameOrigin: true})
		}
	}
	if s.backend != nil {
		add(r.Backend, s.backend.ServeHTTP, trusted)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for _, rt := range routes {
			if strings.HasPrefix(req.URL.Path, rt.prefix) {
				if !rt.trusted {
					openCORS(w)
				} else if !(rt.sameOrigin && sameOrigin(req)) && !s.admit(w, req) {
					return
				}
				rt.h(w, req)
				return
			}
		}
		openCORS(w)
		notFound(w)
	})
}

// sameOrigin reports whether r comes from a page of the origin it is sent
// to.
func sameOrigin(r *http.Request) bool {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	o := r.Header.Get("Origin")
	return o != "" && o == scheme+r.Host
}
