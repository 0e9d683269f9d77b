package bench

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Buckets are contiguous and ordered, and each holds values within 0.8%
// of its lower bound.
func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, ns := range []int64{0, 999, 1000, 255_999, 256_000, 257_999, 258_000, 1_000_000, 3_141_592, 1 << 40} {
		b := histBucket(ns)
		if b < prev {
			t.Fatalf("bucket of %d is %d, below the previous %d", ns, b, prev)
		}
		prev = b
		lo := histLower(b)
		if lo > ns || float64(ns-lo) > float64(ns)/128+1000 {
			t.Errorf("%d ns in bucket %d from %d", ns, b, lo)
		}
		if histBucket(lo) != b || (b > 0 && histBucket(lo-1) != b-1) {
			t.Errorf("bucket %d does not start at %d", b, lo)
		}
	}
}

// Merged histograms give the percentiles of all their samples within a
// bucket's width, whatever the split.
func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	samples := make([]int64, 10000)
	var parts [3]Histogram
	for i := range samples {
		samples[i] = int64(r.ExpFloat64() * 2e6) // around 2 ms
		parts[i%3].Add(samples[i])
	}
	var all Histogram
	for _, p := range parts {
		// As a worker sends it.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Histogram
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		all.Merge(q)
	}
	want := Summarize(samples)
	got := all.Latency()
	near := func(a, b float64) bool { return a <= b && b-a <= b/128+0.001 }
	if got.Samples != want.Samples || got.Max != want.Max || !near(got.P50, want.P50) || !near(got.P90, want.P90) || !near(got.P99, want.P99) {
		t.Fatalf("merged %+v, samples %+v", got, want)
	}
	var empty Histogram
	if l := empty.Latency(); l != (Latency{}) {
		t.Fatalf("empty: %+v", l)
	}
}
