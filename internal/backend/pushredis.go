package backend

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// The Redis PushStore. Keys, under the state's prefix:
//
//	push:subs:<user>        hash: subscription id -> PushSub (JSON)
//	push:q                  sorted set: item id -> when it is due (ms); a
//	                        claimed item's score is its lease's end, so an
//	                        item whose process died comes due again
//	push:items              hash: item id -> PushItem (JSON)
//	push:created            sorted set: item id -> when it was queued (ms)
//	push:claim              hash: item id -> number of its last claim
//	push:leased             sorted set: item id -> end of its claim (ms)
//	push:tag:<user>|<tag>   set of the ids of user's items with that tag
//	                        or sub-tag (ids of items gone are dropped when
//	                        met)
//
// Every script touches keys under the one prefix, which in Redis Cluster
// holds a hash tag: they are in one slot.

func (r *Redis) subsKey(user string) string     { return r.prefix + "push:subs:" + user }
func (r *Redis) pushKey(name string) string     { return r.prefix + "push:" + name }
func (r *Redis) tagKey(user, tag string) string { return r.prefix + "push:tag:" + user + "|" + tag }

// tagTTL keeps a tag index at most as long as an item may live.
const tagTTL = 30 * 24 * time.Hour

// AddSub implements PushStore.
func (r *Redis) AddSub(ctx context.Context, s PushSub, max int) error {
	b, _ := json.Marshal(s)
	key := r.subsKey(s.User)
	if err := r.c.Do(ctx, r.c.B().Hset().Key(key).FieldValue().FieldValue(s.ID, string(b)).Build()).Error(); err != nil {
		return err
	}
	subs, err := r.userSubs(ctx, s.User)
	if err != nil || len(subs) <= max {
		return err
	}
	slices.SortFunc(subs, func(a, b PushSub) int { return a.Created.Compare(b.Created) })
	var drop []string
	for _, o := range subs[:len(subs)-max] {
		drop = append(drop, o.ID)
	}
	return r.c.Do(ctx, r.c.B().Hdel().Key(key).Field(drop...).Build()).Error()
}

func (r *Redis) userSubs(ctx context.Context, user string) ([]PushSub, error) {
	m, err := r.c.Do(ctx, r.c.B().Hgetall().Key(r.subsKey(user)).Build()).AsStrMap()
	if err != nil {
		return nil, err
	}
	out := make([]PushSub, 0, len(m))
	for _, v := range m {
		var s PushSub
		if json.Unmarshal([]byte(v), &s) == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// RemoveSub implements PushStore.
func (r *Redis) RemoveSub(ctx context.Context, user, id string) (bool, error) {
	n, err := r.c.Do(ctx, r.c.B().Hdel().Key(r.subsKey(user)).Field(id).Build()).AsInt64()
	return n == 1, err
}

// Subs implements PushStore.
func (r *Redis) Subs(ctx context.Context, users []string, appID string) (map[string][]PushSub, error) {
	cmds := make(rueidis.Commands, len(users))
	for i, u := range users {
		cmds[i] = r.c.B().Hgetall().Key(r.subsKey(u)).Build()
	}
	out := make(map[string][]PushSub)
	for i, res := range r.c.DoMulti(ctx, cmds...) {
		m, err := res.AsStrMap()
		if err != nil {
			return nil, err
		}
		for _, v := range m {
			var s PushSub
			if json.Unmarshal([]byte(v), &s) == nil && (appID == "" || s.AppID == appID) {
				out[users[i]] = append(out[users[i]], s)
			}
		}
		slices.SortFunc(out[users[i]], func(a, b PushSub) int { return a.Created.Compare(b.Created) })
	}
	return out, nil
}

// Sub implements PushStore.
func (r *Redis) Sub(ctx context.Context, user, id string) (PushSub, bool, error) {
	v, err := r.c.Do(ctx, r.c.B().Hget().Key(r.subsKey(user)).Field(id).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return PushSub{}, false, nil
	}
	if err != nil {
		return PushSub{}, false, err
	}
	var s PushSub
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return PushSub{}, false, errBadRecord
	}
	return s, true, nil
}

// dropItem is the Lua that removes item id from every key but the tag
// sets (KEYS 1-5: q, items, created, claim, leased).
const dropItem = `
local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
end
local function leased(id, now)
  local l = redis.call('ZSCORE', KEYS[5], id)
  return l and tonumber(l) > now
end
`

// enqueueScript adds item ARGV[1] (JSON ARGV[2], due ARGV[3], queued
// ARGV[4]) unless the queue holds ARGV[5] items. With a tag (KEYS[6])
// it first drops the unclaimed items of subscription ARGV[6] with the
// same tag (ARGV[8]); it indexes the item under its tag and sub-tag sets
// (KEYS[6], KEYS[7]; ARGV[10], noTag, for none), kept ARGV[9] ms.
// ARGV[7] is now (ms). It returns -1 when the queue is full.
var enqueueScript = rueidis.NewLuaScript(dropItem + `
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
local now = tonumber(ARGV[7])
local none = ARGV[10]
if KEYS[6] ~= none and ARGV[8] ~= '' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    local j = redis.call('HGET', KEYS[2], id)
    if not j then
      redis.call('SREM', KEYS[6], id)
    else
      local o = cjson.decode(j)
      if o.sub == ARGV[6] and o.tag == ARGV[8] and not leased(id, now) then
        drop(id)
        redis.call('SREM', KEYS[6], id)
      end
    end
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
for i = 6, 7 do
  if KEYS[i] ~= none then
    redis.call('SADD', KEYS[i], ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[9])
  end
end
return 1
`)

func (r *Redis) queueKeys() []string {
	return []string{r.pushKey("q"), r.pushKey("items"), r.pushKey("created"), r.pushKey("claim"), r.pushKey("leased")}
}

// noTag stands for an item's missing tag or sub-tag among a script's
// keys: a key under the prefix, so that in Redis Cluster every key is in
// the prefix's slot. Scripts get it as their last argument too.
func (r *Redis) noTag() string { return r.pushKey("-") }

func (r *Redis) itemTagKeys(it PushItem) (tag, subTag string) {
	tag, subTag = r.noTag(), r.noTag()
	if it.Tag != "" {
		tag = r.tagKey(it.User, it.Tag)
	}
	if it.SubTag != "" && it.SubTag != it.Tag {
		subTag = r.tagKey(it.User, it.SubTag)
	}
	return tag, subTag
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Enqueue implements PushStore.
func (r *Redis) Enqueue(ctx context.Context, items []PushItem, max int) error {
	stmts := make([]rueidis.LuaExec, len(items))
	for i, it := range items {
		b, _ := json.Marshal(it)
		tag, subTag := r.itemTagKeys(it)
		stmts[i] = rueidis.LuaExec{
			Keys: append(r.queueKeys(), tag, subTag),
			Args: []string{it.ID, string(b), ms(it.Due), ms(it.Created), strconv.Itoa(max), it.Sub, ms(it.Created), it.Tag,
				strconv.FormatInt(tagTTL.Milliseconds(), 10), r.noTag()},
		}
	}
	for _, res := range enqueueScript.ExecMulti(ctx, r.c, stmts...) {
		n, err := res.AsInt64()
		if err != nil {
			return err
		}
		if n == -1 {
			return ErrQueueFull
		}
	}
	return nil
}

// claimScript hands out up to ARGV[3] items due at ARGV[1], leased until
// ARGV[2]: {json, claim, json, claim, ...}.
var claimScript = rueidis.NewLuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local j = redis.call('HGET', KEYS[2], id)
  if j then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('ZADD', KEYS[5], ARGV[2], id)
    out[#out + 1] = j
    out[#out + 1] = redis.call('HINCRBY', KEYS[4], id, 1)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// Claim implements PushStore.
func (r *Redis) Claim(ctx context.Context, now time.Time, lease time.Duration, n int) ([]PushItem, error) {
	vals, err := claimScript.Exec(ctx, r.c, r.queueKeys(), []string{ms(now), ms(now.Add(lease)), strconv.Itoa(n)}).ToArray()
	if err != nil {
		return nil, err
	}
	var out []PushItem
	for i := 0; i+1 < len(vals); i += 2 {
		j, err := vals[i].ToString()
		if err != nil {
			return nil, err
		}
		var it PushItem
		if err := json.Unmarshal([]byte(j), &it); err != nil {
			continue // not ours to read: left to come due again
		}
		if it.claim, err = vals[i+1].AsInt64(); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// finishScript removes item ARGV[1] if its last claim is ARGV[2] (a
// process whose lease ran out finishes nothing).
var finishScript = rueidis.NewLuaScript(dropItem + `
local c = redis.call('HGET', KEYS[4], ARGV[1])
if c and c ~= ARGV[2] then return 0 end
drop(ARGV[1])
for i = 6, 7 do
  if KEYS[i] ~= ARGV[3] then redis.call('SREM', KEYS[i], ARGV[1]) end
end
return 1
`)

// Finish implements PushStore.
func (r *Redis) Finish(ctx context.Context, it PushItem) error {
	tag, subTag := r.itemTagKeys(it)
	return finishScript.Exec(ctx, r.c, append(r.queueKeys(), tag, subTag), []string{it.ID, strconv.FormatInt(it.claim, 10), r.noTag()}).Error()
}

// rescheduleScript puts item ARGV[1] back (JSON ARGV[3], due ARGV[4]) if
// its last claim is ARGV[2] and it was not cancelled meanwhile.
var rescheduleScript = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
`)

// Reschedule implements PushStore.
func (r *Redis) Reschedule(ctx context.Context, it PushItem) error {
	b, _ := json.Marshal(it)
	return rescheduleScript.Exec(ctx, r.c, r.queueKeys(), []string{it.ID, strconv.FormatInt(it.claim, 10), string(b), ms(it.Due)}).Error()
}

// cancelScript drops the unclaimed items indexed under tag set KEYS[6]
// at ARGV[1] (ms) and returns how many.
var cancelScript = rueidis.NewLuaScript(dropItem + `
local now = tonumber(ARGV[1])
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    redis.call('SREM', KEYS[6], id)
  elseif not leased(id, now) then
    drop(id)
    redis.call('SREM', KEYS[6], id)
    n = n + 1
  end
end
return n
`)

// Cancel implements PushStore.
func (r *Redis) Cancel(ctx context.Context, user string, tags []string) (int, error) {
	stmts := make([]rueidis.LuaExec, len(tags))
	for i, t := range tags {
		stmts[i] = rueidis.LuaExec{Keys: append(r.queueKeys(), r.tagKey(user, t)), Args: []string{ms(time.Now())}}
	}
	total := 0
	for _, res := range cancelScript.ExecMulti(ctx, r.c, stmts...) {
		n, err := res.AsInt64()
		if err != nil {
			return total, err
		}
		total += int(n)
	}
	return total, nil
}

// QueueStats implements PushStore.
func (r *Redis) QueueStats(ctx context.Context) (int, time.Time, error) {
	res := r.c.DoMulti(ctx,
		r.c.B().Zcard().Key(r.pushKey("q")).Build(),
		r.c.B().Zrange().Key(r.pushKey("created")).Min("0").Max("0").Withscores().Build())
	n, err := res[0].AsInt64()
	if err != nil {
		return 0, time.Time{}, err
	}
	scores, err := res[1].AsZScores()
	if err != nil || len(scores) == 0 {
		return int(n), time.Time{}, err
	}
	return int(n), time.UnixMilli(int64(scores[0].Score)), nil
}
