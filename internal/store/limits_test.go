package store_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

func saveBody(t *testing.T, s *store.Memory, body string, channels ...string) *protocol.Message {
	t.Helper()
	m := &protocol.Message{Channels: channels, Body: []byte(body)}
	if err := s.Save(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A channel past its message bound loses its oldest messages; a message
// of two channels stays in the other.
func TestChannelMessageLimit(t *testing.T) {
	s := store.NewMemory(store.DefaultTTLs, nil)
	s.SetLimits(store.Limits{ChannelMessages: 3})
	a, b := chanID(1), chanID(2)
	both := save(t, s, 0, a, b)
	var ms []*protocol.Message
	for range 4 {
		ms = append(ms, save(t, s, 0, a))
	}
	sameMessages(t, "a keeps its newest three", since(t, s, "", a), ms[1:]...)
	sameMessages(t, "b still has the message it shares with a", since(t, s, "", b), both)
	if u := s.Usage(); u.Messages != 4 || u.Evicted != 1 {
		t.Errorf("usage %+v; want 4 messages kept, 1 evicted", u)
	}
}

// A channel past its byte bound loses its oldest messages, but always
// keeps the newest.
func TestChannelByteLimit(t *testing.T) {
	s := store.NewMemory(store.DefaultTTLs, nil)
	s.SetLimits(store.Limits{ChannelBytes: 10_000})
	a := chanID(1)
	big := `{"x":"` + strings.Repeat("y", 4000) + `"}`
	var ms []*protocol.Message
	for range 5 {
		ms = append(ms, saveBody(t, s, big, a))
	}
	sameMessages(t, "the newest that fit", since(t, s, "", a), ms[3:]...)
	huge := saveBody(t, s, `{"x":"`+strings.Repeat("y", 20_000)+`"}`, a)
	sameMessages(t, "one message over the bound alone", since(t, s, "", a), huge)
}

// The store past its byte budget drops the oldest messages of all
// channels first; what it keeps stays within the budget, whatever is
// published.
func TestStoreByteBudget(t *testing.T) {
	const budget = 200_000
	s := store.NewMemory(store.DefaultTTLs, nil)
	s.SetLimits(store.Limits{Bytes: budget})
	r := rand.New(rand.NewPCG(1, 2))
	var all []*protocol.Message
	for i := range 2000 {
		body := `{"n":"` + strings.Repeat("z", r.IntN(2000)) + `"}`
		all = append(all, saveBody(t, s, body, chanID(i%7), chanID(7+i%3)))
		if u := s.Usage(); u.Bytes > budget {
			t.Fatalf("after %d saves the store holds %d bytes, over its budget of %d", i+1, u.Bytes, budget)
		}
	}
	// What is kept is the newest: a suffix of what was saved.
	var kept []*protocol.Message
	for c := range 10 {
		kept = append(kept, since(t, s, "", chanID(c))...)
	}
	oldest := kept[0].ID
	for _, m := range kept {
		oldest = min(oldest, m.ID)
	}
	n := 0
	for _, m := range all {
		if m.ID >= oldest {
			n++
		}
	}
	if u := s.Usage(); u.Messages != n || int(u.Evicted) != len(all)-n {
		t.Errorf("usage %+v; want the %d newest kept and %d evicted", u, n, len(all)-n)
	}
}
