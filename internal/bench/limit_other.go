//go:build !unix

package bench

import "math"

// RaiseFileLimit has nothing to raise where there is no RLIMIT_NOFILE.
func RaiseFileLimit() (uint64, error) { return math.MaxUint64, nil }
