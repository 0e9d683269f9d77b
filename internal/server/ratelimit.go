package server

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// clientLimiter bounds how fast untrusted clients publish: a token bucket
// per client, keyed by the sender's public channel (so that one client's
// connections and REST calls share it) or by its connection. Buckets
// unused for a minute are forgotten: by then they are full again.
type clientLimiter struct {
	mu     sync.Mutex
	rate   rate.Limit // a reload may change it and burst (set)
	burst  int
	byKey  map[string]*clientBucket
	pruned time.Time

	refused atomic.Int64 // messages refused for going over the rate
}

type clientBucket struct {
	l    *rate.Limiter
	used time.Time
}

func newClientLimiter(perSecond, burst int) *clientLimiter {
	cl := &clientLimiter{byKey: make(map[string]*clientBucket)}
	cl.set(perSecond, burst)
	return cl
}

// set changes the rate and the burst, for the clients seen so far too.
func (cl *clientLimiter) set(perSecond, burst int) {
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.rate, cl.burst = rate.Limit(perSecond), max(burst, 1)
	for _, b := range cl.byKey {
		b.l.SetLimitAt(now, cl.rate)
		b.l.SetBurstAt(now, cl.burst)
	}
}

// allow reports whether key may publish n messages now.
func (cl *clientLimiter) allow(key string, n int) bool {
	if cl == nil {
		return true
	}
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.rate <= 0 {
		return true
	}
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
	if !b.l.AllowN(now, n) {
		cl.refused.Add(int64(n))
		return false
	}
	return true
}

// refusedCount returns how many messages allow refused.
func (cl *clientLimiter) refusedCount() int64 {
	if cl == nil {
		return 0
	}
	return cl.refused.Load()
}

// errTooFast is the answer to a client over its rate.
func (cl *clientLimiter) errTooFast() string {
	cl.mu.Lock()
	perSecond := int(cl.rate)
	cl.mu.Unlock()
	return "too many messages: a client may publish " + strconv.Itoa(perSecond) + " per second"
}

// senderKey is the key of a client's bucket: its public channel, else its
// connection.
func senderKey(public, conn string) string {
	if public != "" {
		return "public:" + public
	}
	return "conn:" + conn
}
