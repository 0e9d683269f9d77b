package bench

import "syscall"

// childAttr makes a spawned server or Redis die with the bench rather than
// linger holding its ports.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
