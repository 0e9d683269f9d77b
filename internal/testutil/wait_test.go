package testutil

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// A condition that comes true ends the wait; one that never does fails the
// test at the deadline, naming what was awaited.
func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		WaitFor(t, "a second", func() bool { return time.Since(start) >= time.Second })

		var failed recorder
		done := make(chan struct{})
		go func() {
			defer close(done)
			WaitWithin(&failed, time.Minute, "never", func() bool { return false })
		}()
		<-done
		if want := "waited 1m0s for never"; failed.fatal != want {
			t.Errorf("failure %q; want %q", failed.fatal, want)
		}
	})
}

// recorder is a test that records its fatal failure.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
