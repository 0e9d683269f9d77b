//go:build !linux

package bench

// reactor is available on Linux only; elsewhere each connection has its own
// reading goroutine.
type reactor struct{}

func newReactor(*Swarm) *reactor { return nil }

func (*reactor) add(*conn) bool { return false }

func (*reactor) stop() {}
