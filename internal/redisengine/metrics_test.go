package redisengine

import (
	"errors"
	"testing"

	"github.com/redis/rueidis"
)

// A nil reply and a script's first NOSCRIPT are not failures of a call.
func TestFailed(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{rueidis.Nil, false},
		{errors.New("dial tcp: refused"), true},
	} {
		if got := failed(c.err); got != c.want {
			t.Errorf("failed(%v) = %v; want %v", c.err, got, c.want)
		}
	}
}
