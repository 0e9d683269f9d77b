package app

import (
	"testing"
	"time"
)

// The trimmer releases once a burst is over, not while the process keeps
// allocating, not after less than an eighth of the live heap (or
// trimChurn), and not
// more often than trimSpacing.
func TestTrimmer(t *testing.T) {
	var r heapReading
	released := 0
	tr := &trimmer{read: func() heapReading { return r }, release: func() { released++ }}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	for _, step := range []struct {
		name string
		at   time.Duration
		r    heapReading // allocated is the running total
		want bool
	}{
		{"a connection storm", 0, heapReading{400 * mb, 30 * mb}, false},
		{"still busy", 2 * time.Second, heapReading{800 * mb, 30 * mb}, false},
		{"quiet after it", 4 * time.Second, heapReading{800*mb + 1000, 30 * mb}, true},
		{"another burst over, but too soon", 6 * time.Second, heapReading{900*mb + 2000, 30 * mb}, false},
		{"later", 20 * time.Second, heapReading{900*mb + 3000, 30 * mb}, true},
		{"less than trimChurn since", 40 * time.Second, heapReading{903 * mb, 1 * mb}, false},
		{"less than an eighth of the live heap since", 60 * time.Second, heapReading{960 * mb, 500 * mb}, false},
		{"steady traffic", 80 * time.Second, heapReading{1600 * mb, 500 * mb}, false},
		{"at rest after it", 82 * time.Second, heapReading{1600*mb + 10, 500 * mb}, true},
	} {
		r = step.r
		before := released
		if got := tr.look(start.Add(step.at)); got != step.want || (released > before) != step.want {
			t.Errorf("%s: released %v; want %v", step.name, got, step.want)
		}
	}
}
