package store_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// clock is the store's time source in tests: it moves only when told to.
type clock struct{ t time.Time }

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func chanID(n int) string { return fmt.Sprintf("%032x", n) }

var ctx = context.Background()

func save(t *testing.T, s *store.Memory, expiry uint32, channels ...string) *protocol.Message {
	t.Helper()
	m := &protocol.Message{Channels: channels, Body: []byte(`{}`), Expiry: expiry}
	if err := s.Save(ctx, m); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return m
}

func since(t *testing.T, s *store.Memory, after string, channels ...string) []*protocol.Message {
	t.Helper()
	got, err := s.Since(ctx, channels, after)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	return got
}

func last(t *testing.T, s *store.Memory, channels ...string) string {
	t.Helper()
	got, err := s.Last(ctx, channels)
	if err != nil {
		t.Fatalf("Last: %v", err)
	}
	return got
}

// sameMessages compares by identity: Since must hand back the messages kept.
func sameMessages(t *testing.T, what string, got []*protocol.Message, want ...*protocol.Message) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == want[i]
	}
	if !ok {
		t.Errorf("%s = %v, want %v", what, mids(got), mids(want))
	}
}

func mids(ms []*protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MID
	}
	return out
}

func checkLen(t *testing.T, s *store.Memory, messages, channels int) {
	t.Helper()
	if m, c := s.Len(); m != messages || c != channels {
		t.Errorf("Len = %d messages, %d channels; want %d, %d", m, c, messages, channels)
	}
}

func TestLifetime(t *testing.T) {
	ttl := store.TTLs{Message: 100 * time.Second, Channel: time.Hour}
	tests := []struct {
		expiry uint32
		want   time.Duration
	}{
		{0, 100 * time.Second},
		{1, time.Second},
		{99, 99 * time.Second},
		{100, 100 * time.Second},
		{101, 100 * time.Second},
		{86400, 100 * time.Second},
		{math.MaxUint32, 100 * time.Second},
	}
	for _, tt := range tests {
		if got := ttl.Lifetime(tt.expiry); got != tt.want {
			t.Errorf("Lifetime(%d) = %v, want %v", tt.expiry, got, tt.want)
		}
	}
	if got := store.DefaultTTLs.Lifetime(0); got != 24*time.Hour {
		t.Errorf("default Lifetime(0) = %v, want 24h", got)
	}
	for _, tt := range []struct {
		def  time.Duration
		want time.Duration
	}{{store.Transient, 0}, {30 * time.Second, 30 * time.Second}, {time.Hour, 100 * time.Second}} {
		ttl.Default = tt.def
		if got := ttl.Lifetime(0); got != tt.want {
			t.Errorf("Default %v: Lifetime(0) = %v, want %v", tt.def, got, tt.want)
		}
		if got := ttl.Lifetime(5); got != 5*time.Second {
			t.Errorf("Default %v: Lifetime(5) = %v, want 5s", tt.def, got)
		}
	}
}

// With Default Transient, a message without an expiry gets the next id
// and is kept nowhere; one with an expiry is kept as before.
func TestMemoryTransient(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: time.Hour, Channel: time.Hour, Default: store.Transient}, c.now)
	ch := chanID(1)
	kept := save(t, s, 60, ch)
	live := save(t, s, 0, ch)
	if live.ID != kept.ID+1 || !live.Expires.IsZero() || live.Expired(c.now().Add(48*time.Hour)) {
		t.Fatalf("transient message: id %d after %d, expires %v; want the next id and no expiry", live.ID, kept.ID, live.Expires)
	}
	got, err := s.Since(ctx, []string{ch}, "")
	if err != nil || len(got) != 1 || got[0].MID != kept.MID {
		t.Fatalf("Since = %v, %v; want only the kept message", got, err)
	}
	if last, _ := s.Last(ctx, []string{ch}); last != kept.MID {
		t.Errorf("Last = %q; want the kept message's %q", last, kept.MID)
	}
	if u := s.Usage(); u.Messages != 1 {
		t.Errorf("usage %+v; want one message kept", u)
	}
}

func TestMemorySaveAssigns(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: time.Hour, Channel: 2 * time.Hour}, c.now)
	start := c.t.Unix()
	if s.Start() != start {
		t.Fatalf("Start = %d, want the clock's %d", s.Start(), start)
	}
	c.advance(90 * time.Second) // the start stays the time the store was made
	prev := ""
	for i := uint64(1); i <= 12; i++ {
		c.advance(time.Millisecond)
		expiry := uint32(i * 600) // some above the message TTL
		m := save(t, s, expiry, chanID(int(i%3)))
		if m.ID != i {
			t.Errorf("message %d: ID = %d", i, m.ID)
		}
		if want := protocol.FormatMID(start, i); m.MID != want {
			t.Errorf("message %d: MID = %s, want %s", i, m.MID, want)
		}
		if m.MID <= prev {
			t.Errorf("message %d: MID %s does not sort after %s", i, m.MID, prev)
		}
		prev = m.MID
		if !m.Created.Equal(c.t) {
			t.Errorf("message %d: Created = %v, want %v", i, m.Created, c.t)
		}
		want := c.t.Add(min(time.Duration(expiry)*time.Second, time.Hour))
		if !m.Expires.Equal(want) {
			t.Errorf("message %d (expiry %d): Expires = %v, want %v", i, expiry, m.Expires, want)
		}
	}
	checkLen(t, s, 12, 3)
}

func TestMemoryNilClock(t *testing.T) {
	before := time.Now()
	s := store.NewMemory(store.DefaultTTLs, nil)
	if s.Start() < before.Unix() || s.Start() > time.Now().Unix() {
		t.Errorf("Start = %d, want the current time", s.Start())
	}
}

func TestMemorySince(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.DefaultTTLs, c.now)
	a, b, x := chanID(1), chanID(2), chanID(3)
	m1 := save(t, s, 0, a)
	m2 := save(t, s, 0, b)
	m3 := save(t, s, 0, a, b)
	m4 := save(t, s, 0, x)
	m5 := save(t, s, 0, b, a)
	m6 := save(t, s, 0, x, a)

	tests := []struct {
		name     string
		after    string
		channels []string
		want     []*protocol.Message
	}{
		{"all of a", "", []string{a}, []*protocol.Message{m1, m3, m5, m6}},
		{"all of a and b", "", []string{a, b}, []*protocol.Message{m1, m2, m3, m5, m6}},
		{"order of channels does not matter", "", []string{b, a}, []*protocol.Message{m1, m2, m3, m5, m6}},
		{"a channel twice", "", []string{a, a}, []*protocol.Message{m1, m3, m5, m6}},
		{"after m1", m1.MID, []string{a, b}, []*protocol.Message{m2, m3, m5, m6}},
		{"after m2 on a", m2.MID, []string{a}, []*protocol.Message{m3, m5, m6}},
		{"after m3", m3.MID, []string{a, b, x}, []*protocol.Message{m4, m5, m6}},
		{"after m5 on b", m5.MID, []string{b}, nil},
		{"after the last", m6.MID, []string{a, b, x}, nil},
		{"invalid mid is absent", "null", []string{x}, []*protocol.Message{m4, m6}},
		{"short mid is absent", "123", []string{x}, []*protocol.Message{m4, m6}},
		{"mid of an earlier start", protocol.FormatMID(s.Start()-1, 1e15), []string{a}, []*protocol.Message{m1, m3, m5, m6}},
		{"mid of a later start", protocol.FormatMID(s.Start()+1, 0), []string{a, b, x}, nil},
		{"mid of this start, counter 0", protocol.FormatMID(s.Start(), 0), []string{b}, []*protocol.Message{m2, m3, m5}},
		{"mid of this start, counter ahead", protocol.FormatMID(s.Start(), 1e15), []string{a}, nil},
		{"unknown channel", "", []string{chanID(99)}, nil},
		{"no channels", "", nil, nil},
	}
	for _, tt := range tests {
		sameMessages(t, tt.name, since(t, s, tt.after, tt.channels...), tt.want...)
	}
	// Reading does not consume.
	sameMessages(t, "again", since(t, s, m1.MID, a, b), m2, m3, m5, m6)
}

func TestMemoryLast(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: time.Minute, Channel: time.Hour}, c.now)
	a, b := chanID(1), chanID(2)
	if got := last(t, s, a, b); got != "" {
		t.Errorf("Last of empty store = %q", got)
	}
	m1 := save(t, s, 0, a)
	m2 := save(t, s, 10, b) // expires first
	if got := last(t, s, a); got != m1.MID {
		t.Errorf("Last(a) = %s, want %s", got, m1.MID)
	}
	if got := last(t, s, a, b); got != m2.MID {
		t.Errorf("Last(a, b) = %s, want %s", got, m2.MID)
	}
	if got := last(t, s, chanID(9)); got != "" {
		t.Errorf("Last of an unknown channel = %q", got)
	}
	m3 := save(t, s, 10, a)
	if got := last(t, s, a, b); got != m3.MID {
		t.Errorf("Last(a, b) = %s, want %s", got, m3.MID)
	}
	c.advance(10 * time.Second) // m2 and m3 are gone; m1 is still there
	if got := last(t, s, a, b); got != m1.MID {
		t.Errorf("Last(a, b) after the short ones expired = %s, want %s", got, m1.MID)
	}
	if got := last(t, s, b); got != "" {
		t.Errorf("Last(b) after its message expired = %q", got)
	}
	c.advance(50 * time.Second)
	if got := last(t, s, a, b); got != "" {
		t.Errorf("Last after everything expired = %q", got)
	}
}

func TestMemoryReserve(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: time.Minute, Channel: time.Hour}, c.now)
	a := chanID(1)
	m1 := save(t, s, 0, a)
	r := &protocol.Message{Channels: []string{a}, Body: []byte(`{}`), Expiry: 5}
	c.advance(time.Second)
	if err := s.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 2 || r.MID != protocol.FormatMID(s.Start(), 2) || !r.Created.Equal(c.t) || !r.Expires.Equal(c.t.Add(5*time.Second)) {
		t.Errorf("Reserve assigned ID %d, MID %s, Created %v, Expires %v", r.ID, r.MID, r.Created, r.Expires)
	}
	m3 := save(t, s, 0, a)
	if m3.ID != 3 {
		t.Errorf("Save after Reserve: ID = %d, want 3", m3.ID)
	}
	sameMessages(t, "Since everything", since(t, s, "", a), m1, m3)
	sameMessages(t, "Since the reserved mid", since(t, s, r.MID, a), m3)
	if got := last(t, s, a); got != m3.MID {
		t.Errorf("Last = %s, want %s", got, m3.MID)
	}
	checkLen(t, s, 2, 1)
}

func TestMemoryExpiry(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: 10 * time.Second, Channel: time.Hour}, c.now)
	a, b := chanID(1), chanID(2)
	m1 := save(t, s, 0, a, b)
	c.advance(time.Second)
	m2 := save(t, s, 30, a) // capped at the message TTL

	c.advance(9*time.Second - time.Nanosecond)
	sameMessages(t, "just before m1 expires", since(t, s, "", a, b), m1, m2)
	s.Expire()
	checkLen(t, s, 2, 2)

	c.advance(time.Nanosecond)
	sameMessages(t, "when m1 expires", since(t, s, "", a, b), m2)
	if got := last(t, s, b); got != "" {
		t.Errorf("Last(b) = %q after its only message expired", got)
	}
	checkLen(t, s, 2, 2) // nothing is freed before Expire runs
	s.Expire()
	checkLen(t, s, 1, 1)

	c.advance(time.Second)
	sameMessages(t, "when m2 expires", since(t, s, "", a, b))
	s.Expire()
	checkLen(t, s, 0, 0)
}

// TestMemoryMixedTTLs: short-lived messages behind long-lived ones leave
// holes in a channel's index; Expire must still free them all.
func TestMemoryMixedTTLs(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: 100 * time.Second, Channel: time.Hour}, c.now)
	a, b := chanID(1), chanID(2)
	var long, short []*protocol.Message
	for i := range 50 {
		if i%5 == 0 {
			long = append(long, save(t, s, 0, a, b))
		} else {
			short = append(short, save(t, s, uint32(1+i%3), a))
		}
	}
	checkLen(t, s, 50, 2)

	c.advance(time.Second)
	s.Expire()
	var want []*protocol.Message
	for i, m := range append(append([]*protocol.Message(nil), long...), short...) {
		if i < len(long) || m.Expiry > 1 {
			want = append(want, m)
		}
	}
	sortByID(want)
	sameMessages(t, "after 1s", since(t, s, "", a), want...)
	checkLen(t, s, len(want), 2)

	c.advance(2 * time.Second)
	s.Expire()
	sameMessages(t, "after 3s on a", since(t, s, "", a), long...)
	sameMessages(t, "after 3s on b", since(t, s, "", b), long...)
	sameMessages(t, "after 3s, after the second long one", since(t, s, long[1].MID, a), long[2:]...)
	if got := last(t, s, a); got != long[len(long)-1].MID {
		t.Errorf("Last = %s, want %s", got, long[len(long)-1].MID)
	}
	checkLen(t, s, len(long), 2)

	// New messages after the holes are found in order.
	m := save(t, s, 1, a)
	sameMessages(t, "after a new one", since(t, s, long[len(long)-1].MID, a), m)

	c.advance(100 * time.Second)
	s.Expire()
	sameMessages(t, "at the end", since(t, s, "", a, b))
	checkLen(t, s, 0, 0)
}

func sortByID(ms []*protocol.Message) {
	slices.SortFunc(ms, func(x, y *protocol.Message) int { return cmp.Compare(x.ID, y.ID) })
}

func TestMemoryChannelTTL(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: 100 * time.Second, Channel: 10 * time.Second}, c.now)
	a, b := chanID(1), chanID(2)
	m1 := save(t, s, 0, a)
	c.advance(5 * time.Second)
	m2 := save(t, s, 0, a, b) // b's index starts here, a's keeps its expiry
	c.advance(5*time.Second - time.Nanosecond)
	sameMessages(t, "before a's index expires", since(t, s, "", a), m1, m2)

	c.advance(time.Nanosecond)
	sameMessages(t, "when a's index expires", since(t, s, "", a))
	sameMessages(t, "b's index lives on", since(t, s, "", a, b), m2)
	if got := last(t, s, a); got != "" {
		t.Errorf("Last(a) = %q after its index expired", got)
	}

	c.advance(time.Second)
	m3 := save(t, s, 0, a) // a later write starts a new index
	sameMessages(t, "the new index", since(t, s, "", a), m3)
	sameMessages(t, "the new index after an old mid", since(t, s, m1.MID, a), m3)
	if got := last(t, s, a); got != m3.MID {
		t.Errorf("Last(a) = %s, want %s", got, m3.MID)
	}
	s.Expire()
	checkLen(t, s, 3, 2) // m1 and m2 wait for their own expiry

	c.advance(4 * time.Second) // b's index expires 10s after m2
	s.Expire()
	sameMessages(t, "b after its index expired", since(t, s, "", b))
	checkLen(t, s, 3, 1)

	c.advance(100 * time.Second)
	s.Expire()
	checkLen(t, s, 0, 0)
}

// TestMemoryChannelTTLWithoutExpire: an index past its TTL is replaced by
// the next write even when Expire has not run.
func TestMemoryChannelTTLWithoutExpire(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: 100 * time.Second, Channel: 10 * time.Second}, c.now)
	a := chanID(1)
	save(t, s, 0, a)
	c.advance(10 * time.Second)
	m2 := save(t, s, 0, a)
	c.advance(9 * time.Second)
	sameMessages(t, "the new index", since(t, s, "", a), m2)
}

// Run frees expired messages on its own, at its first tick past their
// lifetime. The bubble's clock moves only when every goroutine in it
// waits, so the ticks come exactly on time.
func TestMemoryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := store.NewMemory(store.TTLs{Message: time.Second, Channel: time.Hour}, time.Now)
		save(t, s, 0, chanID(1))
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			s.Run(ctx, 100*time.Millisecond)
			close(done)
		}()
		time.Sleep(900 * time.Millisecond)
		synctest.Wait()
		checkLen(t, s, 1, 1)
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		checkLen(t, s, 0, 0)
		cancel()
		<-done
	})
}

// TestMemoryDuplicateChannels: a message naming a channel twice is still
// one message on it, returned once and freed when it expires.
func TestMemoryDuplicateChannels(t *testing.T) {
	c := newClock()
	s := store.NewMemory(store.TTLs{Message: time.Second, Channel: time.Hour}, c.now)
	a, b := chanID(1), chanID(2)
	m := save(t, s, 0, a, b, a)
	sameMessages(t, "Since(a)", since(t, s, "", a), m)
	sameMessages(t, "Since(a, b)", since(t, s, "", a, b), m)
	c.advance(time.Second)
	s.Expire()
	checkLen(t, s, 0, 0)
}
