package bench

import (
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]int64{50: 5, 90: 9, 99: 10, 100: 10, 10: 1, 11: 2, 0.01: 1} {
		if got := Percentile(s, p); got != want {
			t.Errorf("p%v = %d, want %d", p, got, want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("empty: %d", got)
	}
	if got := Percentile([]int64{7}, 99); got != 7 {
		t.Errorf("single: %d", got)
	}
}

func TestSummarize(t *testing.T) {
	var s []int64
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		s = append(s, int64(i)*int64(time.Microsecond))
	}
	l := Summarize(s)
	if l.Samples != 1000 || l.P50 != 0.5 || l.P90 != 0.9 || l.P99 != 0.99 || l.Max != 1 {
		t.Fatalf("got %+v", l)
	}
	if l := Summarize(nil); l != (Latency{}) {
		t.Fatalf("empty: %+v", l)
	}
}

func TestLedgerFanout(t *testing.T) {
	l := NewLedger(3, 100, true)
	if l.Expected() != 300 {
		t.Fatalf("expected %d", l.Expected())
	}
	for sub := 0; sub < 3; sub++ {
		for seq := int64(0); seq < 100; seq++ {
			if sub == 2 && seq == 50 {
				continue // lost
			}
			if !l.Record(sub, seq, 10+seq) {
				t.Fatalf("first delivery of %d to %d not counted", seq, sub)
			}
		}
	}
	if l.Record(1, 7, 1000) {
		t.Fatal("a duplicate counted as first")
	}
	l.Record(0, 100, 1) // beyond the run
	l.Record(3, 1, 1)   // no such subscriber
	l.Record(0, -1, 1)
	if l.Delivered() != 299 || l.Duplicates() != 1 || l.Stray() != 3 {
		t.Fatalf("delivered %d dups %d stray %d", l.Delivered(), l.Duplicates(), l.Stray())
	}
	if l.LastDelivery() != 109 {
		t.Fatalf("last delivery %d, want 109 (duplicates do not count)", l.LastDelivery())
	}
}

func TestLedgerUnicast(t *testing.T) {
	l := NewLedger(4, 10, false)
	if l.Expected() != 10 {
		t.Fatalf("expected %d", l.Expected())
	}
	for seq := int64(0); seq < 10; seq++ {
		l.Record(int(seq%4), seq, seq)
	}
	l.Record(1, 0, 0) // message 0 went to subscriber 0
	if l.Delivered() != 10 || l.Stray() != 1 || l.Duplicates() != 0 {
		t.Fatalf("delivered %d dups %d stray %d", l.Delivered(), l.Duplicates(), l.Stray())
	}
}

func TestLedgerConcurrent(t *testing.T) {
	// Subscribers record from their own goroutines; every bit is one word
	// shared with 63 others.
	const subs, msgs = 8, 1000
	l := NewLedger(subs, msgs, true)
	var wg sync.WaitGroup
	for sub := 0; sub < subs; sub++ {
		for rep := 0; rep < 2; rep++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := int64(0); seq < msgs; seq++ {
					l.Record(sub, seq, seq)
				}
			}()
		}
	}
	wg.Wait()
	if l.Delivered() != subs*msgs || l.Duplicates() != subs*msgs {
		t.Fatalf("delivered %d dups %d", l.Delivered(), l.Duplicates())
	}
}

func TestLedgerGroups(t *testing.T) {
	// 7 subscribers on 3 channels (3, 2 and 2 members), 10 messages
	// round-robin (4, 3 and 3 of them): 4*3 + 3*2 + 3*2 deliveries.
	l := NewGroupLedger(7, 10, 3)
	if l.Expected() != 24 {
		t.Fatalf("expected %d, want 24", l.Expected())
	}
	for sub := 0; sub < 7; sub++ {
		for seq := int64(0); seq < 10; seq++ {
			if int(seq%3) == sub%3 {
				if !l.Record(sub, seq, seq) {
					t.Fatalf("first delivery of %d to %d not counted", seq, sub)
				}
			}
		}
	}
	l.Record(0, 1, 1) // message 1 went to channel 1
	l.Record(3, 0, 1) // again
	if l.Delivered() != 24 || l.Stray() != 1 || l.Duplicates() != 1 {
		t.Fatalf("delivered %d dups %d stray %d", l.Delivered(), l.Duplicates(), l.Stray())
	}
	// A run that stopped early expects only what it published.
	l.Sent(4) // 2, 1 and 1 messages
	if l.Expected() != 2*3+1*2+1*2 {
		t.Fatalf("expected %d after 4 sent", l.Expected())
	}
	// The ends: one channel is a fan-out, a channel each a unicast, and
	// more channels than subscribers is a unicast too.
	for _, c := range []struct{ subs, msgs, groups int }{{5, 8, 1}, {5, 8, 5}, {5, 8, 9}} {
		l := NewGroupLedger(c.subs, c.msgs, c.groups)
		want := int64(c.subs * c.msgs)
		if c.groups > 1 {
			want = int64(c.msgs)
		}
		if l.Expected() != want {
			t.Errorf("%+v: expected %d, want %d", c, l.Expected(), want)
		}
		l.Sent(3)
		if c.groups == 1 && l.Expected() != int64(c.subs*3) || c.groups > 1 && l.Expected() != 3 {
			t.Errorf("%+v: expected %d after 3 sent", c, l.Expected())
		}
	}
}

// A fleet's workers hold slices of its subscribers, some smaller than the
// channel count: their expected deliveries add up to the whole run's, and
// each counts exactly the deliveries of its own subscribers.
func TestLedgerSlices(t *testing.T) {
	const subs, msgs, groups = 23, 17, 7
	whole := NewGroupLedger(subs, msgs, groups)
	var sum, delivered int64
	for _, sl := range [][2]int{{0, 5}, {5, 13}, {13, 16}, {16, 23}} {
		first, n := sl[0], sl[1]-sl[0]
		l := newLedgerAt(n, msgs, groups, first)
		for j := 0; j < n; j++ {
			for seq := int64(0); seq < msgs; seq++ {
				if int(seq%groups) == (first+j)%groups {
					if !l.Record(j, seq, 1) {
						t.Fatalf("slice %v: delivery of %d to %d not counted", sl, seq, j)
					}
					whole.Record(first+j, seq, 1)
				}
			}
		}
		l.Record(0, int64((first+1)%groups), 1) // another channel's message
		if l.Stray() != 1 || l.Duplicates() != 0 || l.Delivered() != l.Expected() {
			t.Fatalf("slice %v: delivered %d of %d, stray %d, dups %d", sl, l.Delivered(), l.Expected(), l.Stray(), l.Duplicates())
		}
		l.Sent(9)
		sum += l.Expected()
		delivered += l.Delivered()
	}
	if delivered != whole.Expected() || whole.Delivered() != whole.Expected() {
		t.Fatalf("slices delivered %d, the whole %d of %d", delivered, whole.Delivered(), whole.Expected())
	}
	whole.Sent(9)
	if sum != whole.Expected() {
		t.Fatalf("slices expect %d after 9 sent, the whole run %d", sum, whole.Expected())
	}
}
