package testutil

import (
	"testing"
	"time"
)

// Timeout bounds a wait. It is generous, for a loaded machine running the
// race detector: it ends a hung test, it does not measure speed.
const Timeout = 20 * time.Second

// pollInterval is how often a wait checks its condition.
const pollInterval = 5 * time.Millisecond

// WaitFor checks cond every few milliseconds until it reports true, and
// fails the test if it has not within Timeout. what names the awaited
// state in the failure ("channel X online").
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, Timeout, what, cond)
}

// WaitWithin is WaitFor with another bound than Timeout.
func WaitWithin(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}
