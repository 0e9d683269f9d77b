//go:build !linux

package bench

import "errors"

// PinSelf needs sched_setaffinity, which only Linux has here.
func PinSelf(int) (func(), error) { return nil, errors.New("pinning needs Linux") }
