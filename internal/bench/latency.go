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

// Ledger accounts for the deliveries of a run. Subscribers are in groups,
// one per channel: subscriber sub listens on channel (first+sub) % groups,
// and message seq goes to channel seq % groups, to every member of its
// group. A fan-out is one group; a unicast has a group (a channel) per
// subscriber. first is 0 but in a fleet worker, whose subscribers are a
// slice of the fleet's starting at subscriber first.
type Ledger struct {
	subs, msgs int
	groups     int
	first      int
	sent       int // messages published, once known; msgs until then
	seen       *bitset
	unique     atomic.Int64
	dups       atomic.Int64
	stray      atomic.Int64 // not a message this subscriber was sent
	last       atomic.Int64 // unix ns of the latest first delivery
}

// NewLedger returns a ledger for msgs messages to subs subscribers: all of
// them (fanout), or each message to one subscriber (seq % subs).
func NewLedger(subs, msgs int, fanout bool) *Ledger {
	groups := subs
	if fanout {
		groups = 1
	}
	return NewGroupLedger(subs, msgs, groups)
}

// NewGroupLedger returns a ledger for msgs messages to subs subscribers in
// groups channels (1 <= groups <= subs).
func NewGroupLedger(subs, msgs, groups int) *Ledger {
	return newLedgerAt(subs, msgs, min(max(groups, 1), max(subs, 1)), 0)
}

// newLedgerAt returns a ledger for subscribers first to first+subs-1 of a
// run on groups channels. Unlike NewGroupLedger it keeps groups above
// subs: a worker may hold fewer subscribers than there are channels.
func newLedgerAt(subs, msgs, groups, first int) *Ledger {
	groups = max(groups, 1)
	n := msgs
	if groups < subs {
		n = subs * msgs
	}
	// With groups >= subs the subscribers are on distinct channels, so a
	// message has at most one of them and its seq alone is its bit.
	return &Ledger{subs: subs, msgs: msgs, groups: groups, first: first % groups, sent: msgs, seen: newBitset(n)}
}

// Sent sets how many messages were published, seq 0 to n-1, when a run
// that publishes for a time stopped short of msgs.
func (l *Ledger) Sent(n int) { l.sent = min(max(n, 0), l.msgs) }

// Expected returns how many deliveries the run should see.
func (l *Ledger) Expected() int64 {
	if l.groups == 1 {
		return int64(l.subs) * int64(l.sent)
	}
	if l.groups == l.subs {
		return int64(l.sent)
	}
	// Group k has subs/groups members, one more for the subs%groups
	// groups from first on, and gets sent/groups messages, one more for
	// k < sent%groups.
	var n int64
	for k := 0; k < l.groups; k++ {
		members := int64(l.subs / l.groups)
		if (k-l.first+l.groups)%l.groups < l.subs%l.groups {
			members++
		}
		msgs := int64(l.sent / l.groups)
		if k < l.sent%l.groups {
			msgs++
		}
		n += members * msgs
	}
	return n
}

// Record accounts for message seq received by subscriber sub at now and
// reports whether it was its first arrival there.
func (l *Ledger) Record(sub int, seq int64, now int64) bool {
	if seq < 0 || seq >= int64(l.msgs) || sub < 0 || sub >= l.subs || int(seq%int64(l.groups)) != (l.first+sub)%l.groups {
		l.stray.Add(1)
		return false
	}
	i := int(seq)
	if l.groups < l.subs {
		i += sub * l.msgs
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
