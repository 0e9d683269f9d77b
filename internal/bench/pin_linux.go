package bench

import (
	"errors"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinSelf moves the bench, every thread of it, onto one CPU, and runs its
// goroutines on one OS thread at a time (GOMAXPROCS 1) to match. It
// returns the function that gives back the CPUs and the GOMAXPROCS it had.
// Threads started later inherit the affinity of the thread that starts
// them, so all of the process stays there.
func PinSelf(cpu int) (restore func(), err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := setThreadsAffinity(&one); err != nil {
		_ = setThreadsAffinity(&old)
		return nil, err
	}
	procs := runtime.GOMAXPROCS(1)
	return func() {
		runtime.GOMAXPROCS(procs)
		_ = setThreadsAffinity(&old)
	}, nil
}

// setThreadsAffinity sets the affinity of every thread of the process:
// sched_setaffinity applies to one thread only. It goes over the threads
// until a pass finds none it has not set, since the runtime may start one
// meanwhile.
func setThreadsAffinity(set *unix.CPUSet) error {
	done := map[int]bool{}
	for range 20 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		fresh := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			fresh = true
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return nil
}
