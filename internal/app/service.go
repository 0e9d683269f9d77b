package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"
)

// WaitReady returns once the process serves: Run accepts on every
// listener and the engine stores and delivers (what the readiness route
// reports). Until then it tells waiting why, at most once a second. It
// returns ctx's error if ctx ends first.
func (a *App) WaitReady(ctx context.Context, waiting func(error)) error {
	select {
	case <-a.server.Serving():
	case <-ctx.Done():
		return ctx.Err()
	}
	delay := 20 * time.Millisecond
	var told time.Time
	for {
		try, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.engine.Ready(try)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if waiting != nil && time.Since(told) >= time.Second {
			told = time.Now()
			waiting(err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, time.Second)
	}
}

// Alive checks that the process still serves HTTP: it makes a request to
// each of its listeners over loopback, which any answer (a 404 for the
// path it asks) proves alive. It is what a watchdog asks before telling
// the supervisor all is well. ctx bounds it.
func (a *App) Alive(ctx context.Context) error {
	client := a.selfClient()
	for i, addr := range a.server.Addrs() {
		tcp, ok := addr.(*net.TCPAddr)
		if !ok {
			continue
		}
		host := tcp.IP
		if host.IsUnspecified() {
			host = net.IPv6loopback
			if tcp.IP.To4() != nil {
				host = net.IPv4(127, 0, 0, 1)
			}
		}
		scheme := "http"
		if a.cfg.Servers[i].SSL != nil {
			scheme = "https"
		}
		u := scheme + "://" + net.JoinHostPort(host.String(), fmt.Sprint(tcp.Port)) + "/.pushpull-watchdog"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("servers[%d] (%s): %w", i, addr, err)
		}
		resp.Body.Close()
	}
	return nil
}

func (a *App) selfClient() *http.Client {
	a.selfOnce.Do(func() {
		a.self = &http.Client{
			Transport: &http.Transport{
				DisableKeepAlives: true,
				Proxy:             nil,
				// The process asks itself, on the address it bound: the
				// certificate names the public host, not that one, and
				// the handshake is what is checked.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return a.self
}
