//go:build !linux

package spawn

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
