package app

import (
	"testing"
	"time"
)

// The trimmer releases once a burst is over, not while the process keeps
// allocating, not after a little, and not more often than trimSpacing.
func TestTrimmer(t *testing.T) {
	var allocated uint64
	released := 0
	tr := &trimmer{allocated: func() uint64 { return allocated }, release: func() { released++ }}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	for _, step := range []struct {
		name      string
		at        time.Duration
		allocated uint64 // the running total
		want      bool
	}{
		{"a connection storm", 0, 400 * mb, false},
		{"still busy", 2 * time.Second, 800 * mb, false},
		{"quiet after it", 4 * time.Second, 800*mb + 1000, true},
		{"another burst over, but too soon", 10 * time.Second, 900*mb + 2000, false},
		{"a minute later", 70 * time.Second, 900*mb + 3000, true},
		{"little allocated since", 140 * time.Second, 902 * mb, false},
		{"steady traffic", 280 * time.Second, 1000 * mb, false},
		{"at rest after it", 282 * time.Second, 1000*mb + 10, true},
	} {
		allocated = step.allocated
		before := released
		if got := tr.look(start.Add(step.at)); got != step.want || (released > before) != step.want {
			t.Errorf("%s: released %v; want %v", step.name, got, step.want)
		}
	}
}
