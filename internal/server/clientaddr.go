package server

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pushpull/pushpull/internal/config"
)

// proxies are the reverse proxies whose forwarding headers are believed
// (security.trustedProxies).
type proxies []netip.Prefix

func newProxies(list []string) (proxies, error) {
	var out proxies
	for _, s := range list {
		p, err := config.ParseProxy(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the request's peer, the invalid Addr when
// RemoteAddr holds none (a test's request, a unix socket).
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// clientAddr is the address of the client a request comes from: its peer,
// or, when the peer is a trusted proxy, the client the proxy names. In
// X-Forwarded-For each proxy appends the address it was reached from, so
// the list is read from the right, past the trusted proxies, to the
// first address one of them was reached from that is not one: what is
// left of it the client wrote itself. With no such address X-Real-IP
// counts. Headers that do not parse are passed over.
func (s *Server) clientAddr(r *http.Request) string {
	peer := peerAddr(r)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	ps := s.live.Load().proxies
	if len(ps) == 0 || !ps.trusted(peer) {
		return peer.String()
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			a, ok := forwardedAddr(list[j])
			if !ok {
				return client.String()
			}
			client = a
			if !ps.trusted(a) {
				return a.String()
			}
		}
	}
	if client == peer {
		if a, ok := forwardedAddr(r.Header.Get("X-Real-IP")); ok {
			return a.String()
		}
	}
	return client.String()
}

// forwardedAddr reads one address of a forwarding header: an IP, perhaps
// with a port ("1.2.3.4:5678", "[::1]:80").
func forwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// addrLimit bounds the subscriber connections of each client address
// (limits.maxConnPerIP).
type addrLimit struct {
	max atomic.Int64 // 0: unlimited; a reload may change it

	mu     sync.Mutex
	byAddr map[string]int
}

func newAddrLimit(max int) *addrLimit {
	l := &addrLimit{byAddr: make(map[string]int)}
	l.setMax(max)
	return l
}

// setMax changes the limit. An address over a lowered one keeps its
// connections; new ones wait until it is under.
func (l *addrLimit) setMax(max int) { l.max.Store(int64(max)) }

// acquire counts a connection of addr; ok is false, and nothing counted,
// when addr has the limit's number already. release, idempotent, ends
// the count.
func (l *addrLimit) acquire(addr string) (release func(), ok bool) {
	limit := int(l.max.Load())
	if limit <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[addr] >= limit {
		return nil, false
	}
	l.byAddr[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if n := l.byAddr[addr] - 1; n > 0 {
				l.byAddr[addr] = n
			} else {
				delete(l.byAddr, addr)
			}
		})
	}, true
}

// errTooManyFrom is the answer to a connection over limits.maxConnPerIP.
func (l *addrLimit) errTooManyFrom() string {
	return "Too many connections from this address (limits.maxConnPerIP is " + strconv.FormatInt(l.max.Load(), 10) + ")."
}
