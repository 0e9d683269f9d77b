package main

import "syscall"

// childAttr makes a per-file process stop when its parent dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// abstractSockets: the per-file processes notify their parent on
// abstract unix sockets (no file to make or remove).
const abstractSockets = true
