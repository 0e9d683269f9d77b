package server

import "testing"

// Each client has its own bucket: its burst passes, the next message does
// not, and another client is not affected; no limit lets everything pass.
func TestClientLimiter(t *testing.T) {
	cl := newClientLimiter(1, 3)
	if !cl.allow("a", 3) || cl.allow("a", 1) {
		t.Fatal("a's burst of 3 then one more: want allowed, then refused")
	}
	if !cl.allow("b", 1) {
		t.Fatal("b refused for a's messages")
	}
	if cl.allow("c", 4) {
		t.Fatal("a batch past the burst allowed")
	}
	var off *clientLimiter
	if !off.allow("a", 1000) || !newClientLimiter(0, 0).allow("a", 1000) {
		t.Fatal("no limit refused")
	}
}

// set changes the limits of the clients seen before as of the new ones.
func TestClientLimiterSet(t *testing.T) {
	cl := newClientLimiter(100, 100)
	if !cl.allow("a", 50) {
		t.Fatal("50 of a burst of 100 refused")
	}
	cl.set(1, 2)
	if cl.allow("a", 3) || cl.allow("b", 3) {
		t.Error("3 messages allowed after the burst became 2")
	}
	if !cl.allow("b", 2) {
		t.Error("a new client's burst of 2 refused")
	}
	if got, want := cl.errTooFast(), "too many messages: a client may publish 1 per second"; got != want {
		t.Errorf("errTooFast = %q, want %q", got, want)
	}
	cl.set(0, 0)
	if !cl.allow("a", 1000) {
		t.Error("no limit refused")
	}
}

// What the limiter refuses is counted, by message, for the metrics.
func TestClientLimiterCountsRefused(t *testing.T) {
	cl := newClientLimiter(1, 2)
	if !cl.allow("a", 2) {
		t.Fatal("the burst refused")
	}
	if cl.allow("a", 3) {
		t.Fatal("over the burst allowed")
	}
	if n := cl.refusedCount(); n != 3 {
		t.Fatalf("refused %d; want 3", n)
	}
	if (*clientLimiter)(nil).refusedCount() != 0 {
		t.Fatal("a nil limiter refused something")
	}
}
