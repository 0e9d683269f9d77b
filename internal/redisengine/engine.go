package redisengine

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

// Options configure an Engine. Zero durations take the defaults noted.
type Options struct {
	// Client addresses Redis: InitAddress (host:port, or a unix socket
	// path), Username, Password, SelectDB, TLSConfig, and
	// Sentinel.MasterSet to reach the master through the sentinels listed
	// in InitAddress. A Redis Cluster is recognised from its seeds.
	Client rueidis.ClientOption

	Prefix string // prepended to every key and pub/sub channel; "" is the original layout
	// Layout is whose keys and values are used: "1.0" (or "") the push
	// server 1.0's, "2.0" the push server 2.0's (keys20.go, codec20.go).
	Layout string
	// Tags is how keys are grouped into hash slots: TagsSingle (or "")
	// keeps every key of every installation together (in a cluster under
	// one tag, {pushpull}); TagsInstallation gives each shared-mode
	// installation (clientId) keys, a counter and a pub/sub channel of
	// its own under the hash tag {<clientId>}, so that a Redis Cluster
	// spreads the installations over its masters (1.0 layout only).
	Tags string
	// Installations are the installations this process delivers for from
	// the start ("" is the personal one); others are added as their
	// channels get subscribers. Used with TagsInstallation.
	Installations []string
	// WaitReplicas, above 0, answers a publish only once that many
	// replicas of the master that ran it acknowledged it (WAIT), so that
	// a failover does not lose what was answered; a publish that reached
	// fewer within Timeout fails (and may still be delivered).
	WaitReplicas int
	TTLs         store.TTLs // message and channel index lifetimes (default store.DefaultTTLs)

	OnlineTTL   time.Duration // how often online keys are refreshed (default 120 s)
	OnlineDelta time.Duration // how much longer than OnlineTTL they live (default 10 s)
	// StatsInterval is how often this process writes its stats entry
	// (default 30 s); entries not refreshed for StatsInterval + 10 s are
	// dropped as belonging to a dead process.
	StatsInterval time.Duration

	ProcessUniqueID string // this process's stats entry and pub/sub channel
	// PublishMode makes a publisher-only process: it neither subscribes to
	// pub/sub nor keeps online keys.
	PublishMode bool

	// GapLimit bounds how many message ids are read back from Redis to
	// cover a broken pub/sub subscription (default 10,000). A larger gap
	// calls OnResync instead.
	GapLimit int
	// OnResync is called when this process missed messages it cannot
	// replay to its hub: it must close the local connections with a
	// reconnect code, so that clients resume from their last mid. Delivery
	// resumes when it returns.
	OnResync func()

	Timeout time.Duration // bound of each Redis call without an earlier deadline (default 5 s)
	// ReorderWindow is how long, in the 2.0 layout, a message that comes
	// through pub/sub after a missing id waits for the ids before it
	// (default 1 s; negative: not at all). See subscriber.admitLocked.
	ReorderWindow time.Duration
	// ProbeInterval is how often the process sends a probe through its
	// own pub/sub subscription (default 1 s); a probe not back within
	// ProbeTimeout (default 3 s) means the subscription silently stopped
	// delivering: readiness goes red and it is rebuilt, the gap recovered.
	ProbeInterval, ProbeTimeout time.Duration

	beforeSubscribe func() // test seam: runs before each subscription, the first included
	probesLost      bool   // test seam: probes go where nobody listens

	Log *slog.Logger // default slog.Default()
}

// OptionsFromConfig derives Options from the configuration: storage.addrs,
// else storage.socket, else storage.host:storage.port (default
// 127.0.0.1:6379). storage.cluster needs no setting of its own: the client
// recognises a cluster from its seeds.
func OptionsFromConfig(c *config.Config) Options {
	s := c.Storage
	addrs := s.Addrs
	switch {
	case len(addrs) > 0:
	case s.Socket != "":
		addrs = []string{s.Socket}
	default:
		host, port := s.Host, s.Port
		if host == "" {
			host = "127.0.0.1"
		}
		if port == 0 {
			port = 6379
		}
		addrs = []string{net.JoinHostPort(host, strconv.Itoa(port))}
	}
	o := Options{
		Client: rueidis.ClientOption{
			InitAddress: addrs,
			Username:    s.Username,
			Password:    s.Password,
			SelectDB:    s.DB,
		},
		Prefix:          s.Prefix,
		Layout:          s.Layout,
		Tags:            s.Tags,
		WaitReplicas:    s.WaitReplicas,
		TTLs:            store.TTLs{Message: seconds(s.MessageTTL), Channel: seconds(s.ChannelTTL), Default: s.DefaultLifetime()},
		OnlineTTL:       seconds(s.OnlineTTL),
		OnlineDelta:     seconds(s.OnlineDelta),
		ProcessUniqueID: c.ProcessUniqueID,
		PublishMode:     c.PublishMode,
	}
	if o.Tags == TagsInstallation {
		o.Installations = []string{""}
		for id := range c.Security.Clients {
			o.Installations = append(o.Installations, id)
		}
		sort.Strings(o.Installations)
	}
	if s.TLS {
		o.Client.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(s.Addrs) == 0 && s.Socket != "" {
		// The client dials TCP unless told otherwise; the appliance's
		// Redis is on a unix socket (/tmp/redis.sock).
		o.Client.DialCtxFn = func(ctx context.Context, path string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	if s.Master != "" {
		o.Client.Sentinel = rueidis.SentinelOption{
			MasterSet: s.Master,
			Username:  s.Username,
			Password:  s.Password,
			TLSConfig: o.Client.TLSConfig,
		}
	}
	return o
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (o *Options) defaults() {
	if o.TTLs.Message <= 0 {
		o.TTLs.Message = store.DefaultTTLs.Message
	}
	if o.TTLs.Channel <= 0 {
		o.TTLs.Channel = store.DefaultTTLs.Channel
	}
	if o.OnlineTTL <= 0 {
		o.OnlineTTL = 120 * time.Second
	}
	if o.OnlineDelta <= 0 {
		o.OnlineDelta = 10 * time.Second
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = 30 * time.Second
	}
	if o.GapLimit <= 0 {
		o.GapLimit = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ReorderWindow == 0 {
		o.ReorderWindow = time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ProcessUniqueID == "" {
		o.ProcessUniqueID = randomID()
	}
	// The client retries read-only commands only; the publish script is
	// not marked retryable, as one that reached Redis must not run twice.
	o.Client.DisableCache = true
}

// The key layouts.
const (
	Layout10 = "1.0"
	Layout20 = "2.0"
)

// The groupings of keys into hash slots (Options.Tags).
const (
	TagsSingle       = "single"
	TagsInstallation = "installation"
)

// ErrNotConnected is returned while no connection to Redis was ever made.
var ErrNotConnected = errors.New("redis: not connected")

// Engine is the distributed engine on Redis. Every message reaches the hub
// of every subscribing process, this one included, through Redis pub/sub,
// so each hub sees messages in the order Redis ran their publishes.
type Engine struct {
	opt      Options
	hub      *hub.Hub
	counters engine.Counters
	log      *slog.Logger

	conn    atomic.Pointer[connection]
	dialErr atomic.Pointer[error]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sub      subscriber
	presence presenceSet
	metrics  *metrics
}

// connection is the client and the key layout for what it connects to.
type connection struct {
	client rueidis.Client
	keys   layout
}

// New returns an engine delivering to h. It tries Redis once; if Redis is
// unreachable it keeps trying in the background and the engine reports
// not ready (Ready) and fails publishes until it connects, so a process
// can start before its Redis. Only invalid options are an error.
func New(ctx context.Context, opt Options, h *hub.Hub, counters engine.Counters) (*Engine, error) {
	if len(opt.Client.InitAddress) == 0 {
		return nil, errors.New("redis: no address")
	}
	switch opt.Layout {
	case "", Layout10, Layout20:
	default:
		return nil, fmt.Errorf("redis: layout %q is not %s or %s", opt.Layout, Layout10, Layout20)
	}
	switch opt.Tags {
	case "", TagsSingle:
	case TagsInstallation:
		if opt.Layout == Layout20 {
			return nil, errors.New("redis: installation tags keep pushpull's own keys: not with layout 2.0, whose keys the original names")
		}
		if hasHashTag(opt.Prefix) {
			return nil, fmt.Errorf("redis: prefix %q holds a hash tag; with installation tags each installation's keys take their own", opt.Prefix)
		}
		for _, id := range opt.Installations {
			if id == "" {
				continue
			}
			if err := protocol.ValidInstallationID(id); err != nil {
				return nil, fmt.Errorf("redis: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("redis: tags %q is not %s or %s", opt.Tags, TagsSingle, TagsInstallation)
	}
	if opt.WaitReplicas < 0 {
		return nil, fmt.Errorf("redis: waitReplicas %d is negative", opt.WaitReplicas)
	}
	opt.defaults()
	if h == nil {
		h = hub.New()
	}
	if counters == nil {
		counters = noCounters{}
	}
	e := &Engine{opt: opt, hub: h, counters: counters, log: opt.Log}
	e.metrics = newMetrics(e)
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.sub.init(e)
	if err := e.dial(); err != nil {
		e.log.Warn("redis unreachable, retrying", "err", err)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.dialLoop()
		}()
		return e, nil
	}
	e.start()
	return e, nil
}

func (e *Engine) dial() error {
	c, err := rueidis.NewClient(e.opt.Client)
	if err != nil {
		e.dialErr.Store(&err)
		return err
	}
	cluster := c.Mode() == rueidis.ClientModeCluster
	e.conn.Store(&connection{client: timedClient{c, e.metrics}, keys: newLayout(e.opt.Prefix, cluster, e.opt.Layout == Layout20, e.opt.Tags == TagsInstallation)})
	return nil
}

func (e *Engine) dialLoop() {
	b := backoff{}
	for {
		if !sleep(e.ctx, b.next()) {
			return
		}
		if err := e.dial(); err != nil {
			e.log.Debug("redis dial", "err", err)
			continue
		}
		e.log.Info("redis connected")
		e.start()
		return
	}
}

// start runs the background work once connected.
func (e *Engine) start() {
	if !e.opt.PublishMode {
		e.sub.markStart(e.ctx, e.sub.all())
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.sub.run(e.ctx)
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.maintain(e.ctx)
	}()
}

// client returns the connection, or ErrNotConnected with the last reason.
func (e *Engine) client() (*connection, error) {
	if c := e.conn.Load(); c != nil {
		return c, nil
	}
	if err := e.dialErr.Load(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConnected, *err)
	}
	return nil, ErrNotConnected
}

// bound applies the per-call timeout unless ctx ends sooner.
func (e *Engine) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= e.opt.Timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.opt.Timeout)
}

// The start date and counter are read and the start date set in the same
// script as the write, so that every process numbers messages from one
// sequence and one start date, even after Redis lost its data.
const assignLua = `
local start = redis.call('GET', KEYS[2])
if not start then
  redis.call('SET', KEYS[2], ARGV[1])
  start = ARGV[1]
end
if string.len(start) ~= 10 or not string.match(start, '^%d+$') then
  return redis.error_reply('ERR ' .. KEYS[2] .. ' does not hold 10 digits')
end
local id = redis.call('INCR', KEYS[1])
local mid = start .. string.format('%016d', id)
`

// storeLua stores body under the message key ARGV[2] .. key for ARGV[3]
// ms (not at all for "0") and indexes key in each channel of KEYS[3:],
// giving a new index the channel TTL ARGV[4]: the part publishLua and
// publish20Lua share.
const storeLua = `
if ARGV[3] ~= '0' then
  redis.call('SET', ARGV[2] .. key, body, 'PX', ARGV[3])
  for i = 3, #KEYS do
    redis.call('ZADD', KEYS[i], 0, key)
    if redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIRE', KEYS[i], ARGV[4])
    end
  end
end
`

// publishLua stores a message, indexes it in each channel and publishes
// it, atomically: ids are assigned in the order messages are published,
// and no message is published that is not stored.
//
// KEYS: counter, start date, channel indexes...
// ARGV: now (unix s), message key prefix, lifetime (ms), channel TTL (ms),
// JSON after the mid, pub/sub channel ("" to store only), PUBLISH or SPUBLISH.
var publishLua = newScript(assignLua + `
local body = '{"id":"' .. mid .. ARGV[5]
local key = mid
` + storeLua + `
if ARGV[6] ~= '' then
  redis.call(ARGV[7], ARGV[6], body)
end
return {id, mid}
`)

// publish20Lua is publishLua in the 2.0 layout: binary ids, protobuf
// values, a NotificationBatch on pub/sub.
//
// KEYS: counter, start date, channel indexes...
// ARGV: now (unix s), message key prefix, lifetime (ms), channel TTL (ms),
// OutgoingMessage after the id, pub/sub channel ("" to store only),
// PUBLISH or SPUBLISH, NotificationBatch before the OutgoingMessage.
var publish20Lua = newScript(assignLua + `
if string.len(mid) ~= 26 then
  return redis.error_reply('ERR message id ' .. mid .. ' is not 26 digits')
end
local bin = string.gsub(mid, '..', function(h) return string.char(tonumber(h, 16)) end)
local body = '\10\13' .. bin .. ARGV[5]
local key = bin
` + storeLua + `
if ARGV[6] ~= '' then
  redis.call(ARGV[7], ARGV[6], ARGV[8] .. body)
end
return {id, mid}
`)

// reserveLua assigns an id without storing anything. KEYS and ARGV[1] as
// publishLua.
var reserveLua = rueidis.NewLuaScript(assignLua + `
return {id, mid}
`)

// raiseLua sets the counter to at least ARGV[1]: after Redis came back
// with an older counter (a snapshot), ids already handed out are not
// handed out again.
var raiseLua = rueidis.NewLuaScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return c
`)

// Publish implements engine.Engine: nil means the message is stored and
// published. An error may still hide a message that was stored, if the
// connection broke after Redis ran the script: it is then delivered.
func (e *Engine) Publish(ctx context.Context, m *protocol.Message) error {
	return e.save(ctx, m, true)
}

// Save implements store.Store: it stores m without publishing it. A
// subscriber that recovers a pub/sub gap covering m delivers it.
func (e *Engine) Save(ctx context.Context, m *protocol.Message) error {
	return e.save(ctx, m, false)
}

func (e *Engine) save(ctx context.Context, m *protocol.Message, publish bool) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	inst, err := c.keys.installationOf(m.Channels)
	if err != nil {
		return err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	k := c.keys.in(inst)
	created := time.Now()
	lifetime := e.opt.TTLs.Lifetime(m.Expiry)
	keys := make([]string, 0, 2+len(m.Channels))
	keys = append(keys, k.counter(), k.startDate())
	client := m.Sender.Type == protocol.SenderClient // only public channels receive them
	for _, ch := range m.Channels {
		keys = append(keys, k.indexes(ch, client)...)
	}
	pub := ""
	if publish {
		pub = k.publishChannel(e.opt.ProcessUniqueID)
	}
	script, tail, head := publishLua, "", ""
	if k.v20 {
		t := encodeTail20(m, created, lifetime)
		script, tail = publish20Lua, string(t)
		if publish {
			head = string(encodeBatchHead20(m, len(storedHead20)+binMIDLen+len(t)))
		}
	} else {
		tail = encodeTail(m, created)
	}
	args := []string{
		strconv.FormatInt(created.Unix(), 10),
		k.messagePrefix(),
		strconv.FormatInt(max(lifetime.Milliseconds(), 0), 10), // 0: transient, not stored
		strconv.FormatInt(max(e.opt.TTLs.Channel.Milliseconds(), 1), 10),
		tail,
		pub,
		k.publishCommand(),
	}
	if k.v20 {
		args = append(args, head)
	}
	var res rueidis.RedisResult
	if e.opt.WaitReplicas > 0 {
		res, err = e.execWaiting(ctx, c, script, keys, args)
	} else {
		res = script.Exec(ctx, c.client, keys, args)
	}
	id, mid, err := assigned(res, err)
	if err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	m.ID, m.MID = id, mid
	m.Created = time.UnixMilli(created.UnixMilli())
	m.Expires = e.opt.TTLs.Expires(m.Created, m.Expiry)
	return nil
}

// Reserve implements store.Store.
func (e *Engine) Reserve(ctx context.Context, m *protocol.Message) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	inst, err := c.keys.installationOf(m.Channels)
	if err != nil {
		return err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	now := time.Now()
	k := c.keys.in(inst)
	keys := []string{k.counter(), k.startDate()}
	id, mid, err := assigned(reserveLua.Exec(ctx, c.client, keys, []string{strconv.FormatInt(now.Unix(), 10)}), nil)
	if err != nil {
		return fmt.Errorf("redis reserve: %w", err)
	}
	m.ID, m.MID, m.Created = id, mid, now
	m.Expires = e.opt.TTLs.Expires(now, m.Expiry)
	return nil
}

func assigned(r rueidis.RedisResult, err error) (uint64, string, error) {
	if err != nil {
		return 0, "", err
	}
	a, err := r.ToArray()
	if err != nil {
		return 0, "", err
	}
	if len(a) != 2 {
		return 0, "", errors.New("unexpected script reply")
	}
	mid, err := a[1].ToString()
	if err != nil {
		return 0, "", err
	}
	if !protocol.ValidMID(mid) {
		return 0, "", fmt.Errorf("script assigned a malformed id %q", mid)
	}
	_, id := protocol.SplitMID(mid)
	return id, mid, nil
}

// Since implements store.Store.
func (e *Engine) Since(ctx context.Context, channels []string, after string) ([]*protocol.Message, error) {
	if len(channels) == 0 {
		return nil, nil
	}
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	var out []*protocol.Message
	for _, g := range c.keys.byInstallation(channels) {
		ms, err := e.since(ctx, c, g.keys, g.channels, after)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// since is Since for channels of the one installation of k.
func (e *Engine) since(ctx context.Context, c *connection, k layout, channels []string, after string) ([]*protocol.Message, error) {
	min := "-"
	if protocol.ValidMID(after) {
		min = "(" + k.member(after)
	}
	var cmds rueidis.Commands
	var of []string // the channel of each command
	for _, ch := range channels {
		for _, key := range k.indexes(ch, false) {
			cmds = append(cmds, c.client.B().Zrangebylex().Key(key).Min(min).Max("+").Build())
			of = append(of, ch)
		}
	}
	var mids []string
	var found map[string][]string // 2.0: mid -> channels it was found in
	if k.v20 {
		found = make(map[string][]string)
	}
	for i, r := range c.client.DoMulti(ctx, cmds...) {
		ids, err := r.AsStrSlice()
		if err != nil {
			return nil, fmt.Errorf("redis since: %w", err)
		}
		for _, member := range ids {
			mid := k.midOf(member)
			if mid == "" {
				continue
			}
			mids = append(mids, mid)
			if found != nil {
				found[mid] = append(found[mid], of[i])
			}
		}
	}
	mids = sortUnique(mids)
	return e.fetch(ctx, c, k, mids, found)
}

// fetch reads the messages of mids, in that order, leaving out those that
// expired. A message that names no channels (the 2.0 original's) takes
// those found lists for its mid.
func (e *Engine) fetch(ctx context.Context, c *connection, k layout, mids []string, found map[string][]string) ([]*protocol.Message, error) {
	const chunk = 1000
	var out []*protocol.Message
	now := time.Now()
	for len(mids) > 0 {
		n := min(chunk, len(mids))
		keys := make([]string, n)
		for i, mid := range mids[:n] {
			keys[i] = k.messageKey(mid)
		}
		mids = mids[n:]
		vals, err := c.client.Do(ctx, c.client.B().Mget().Key(keys...).Build()).ToArray()
		if err != nil {
			return nil, fmt.Errorf("redis fetch: %w", err)
		}
		for i := range vals {
			s, err := vals[i].ToString()
			if err != nil {
				continue // expired since it was indexed
			}
			m, err := k.decode([]byte(s), e.opt.TTLs)
			if err != nil {
				e.log.Warn("redis: undecodable message", "key", keys[i], "err", err)
				continue
			}
			if m.Channels == nil {
				m.Channels = protocol.UniqueIDs(found[m.MID])
			}
			if !m.Expired(now) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

func sortUnique(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Last implements store.Store. It looks at the newest few ids of each
// channel, as the very newest may belong to a message with a short expiry.
func (e *Engine) Last(ctx context.Context, channels []string) (string, error) {
	if len(channels) == 0 {
		return "", nil
	}
	c, err := e.client()
	if err != nil {
		return "", err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	newest := ""
	for _, g := range c.keys.byInstallation(channels) {
		mid, err := e.last(ctx, c, g.keys, g.channels)
		if err != nil {
			return "", err
		}
		newest = max(newest, mid)
	}
	return newest, nil
}

// last is Last for channels of the one installation of k.
func (e *Engine) last(ctx context.Context, c *connection, k layout, channels []string) (string, error) {
	const depth = 16
	var cmds rueidis.Commands
	for _, ch := range channels {
		for _, key := range k.indexes(ch, false) {
			cmds = append(cmds, c.client.B().Zrevrangebylex().Key(key).Max("+").Min("-").Limit(0, depth).Build())
		}
	}
	var mids []string
	for _, r := range c.client.DoMulti(ctx, cmds...) {
		ids, err := r.AsStrSlice()
		if err != nil {
			return "", fmt.Errorf("redis last: %w", err)
		}
		for _, member := range ids {
			if mid := k.midOf(member); mid != "" {
				mids = append(mids, mid)
			}
		}
	}
	mids = sortUnique(mids)
	if len(mids) == 0 {
		return "", nil
	}
	exists := make(rueidis.Commands, len(mids))
	for i, mid := range mids {
		exists[i] = c.client.B().Exists().Key(k.messageKey(mid)).Build()
	}
	rs := c.client.DoMulti(ctx, exists...)
	for i := len(rs) - 1; i >= 0; i-- {
		n, err := rs[i].AsInt64()
		if err != nil {
			return "", fmt.Errorf("redis last: %w", err)
		}
		if n > 0 {
			return mids[i], nil
		}
	}
	return "", nil
}

// Subscribed implements engine.Engine: the channels' online keys are set
// at once rather than at the next refresh.
func (e *Engine) Subscribed(ctx context.Context, channels []string) {
	if e.opt.PublishMode || len(channels) == 0 {
		return
	}
	if e.opt.Tags == TagsInstallation {
		for _, ch := range channels {
			e.sub.addInstallation(ctx, protocol.Namespace(ch))
		}
	}
	if err := e.setOnline(ctx, channels); err != nil {
		e.log.Debug("redis: set online", "err", err)
	}
}

func (e *Engine) setOnline(ctx context.Context, channels []string) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	ttl := e.opt.OnlineTTL + e.opt.OnlineDelta
	const chunk = 500
	for len(channels) > 0 {
		n := min(chunk, len(channels))
		cmds := make(rueidis.Commands, 0, n)
		for _, ch := range channels[:n] {
			for _, k := range c.keys.of(ch).onlines(ch) {
				cmds = append(cmds, c.client.B().Set().Key(k.key).Value(k.value).Px(ttl).Build())
			}
		}
		channels = channels[n:]
		for _, r := range c.client.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Online implements engine.Engine. An online key says a channel has
// subscribers somewhere, not how many: a channel counts 1 if its key
// exists, or this process's own count if that is more.
func (e *Engine) Online(ctx context.Context, channels []string) ([]int, error) {
	out := make([]int, len(channels))
	if len(channels) == 0 {
		return out, nil
	}
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	// One MGET per installation: in a cluster each has a slot of its own.
	groups := c.keys.byInstallation(channels)
	cmds := make(rueidis.Commands, 0, len(groups))
	of := make([][]int, 0, len(groups)) // the channel of each key of each MGET
	for _, g := range groups {
		var keys []string
		var pos []int
		for j, ch := range g.channels {
			for _, k := range g.keys.onlines(ch) {
				keys = append(keys, k.key)
				pos = append(pos, g.position(j))
			}
		}
		cmds = append(cmds, c.client.B().Mget().Key(keys...).Build())
		of = append(of, pos)
	}
	for i, r := range c.client.DoMulti(ctx, cmds...) {
		vals, err := r.ToArray()
		if err != nil {
			return nil, fmt.Errorf("redis online: %w", err)
		}
		for j := range vals {
			if j < len(of[i]) && !vals[j].IsNil() {
				out[of[i][j]] = 1
			}
		}
	}
	for i, ch := range channels {
		out[i] = max(out[i], e.hub.Count(ch))
	}
	return out, nil
}

// Stats implements engine.Engine: the entries of every process that wrote
// one lately, this process's with its current counts. Stale entries are
// deleted.
func (e *Engine) Stats(ctx context.Context) ([]engine.ProcessStats, error) {
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	all, err := c.client.Do(ctx, c.client.B().Hgetall().Key(c.keys.stats()).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis stats: %w", err)
	}
	self := e.localStats()
	out := []engine.ProcessStats{self}
	var stale []string
	fresh := e.opt.StatsInterval + 10*time.Second
	if c.keys.v20 {
		// The push server 2.0 refreshes its entry every 60 s and keeps
		// one for 70 s.
		fresh = max(fresh, 70*time.Second)
	}
	oldest := time.Now().Add(-fresh).UnixMilli()
	for field, v := range all {
		if field == self.ProcessUniqueID {
			continue
		}
		s, err := parseStats(field, v)
		if err != nil || s.Date < oldest {
			stale = append(stale, field)
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProcessUniqueID < out[j].ProcessUniqueID })
	if len(stale) > 0 {
		if err := c.client.Do(ctx, c.client.B().Hdel().Key(c.keys.stats()).Field(stale...).Build()).Error(); err != nil {
			e.log.Debug("redis: drop stale stats", "err", err)
		}
	}
	return out, nil
}

// parseStats reads a process's stats entry. The original names a process
// without a processUniqueId by its pid, a number: the entry's field is
// taken then.
func parseStats(field, v string) (engine.ProcessStats, error) {
	var s struct {
		engine.ProcessStats
		ProcessUniqueID json.RawMessage `json:"processUniqueId"`
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return engine.ProcessStats{}, err
	}
	st := s.ProcessStats
	if err := json.Unmarshal(s.ProcessUniqueID, &st.ProcessUniqueID); err != nil {
		st.ProcessUniqueID = field
	}
	return st, nil
}

func (e *Engine) localStats() engine.ProcessStats {
	st := engine.LocalStats(e.opt.ProcessUniqueID, e.hub, e.counters)
	if e.opt.Tags == TagsInstallation {
		st.Tags = TagsInstallation
	}
	return st
}

// checkTags warns of live processes whose keys are grouped otherwise
// than this one's (storage.tags): in the shared mode each side would miss
// the other's messages. Each is named once.
func (e *Engine) checkTags(ctx context.Context, warned map[string]bool) {
	all, err := e.Stats(ctx)
	if err != nil {
		return
	}
	mine := e.localStats().Tags
	for _, st := range all {
		if st.Tags != mine && !warned[st.ProcessUniqueID] {
			warned[st.ProcessUniqueID] = true
			e.metrics.tagsMismatch.Inc()
			e.log.Error("redis: a process groups its keys otherwise (storage.tags): in the shared mode neither sees the other's messages; move every process at once (docs/migration-redis.md)",
				"process", st.ProcessUniqueID, "its tags", cmp.Or(st.Tags, TagsSingle), "ours", cmp.Or(mine, TagsSingle))
		}
	}
}

func (e *Engine) writeStats(ctx context.Context) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	b, _ := json.Marshal(e.localStats()) // plain struct: cannot fail
	return c.client.Do(ctx, c.client.B().Hset().Key(c.keys.stats()).FieldValue().FieldValue(e.opt.ProcessUniqueID, string(b)).Build()).Error()
}

// maintain refreshes this process's stats entry and, on a subscriber
// process, the online keys of every channel with local subscribers.
func (e *Engine) maintain(ctx context.Context) {
	if err := e.writeStats(ctx); err != nil {
		e.log.Debug("redis: write stats", "err", err)
	}
	warned := map[string]bool{}
	e.checkTags(ctx, warned)
	stats := time.NewTicker(e.opt.StatsInterval)
	defer stats.Stop()
	var online <-chan time.Time
	if !e.opt.PublishMode {
		t := time.NewTicker(e.opt.OnlineTTL)
		defer t.Stop()
		online = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			if err := e.writeStats(ctx); err != nil {
				e.log.Debug("redis: write stats", "err", err)
			}
			e.checkTags(ctx, warned)
		case <-online:
			var channels []string
			e.hub.Each(func(ch string, _ int) { channels = append(channels, ch) })
			if err := e.setOnline(ctx, channels); err != nil {
				e.log.Debug("redis: refresh online", "err", err)
			}
			if err := e.refreshPresence(ctx); err != nil {
				e.log.Debug("redis: refresh presence", "err", err)
			}
		}
	}
}

// Ready implements engine.Engine: Redis answers and, on a subscriber
// process, the pub/sub subscription is established and every message
// published before it was recovered.
func (e *Engine) Ready(ctx context.Context) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	if !e.opt.PublishMode {
		if err := e.sub.ready(); err != nil {
			return err
		}
	}
	ctx, cancel := e.bound(ctx)
	defer cancel()
	if err := c.client.Do(ctx, c.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Close implements engine.Engine. It removes this process's stats entry.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	c := e.conn.Load()
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opt.Timeout)
	defer cancel()
	err := c.client.Do(ctx, c.client.B().Hdel().Key(c.keys.stats()).Field(e.opt.ProcessUniqueID).Build()).Error()
	c.client.Close()
	if err != nil && !errors.Is(err, rueidis.ErrClosing) {
		e.log.Debug("redis: remove stats", "err", err)
	}
	return nil
}

type noCounters struct{}

func (noCounters) WebSockets() int64 { return 0 }
func (noCounters) Pollings() int64   { return 0 }

// backoff doubles a delay from 50 ms to 2 s.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = 50 * time.Millisecond
	case b.d < 2*time.Second:
		b.d *= 2
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx ends, reporting whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
