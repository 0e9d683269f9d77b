package server

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/config"
)

// live is the part of the configuration a reload changes while clients
// stay connected. A request reads it once, through s.live, and keeps what
// it read.
type live struct {
	limits         config.Limits
	trustedOrigins []string           // security.trustedOrigins
	signedPublish  bool               // security.signedPublish
	personal       *tenant            // the personal mode's only tenant
	tenants        map[string]*tenant // shared mode: by clientId
	proxies        proxies            // security.trustedProxies
}

// newLive builds what c configures of the live part; old is the running
// one (nil at start), whose keys become the previous ones where c changes
// them.
func (s *Server) newLive(c *config.Config, old *live, now time.Time) (*live, error) {
	algo := s.cfg.Security.Algo // not reloaded
	grace := config.Seconds(c.Security.KeyGracePeriod)
	l := &live{limits: c.Limits, trustedOrigins: c.Security.TrustedOrigins, signedPublish: c.Security.SignedPublish}
	var oldPersonal *tenant
	if old != nil {
		oldPersonal = old.personal
	}
	var err error
	if l.proxies, err = newProxies(c.Security.TrustedProxies); err != nil {
		return nil, fmt.Errorf("security.trustedProxies: %w", err)
	}
	if l.personal, err = newTenant("", c.Security.Key, c.Security.PreviousKey, algo, oldPersonal, grace, now); err != nil {
		return nil, fmt.Errorf("security.key: %w", err)
	}
	clients := c.Security.Clients
	if old != nil && (len(clients) > 0) != s.shared() {
		// The mode does not change while running: the clients stay.
		l.tenants = old.tenants
		return l, nil
	}
	l.tenants = make(map[string]*tenant, len(clients))
	for id, key := range clients {
		var prev *tenant
		if old != nil {
			prev = old.tenants[id]
		}
		if l.tenants[id], err = newTenant(id, key, "", algo, prev, grace, now); err != nil {
			return nil, fmt.Errorf("security.clients: %w", err)
		}
	}
	return l, nil
}

// limits returns the limits in force.
func (s *Server) limits() config.Limits { return s.live.Load().limits }

// Reload applies what of next can change while clients stay connected:
// the limits, the trusted proxies, the security keys (the one replaced still verifies for
// security.keyGracePeriod), signedPublish, the trusted origins and the TLS
// certificates, which it reads from their files again. The rest of next is not looked at: the caller says
// what it could not apply. A certificate that does not load leaves
// everything as it was.
func (s *Server) Reload(next *config.Config) error {
	certs := make([]*tls.Certificate, len(s.certs))
	for i, h := range s.certs {
		if h == nil || i >= len(next.Servers) || next.Servers[i].SSL == nil {
			continue
		}
		pair, err := next.Servers[i].SSL.LoadCertificate()
		if err != nil {
			return fmt.Errorf("servers[%d].ssl: %w", i, err)
		}
		certs[i] = &pair
	}
	l, err := s.newLive(next, s.live.Load(), time.Now())
	if err != nil {
		return err
	}
	for i, c := range certs {
		if c != nil {
			s.certs[i].cert.Store(c)
		}
	}
	s.live.Store(l)
	s.clientRate.set(l.limits.ClientMessages, l.limits.ClientBurst)
	s.conns.setMax(l.limits.MaxConnPerChannel)
	s.perAddr.setMax(l.limits.MaxConnPerIP)
	s.ws.SetFrameTimeout(config.Seconds(l.limits.RequestTimeout))
	return nil
}

// PreviousKeyUntil returns until when the key security.key replaced still
// verifies, or the zero time when no previous key does.
func (s *Server) PreviousKeyUntil() time.Time {
	p := s.live.Load().personal
	if p.prevKey == nil || !time.Now().Before(p.until) {
		return time.Time{}
	}
	return p.until
}

// certHolder serves a listener's certificate, which a reload replaces:
// handshakes after it present the new one, connections made before keep
// theirs.
type certHolder struct {
	cert atomic.Pointer[tls.Certificate]
}

func (h *certHolder) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}

// tlsConfig is sc's TLS configuration, with its certificate served by h.
func tlsConfig(ssl *config.SSL, h *certHolder) (*tls.Config, error) {
	tc, err := ssl.TLSConfig()
	if err != nil {
		return nil, err
	}
	h.cert.Store(&tc.Certificates[0])
	tc.Certificates = nil
	tc.GetCertificate = h.get
	return tc, nil
}
