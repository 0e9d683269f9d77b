package server

import (
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimiter bounds how fast untrusted clients publish: a token bucket
// per client, keyed by the sender's public channel (so that one client's
// connections and REST calls share it) or by its connection. Buckets
// unused for a minute are forgotten: by then they are full again.
type clientLimiter struct {
	rate  rate.Limit
	burst int

	mu     sync.Mutex
	byKey  map[string]*clientBucket
	pruned time.Time
}

type clientBucket struct {
	l    *rate.Limiter
	used time.Time
}

func newClientLimiter(perSecond, burst int) *clientLimiter {
	return &clientLimiter{rate: rate.Limit(perSecond), burst: max(burst, 1), byKey: make(map[string]*clientBucket)}
}

// allow reports whether key may publish n messages now.
func (cl *clientLimiter) allow(key string, n int) bool {
	if cl == nil || cl.rate <= 0 {
		return true
	}
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if now.Sub(cl.pruned) > time.Minute {
		cl.pruned = now
		for k, b := range cl.byKey {
			if now.Sub(b.used) > time.Minute {
				delete(cl.byKey, k)
			}
		}
	}
	b := cl.byKey[key]
	if b == nil {
		b = &clientBucket{l: rate.NewLimiter(cl.rate, cl.burst)}
		cl.byKey[key] = b
	}
	b.used = now
	return b.l.AllowN(now, n)
}

// errTooFast is the answer to a client over its rate.
func (cl *clientLimiter) errTooFast() string {
	return "too many messages: a client may publish " + strconv.Itoa(int(cl.rate)) + " per second"
}

// senderKey is the key of a client's bucket: its public channel, else its
// connection.
func senderKey(public, conn string) string {
	if public != "" {
		return "public:" + public
	}
	return "conn:" + conn
}
