//go:build unix

package bench

import "syscall"

// RaiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit, so the
// bench can hold tens of thousands of sockets; a server it starts inherits
// the raised limit. It returns the limit in force.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return uint64(lim.Cur), nil // int64 on some systems
}
