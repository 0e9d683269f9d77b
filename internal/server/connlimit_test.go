package server

import (
	"slices"
	"testing"
)

// The connection past the limit on a private channel, when it names the
// channel with a public id, ends the channel's oldest connection, once;
// one without a public id only adds to the count.
func TestConnLimit(t *testing.T) {
	l := newConnLimit(2)
	var evicted []string
	add := func(name string, entries ...connEntry) *limitedConn {
		return l.add(entries, func() { evicted = append(evicted, name) })
	}
	a, b := connEntry{channel: "a", public: true}, connEntry{channel: "b", public: true}
	bare := connEntry{channel: "a"}

	first := add("first", a, b)
	add("second", bare)
	add("third", bare) // no public id: counted, evicts nothing
	if l.count("a") != 3 || len(evicted) != 0 {
		t.Fatalf("count %d, evicted %q; want 3 and none", l.count("a"), evicted)
	}
	add("fourth", a, a) // named twice: counted once
	// The fourth ends the oldest: first, which leaves b too.
	if !slices.Equal(evicted, []string{"first"}) || l.count("a") != 3 || l.count("b") != 0 {
		t.Fatalf("evicted %q, count a %d b %d; want first, 3, 0", evicted, l.count("a"), l.count("b"))
	}
	l.remove(first) // its own end, after the eviction: nothing more
	fifth := add("fifth", a)
	if !slices.Equal(evicted, []string{"first", "second"}) || l.count("a") != 3 {
		t.Fatalf("evicted %q, count %d", evicted, l.count("a"))
	}
	l.remove(fifth)
	l.remove(nil)
	if l.count("a") != 2 {
		t.Fatalf("count %d after a removal; want 2", l.count("a"))
	}

	// Without a limit nothing is counted.
	if c := newConnLimit(0).add([]connEntry{a}, func() { t.Error("evicted without a limit") }); c != nil {
		t.Errorf("counted %v without a limit", c)
	}
	// A channel that empties is forgotten.
	l2 := newConnLimit(1)
	l2.remove(l2.add([]connEntry{a, b}, func() {}))
	if len(l2.byChannel) != 0 {
		t.Errorf("channels kept: %v", l2.byChannel)
	}

	// A limit of one: each newcomer ends the one before it, and the
	// newcomer is counted even though the eviction emptied the channel.
	var ended []string
	one := newConnLimit(1)
	for _, name := range []string{"x", "y", "z"} {
		one.add([]connEntry{a}, func() { ended = append(ended, name) })
		if one.count("a") != 1 {
			t.Fatalf("after %s: count %d; want 1", name, one.count("a"))
		}
	}
	if !slices.Equal(ended, []string{"x", "y"}) {
		t.Errorf("limit 1: ended %q; want x, y", ended)
	}
}

// A lowered limit applies from the next connection on: each one with a
// public id ends the channel's oldest.
func TestConnLimitLowered(t *testing.T) {
	l := newConnLimit(4)
	var ended []string
	a := connEntry{channel: "a", public: true}
	for _, name := range []string{"p", "q", "r"} {
		l.add([]connEntry{a}, func() { ended = append(ended, name) })
	}
	l.setMax(2)
	l.add([]connEntry{a}, func() { ended = append(ended, "t") })
	if !slices.Equal(ended, []string{"p"}) || l.count("a") != 3 {
		t.Errorf("after lowering 4 to 2 with 3 connections: ended %q, count %d; want p and 3", ended, l.count("a"))
	}
	l.setMax(0)
	if l.limited() || l.add([]connEntry{a}, func() { t.Error("evicted without a limit") }) != nil {
		t.Error("a limit of 0 still counts")
	}
}
