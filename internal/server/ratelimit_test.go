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
