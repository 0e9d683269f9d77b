package bench

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Latency summarises delivery latencies, in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// Summarize sorts samples (nanoseconds) in place and returns their
// percentiles.
func Summarize(samples []int64) Latency {
	slices.Sort(samples)
	ms := func(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
	l := Latency{Samples: len(samples)}
	if len(samples) == 0 {
		return l
	}
	l.P50 = ms(Percentile(samples, 50))
	l.P90 = ms(Percentile(samples, 90))
	l.P99 = ms(Percentile(samples, 99))
	l.Max = ms(samples[len(samples)-1])
	return l
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample with at least p% of the samples
// at or below it. It returns 0 for no samples.
func Percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// bitset records which deliveries arrived, safe for concurrent use.
type bitset struct{ words []atomic.Uint64 }

func newBitset(n int) *bitset { return &bitset{words: make([]atomic.Uint64, (n+63)/64)} }

// set marks bit i and reports whether it was clear before.
func (b *bitset) set(i int) bool {
	mask := uint64(1) << (i % 64)
	return b.words[i/64].Or(mask)&mask == 0
}

// Ledger accounts for the deliveries of a run. In a fan-out every
// subscriber expects every message; in a unicast message seq goes to
// subscriber seq % subscribers only.
type Ledger struct {
	subs, msgs int
	fanout     bool
	seen       *bitset
	unique     atomic.Int64
	dups       atomic.Int64
	stray      atomic.Int64 // not a message this subscriber was sent
	last       atomic.Int64 // unix ns of the latest first delivery
}

// NewLedger returns a ledger for msgs messages to subs subscribers.
func NewLedger(subs, msgs int, fanout bool) *Ledger {
	n := msgs
	if fanout {
		n = subs * msgs
	}
	return &Ledger{subs: subs, msgs: msgs, fanout: fanout, seen: newBitset(n)}
}

// Expected returns how many deliveries the run should see.
func (l *Ledger) Expected() int64 {
	if l.fanout {
		return int64(l.subs) * int64(l.msgs)
	}
	return int64(l.msgs)
}

// Record accounts for message seq received by subscriber sub at now and
// reports whether it was its first arrival there.
func (l *Ledger) Record(sub int, seq int64, now int64) bool {
	if seq < 0 || seq >= int64(l.msgs) || sub < 0 || sub >= l.subs {
		l.stray.Add(1)
		return false
	}
	i := int(seq)
	if l.fanout {
		i += sub * l.msgs
	} else if int(seq%int64(l.subs)) != sub {
		l.stray.Add(1)
		return false
	}
	if !l.seen.set(i) {
		l.dups.Add(1)
		return false
	}
	l.unique.Add(1)
	for {
		last := l.last.Load()
		if now <= last || l.last.CompareAndSwap(last, now) {
			break
		}
	}
	return true
}

// Delivered returns the number of distinct deliveries so far.
func (l *Ledger) Delivered() int64 { return l.unique.Load() }

// Duplicates returns how many deliveries arrived more than once.
func (l *Ledger) Duplicates() int64 { return l.dups.Load() }

// Stray returns how many deliveries no subscriber should have received.
func (l *Ledger) Stray() int64 { return l.stray.Load() }

// LastDelivery returns the unix ns time of the latest first delivery.
func (l *Ledger) LastDelivery() int64 { return l.last.Load() }
