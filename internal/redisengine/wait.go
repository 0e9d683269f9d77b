package redisengine

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// script is a Lua script with its source and digest, so that it can be
// sent beside another command on one connection (WAIT after a publish),
// which rueidis.Lua.Exec cannot.
type script struct {
	*rueidis.Lua
	src, sha string
}

func newScript(src string) *script {
	h := sha1.Sum([]byte(src))
	return &script{Lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(h[:])}
}

// execWaiting runs s and then WAIT on the same connection, so that the
// publish is answered only once Options.WaitReplicas replicas of the
// master that ran it have it: a failover then promotes a replica that
// holds every message answered. The wait is bounded by ctx's deadline.
// The script's result is returned with an error if too few replicas
// acknowledged in time: the message is stored on the master, and may
// still be delivered, but is not answered as safe.
func (e *Engine) execWaiting(ctx context.Context, c *connection, s *script, keys, args []string) (rueidis.RedisResult, error) {
	ms := int64(1000)
	if d, ok := ctx.Deadline(); ok {
		// Leave the reply time to come back before ctx ends.
		ms = max(time.Until(d).Milliseconds()*3/4, 1)
	}
	// A dedicated connection, so that WAIT follows the script on the
	// connection that ran it; a redirection (the slot moved) fails the
	// publish, which did not run, rather than being followed.
	var rs []rueidis.RedisResult
	_ = c.client.Dedicated(func(dc rueidis.DedicatedClient) error {
		wait := dc.B().Wait().Numreplicas(int64(e.opt.WaitReplicas)).Timeout(ms).Build()
		rs = dc.DoMulti(ctx, dc.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait)
		if err := rs[0].Error(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			wait = dc.B().Wait().Numreplicas(int64(e.opt.WaitReplicas)).Timeout(ms).Build()
			rs = dc.DoMulti(ctx, dc.B().Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait)
		}
		return nil
	})
	if rs[0].Error() != nil {
		return rs[0], nil // the script's own error
	}
	n, err := rs[1].AsInt64()
	if err != nil {
		return rs[0], fmt.Errorf("wait for replicas: %w", err)
	}
	if n < int64(e.opt.WaitReplicas) {
		return rs[0], fmt.Errorf("stored, but on %d of %d replicas in time", n, e.opt.WaitReplicas)
	}
	return rs[0], nil
}
