package redisengine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/engine"
)

// User presence (protocol 5), shared by every process:
//
//	presence:<user>  sorted set: member "<processUniqueId>:<connection>",
//	                 score = unix ms until which the connection counts;
//	                 each process re-scores its own members every
//	                 onlineTTL, so a crashed process's connections lapse
//	                 after onlineTTL + onlineDelta
//	lastseen:<user>  unix seconds the user's last connection ended,
//	                 kept lastSeenTTL
//
// A user is online while presence:<user> holds a member scored in the
// future. The scripts drop lapsed members before counting, so "first
// connection" and "last connection" are decided atomically in Redis.

const lastSeenTTL = engine.LastSeenTTL

func (l layout) presence(user string) string { return l.prefix + "presence:" + user }
func (l layout) lastSeen(user string) string { return l.prefix + "lastseen:" + user }

// KEYS: presence. ARGV: now ms, member, until ms, key TTL ms.
var connectLua = rueidis.NewLuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
`)

// KEYS: presence, lastseen. ARGV: now ms, member, now s, last-seen TTL ms.
var disconnectLua = rueidis.NewLuaScript(`
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if removed == 0 then
  return -1
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return redis.call('ZCARD', KEYS[1])
`)

// presenceSet is this process's users' connections, re-scored in Redis
// every onlineTTL.
type presenceSet struct {
	mu    sync.Mutex
	conns map[string]string // member -> user
}

func (e *Engine) member(conn string) string { return e.opt.ProcessUniqueID + ":" + conn }

func (e *Engine) presenceUntil(now time.Time) string {
	return strconv.FormatInt(now.Add(e.opt.OnlineTTL+e.opt.OnlineDelta).UnixMilli(), 10)
}

// UserConnected implements engine.Presence.
func (e *Engine) UserConnected(ctx context.Context, user, conn string) (bool, error) {
	c, err := e.client()
	if err != nil {
		return false, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	now := time.Now()
	m := e.member(conn)
	e.presence.mu.Lock()
	if e.presence.conns == nil {
		e.presence.conns = make(map[string]string)
	}
	e.presence.conns[m] = user
	e.presence.mu.Unlock()
	n, err := connectLua.Exec(ctx, c.client, []string{c.keys.of(user).presence(user)}, []string{
		strconv.FormatInt(now.UnixMilli(), 10), m, e.presenceUntil(now),
		strconv.FormatInt((e.opt.OnlineTTL + e.opt.OnlineDelta).Milliseconds(), 10),
	}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("redis presence: %w", err)
	}
	return n == 1, nil
}

// UserDisconnected implements engine.Presence.
func (e *Engine) UserDisconnected(ctx context.Context, user, conn string) (bool, error) {
	m := e.member(conn)
	e.presence.mu.Lock()
	delete(e.presence.conns, m)
	e.presence.mu.Unlock()
	c, err := e.client()
	if err != nil {
		return false, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	now := time.Now()
	n, err := disconnectLua.Exec(ctx, c.client, []string{c.keys.of(user).presence(user), c.keys.of(user).lastSeen(user)}, []string{
		strconv.FormatInt(now.UnixMilli(), 10), m, strconv.FormatInt(now.Unix(), 10),
		strconv.FormatInt(lastSeenTTL.Milliseconds(), 10),
	}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("redis presence: %w", err)
	}
	return n == 0, nil
}

// LastSeen implements engine.Presence.
func (e *Engine) LastSeen(ctx context.Context, users []string) (map[string]int64, error) {
	out := make(map[string]int64, len(users))
	if len(users) == 0 {
		return out, nil
	}
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	now := time.Now()
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	cmds := make(rueidis.Commands, 0, 2*len(users))
	for _, u := range users {
		cmds = append(cmds,
			c.client.B().Zcount().Key(c.keys.of(u).presence(u)).Min("("+nowMS).Max("+inf").Build(),
			c.client.B().Get().Key(c.keys.of(u).lastSeen(u)).Build())
	}
	rs := c.client.DoMulti(ctx, cmds...)
	for i, u := range users {
		n, err := rs[2*i].AsInt64()
		if err != nil {
			return nil, fmt.Errorf("redis last seen: %w", err)
		}
		if n > 0 {
			out[u] = 0
			continue
		}
		s, err := rs[2*i+1].AsInt64()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redis last seen: %w", err)
		}
		out[u] = max(0, now.Unix()-s)
	}
	return out, nil
}

// refreshPresence re-scores this process's connections.
func (e *Engine) refreshPresence(ctx context.Context) error {
	e.presence.mu.Lock()
	if len(e.presence.conns) == 0 {
		e.presence.mu.Unlock()
		return nil
	}
	byUser := make(map[string][]string)
	for m, u := range e.presence.conns {
		byUser[u] = append(byUser[u], m)
	}
	e.presence.mu.Unlock()
	c, err := e.client()
	if err != nil {
		return err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	until := e.presenceUntil(time.Now())
	score, _ := strconv.ParseFloat(until, 64)
	ttl := e.opt.OnlineTTL + e.opt.OnlineDelta
	cmds := make(rueidis.Commands, 0, 2*len(byUser))
	for u, members := range byUser {
		z := c.client.B().Zadd().Key(c.keys.of(u).presence(u)).ScoreMember()
		for _, m := range members {
			z = z.ScoreMember(score, m)
		}
		cmds = append(cmds, z.Build(), c.client.B().Pexpire().Key(c.keys.of(u).presence(u)).Milliseconds(ttl.Milliseconds()).Build())
	}
	for _, r := range c.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}
