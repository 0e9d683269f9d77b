package spawn

import "syscall"

// childAttr makes a started program die with the process that started it,
// rather than linger holding its ports.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
