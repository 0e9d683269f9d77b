package bench

import (
	"math/bits"
	"time"
)

// Histogram counts latencies in buckets of at most 1/128 (0.8%) of their
// value, from a microsecond up: the fleet's workers each measure their own
// share of the deliveries, and their histograms, unlike their percentiles,
// add up to the whole run's. A bucket is reported by its lower bound, so a
// percentile read from it is at most 0.8% under the sample's value. The
// zero value is empty and ready to use; JSON carries it between processes.
type Histogram struct {
	Counts map[int]int64 `json:"counts"` // bucket -> samples
	Max    int64         `json:"max_ns"` // the largest sample, exactly
	N      int64         `json:"n"`
}

// histLinear is how many microseconds have a bucket of their own; above,
// each power of two is cut in histLinear/2 buckets.
const histLinear = 256

// histBucket returns the bucket of ns.
func histBucket(ns int64) int {
	us := uint64(max(ns, 0)) / 1000
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - 8 // us>>shift is in [128, 256)
	return histLinear + (shift-1)*(histLinear/2) + int(us>>shift) - histLinear/2
}

// histLower returns the smallest value, in ns, of bucket b.
func histLower(b int) int64 {
	if b < histLinear {
		return int64(b) * 1000
	}
	b -= histLinear
	shift := b/(histLinear/2) + 1
	mant := uint64(b%(histLinear/2) + histLinear/2)
	return int64(mant<<shift) * 1000
}

// Add counts one sample, in ns.
func (h *Histogram) Add(ns int64) {
	if h.Counts == nil {
		h.Counts = map[int]int64{}
	}
	h.Counts[histBucket(ns)]++
	h.N++
	h.Max = max(h.Max, ns)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o Histogram) {
	if h.Counts == nil {
		h.Counts = map[int]int64{}
	}
	for b, n := range o.Counts {
		h.Counts[b] += n
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Percentile returns the p-th percentile (0 < p <= 100) by nearest rank,
// as the lower bound of its bucket, in ns; 0 for no samples.
func (h *Histogram) Percentile(p float64) int64 {
	if h.N == 0 {
		return 0
	}
	rank := int64(p / 100 * float64(h.N))
	if float64(rank) < p/100*float64(h.N) {
		rank++
	}
	rank = min(max(rank, 1), h.N)
	top := histBucket(h.Max)
	var seen int64
	for b := 0; b <= top; b++ {
		if seen += h.Counts[b]; seen >= rank {
			return min(histLower(b), h.Max)
		}
	}
	return h.Max
}

// Latency summarises the histogram as Summarize does a list of samples.
func (h *Histogram) Latency() Latency {
	ms := func(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
	l := Latency{Samples: int(h.N)}
	if h.N == 0 {
		return l
	}
	l.P50 = ms(h.Percentile(50))
	l.P90 = ms(h.Percentile(90))
	l.P99 = ms(h.Percentile(99))
	l.Max = ms(h.Max)
	return l
}
