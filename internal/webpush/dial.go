package webpush

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// PrivateAddress is the error of a request to an address that is not on
// the public Internet (loopback, private, shared, link-local,
// unspecified, multicast), which a client of NewClient(false) refuses to
// connect to.
type PrivateAddress struct{ Addr string }

func (e PrivateAddress) Error() string {
	return "endpoint address " + e.Addr + " is not public (webPush.allowPrivateEndpoints allows it)"
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598

// Public reports whether ip is an address on the public Internet.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || sharedSpace.Contains(ip))
}

// CheckHost refuses an endpoint host that is an address literal and not
// public; names are checked when they are dialled.
func CheckHost(k *Keys) error {
	if ip, err := netip.ParseAddr(k.Endpoint.Hostname()); err == nil && !Public(ip) {
		return PrivateAddress{k.Endpoint.Host}
	}
	return nil
}

// NewClient returns the HTTP client to send with: a 30 s timeout, and,
// unless allowPrivate, a dialer that connects to public addresses only.
// An endpoint is a URL a browser handed over: it must not make the
// server post to the servers of its own network.
func NewClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || !Public(ip) {
				return PrivateAddress{address}
			}
			return nil
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Proxy = nil // the dialer's check is on the push service's address, not a proxy's
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// IsPrivateAddress reports whether err is a refusal of NewClient(false).
func IsPrivateAddress(err error) bool {
	var p PrivateAddress
	return errors.As(err, &p)
}
