package backend

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Redis is the State shared by every process on one Redis. Keys, under
// the prefix given to NewRedis:
//
//	owner:<owner>  hash: cur, prev = "id|public|startMs|endMs"; expires
//	               when the current channel's storage time ends
//	due            sorted set: owner -> end of its current channel (ms)
//	watch:<tag>    sorted set: user -> end of the watch (ms); expires with
//	               its last watch
//	seen:<user>    unix ms the user was last seen online; kept 30 days
//
// where <owner> is "user:<id>" or "shared".
type Redis struct {
	c      rueidis.Client
	prefix string
}

// seenTTL bounds how long a last-seen time is kept.
const seenTTL = 30 * 24 * time.Hour

// NewRedis returns a state on client c, with every key under prefix. In
// Redis Cluster the prefix must hold a hash tag ("{pushpull}"), because
// Issue updates two keys in one script.
func NewRedis(c rueidis.Client, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) ownerKey(name string) string { return r.prefix + "owner:" + name }
func (r *Redis) dueKey() string              { return r.prefix + "due" }
func (r *Redis) watchKey(tag string) string  { return r.prefix + "watch:" + tag }
func (r *Redis) seenKey(user string) string  { return r.prefix + "seen:" + user }

// Load implements State.
func (r *Redis) Load(ctx context.Context, owners []string, _ time.Time) (map[string]Owner, error) {
	cmds := make(rueidis.Commands, len(owners))
	for i, name := range owners {
		cmds[i] = r.c.B().Hmget().Key(r.ownerKey(name)).Field("cur", "prev").Build()
	}
	out := make(map[string]Owner, len(owners))
	for i, res := range r.c.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err != nil {
			return nil, err
		}
		o, ok, err := decodeOwner(vals)
		if err != nil {
			return nil, err
		}
		if ok {
			out[owners[i]] = o
		}
	}
	return out, nil
}

// decodeOwner reads the [cur, prev] reply of HMGET or of the issue script.
func decodeOwner(vals []rueidis.RedisMessage) (Owner, bool, error) {
	if len(vals) < 2 {
		return Owner{}, false, errBadRecord
	}
	cur, err := vals[0].ToString()
	if rueidis.IsRedisNil(err) || cur == "" {
		return Owner{}, false, nil
	}
	if err != nil {
		return Owner{}, false, err
	}
	var o Owner
	if o.Current, err = decodeChannel(cur); err != nil {
		return Owner{}, false, err
	}
	if prev, err := vals[1].ToString(); err == nil && prev != "" {
		p, err := decodeChannel(prev)
		if err != nil {
			return Owner{}, false, err
		}
		o.Previous = &p
	}
	return o, true, nil
}

// issueScript installs ARGV[3] as the current channel of owner KEYS[1]
// unless its current channel is still open at ARGV[2] (ms); the replaced
// channel becomes prev. It returns {cur, prev, rotated}.
var issueScript = rueidis.NewLuaScript(`
local cur = redis.call('HGET', KEYS[1], 'cur')
local now = tonumber(ARGV[2])
if cur then
  local e = tonumber(string.match(cur, '|(%d+)$'))
  if e and e > now then
    return {cur, redis.call('HGET', KEYS[1], 'prev') or '', 0}
  end
  redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'prev', cur)
else
  redis.call('HSET', KEYS[1], 'cur', ARGV[3])
  redis.call('HDEL', KEYS[1], 'prev')
  cur = ''
end
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local rotated = 0
if cur ~= '' then rotated = 1 end
return {ARGV[3], cur, rotated}
`)

// Issue implements State.
func (r *Redis) Issue(ctx context.Context, name string, fresh Channel, now time.Time, keep time.Duration) (Owner, bool, error) {
	vals, err := issueScript.Exec(ctx, r.c, []string{r.ownerKey(name), r.dueKey()}, []string{
		name,
		strconv.FormatInt(now.UnixMilli(), 10),
		fresh.encode(),
		strconv.FormatInt(fresh.End.UnixMilli(), 10),
		strconv.FormatInt(fresh.Start.Add(keep).UnixMilli(), 10),
	}).ToArray()
	if err != nil {
		return Owner{}, false, err
	}
	if len(vals) != 3 {
		return Owner{}, false, errBadRecord
	}
	o, ok, err := decodeOwner(vals)
	if err != nil || !ok {
		return Owner{}, false, errBadRecord
	}
	rotated, _ := vals[2].AsInt64()
	return o, rotated == 1, nil
}

// Due implements State.
func (r *Redis) Due(ctx context.Context, now time.Time, n int) ([]string, error) {
	cmd := r.c.B().Zrange().Key(r.dueKey()).Min("-inf").Max(strconv.FormatInt(now.UnixMilli(), 10)).Byscore().Limit(0, int64(n)).Build()
	return r.c.Do(ctx, cmd).AsStrSlice()
}

// undueScript removes ARGV[1] from the due set if its score is still at
// most ARGV[2]: a rotation by another process in between set a later one.
var undueScript = rueidis.NewLuaScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`)

// Undue implements State.
func (r *Redis) Undue(ctx context.Context, name string, now time.Time) error {
	return undueScript.Exec(ctx, r.c, []string{r.dueKey()}, []string{name, strconv.FormatInt(now.UnixMilli(), 10)}).Error()
}

// watchScript sets user ARGV[1]'s watch of tag KEYS[1] to end at ARGV[2]
// (ms); with ARGV[3] = "1" only a watch alive at ARGV[4] is renewed. It
// keeps the key as long as its longest watch and returns whether it set.
var watchScript = rueidis.NewLuaScript(`
if ARGV[3] == '1' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not s or tonumber(s) <= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
`)

func (r *Redis) watch(ctx context.Context, user string, tags []string, now, until time.Time, onlyLive bool) ([]bool, error) {
	only := "0"
	if onlyLive {
		only = "1"
	}
	args := []string{user, strconv.FormatInt(until.UnixMilli(), 10), only, strconv.FormatInt(now.UnixMilli(), 10)}
	stmts := make([]rueidis.LuaExec, len(tags))
	for i, t := range tags {
		stmts[i] = rueidis.LuaExec{Keys: []string{r.watchKey(t)}, Args: args}
	}
	out := make([]bool, len(tags))
	for i, res := range watchScript.ExecMulti(ctx, r.c, stmts...) {
		n, err := res.AsInt64()
		if err != nil {
			return nil, err
		}
		out[i] = n == 1
	}
	return out, nil
}

// Watch implements State.
func (r *Redis) Watch(ctx context.Context, user string, tags []string, until time.Time) error {
	_, err := r.watch(ctx, user, tags, time.Now(), until, false)
	return err
}

// Extend implements State.
func (r *Redis) Extend(ctx context.Context, user string, tags []string, now, until time.Time) ([]bool, error) {
	return r.watch(ctx, user, tags, now, until, true)
}

// Unwatch implements State.
func (r *Redis) Unwatch(ctx context.Context, user string, tags []string) error {
	cmds := make(rueidis.Commands, len(tags))
	for i, t := range tags {
		cmds[i] = r.c.B().Zrem().Key(r.watchKey(t)).Member(user).Build()
	}
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

// Watchers implements State.
func (r *Redis) Watchers(ctx context.Context, tags []string, now time.Time) ([]string, error) {
	cmds := make(rueidis.Commands, len(tags))
	after := "(" + strconv.FormatInt(now.UnixMilli(), 10)
	for i, t := range tags {
		cmds[i] = r.c.B().Zrange().Key(r.watchKey(t)).Min(after).Max("+inf").Byscore().Build()
	}
	seen := make(map[string]bool)
	var out []string
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		users, err := res.AsStrSlice()
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// Seen implements State.
func (r *Redis) Seen(ctx context.Context, users []string, t time.Time) error {
	cmds := make(rueidis.Commands, len(users))
	ms := strconv.FormatInt(t.UnixMilli(), 10)
	for i, u := range users {
		cmds[i] = r.c.B().Set().Key(r.seenKey(u)).Value(ms).Px(seenTTL).Build()
	}
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

// LastSeen implements State.
func (r *Redis) LastSeen(ctx context.Context, users []string) (map[string]time.Time, error) {
	cmds := make(rueidis.Commands, len(users))
	for i, u := range users {
		cmds[i] = r.c.B().Get().Key(r.seenKey(u)).Build()
	}
	out := make(map[string]time.Time)
	for i, res := range r.c.DoMulti(ctx, cmds...) {
		ms, err := res.AsInt64()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[users[i]] = time.UnixMilli(ms)
	}
	return out, nil
}

// Close implements State.
func (r *Redis) Close() { r.c.Close() }
