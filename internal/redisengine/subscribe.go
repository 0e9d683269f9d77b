package redisengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/protocol"
)

// subscriber receives every published message from Redis pub/sub and
// hands it to the hub. Pub/sub delivers each message at most once, and
// nothing while the connection is down; so after every (re)subscription
// the messages published meanwhile are read back from Redis by id, from
// the last id delivered here to the counter, before delivery resumes.
//
// Messages are ordered per installation (a stream): with installation
// tags each has its own counter, and in a cluster its own sharded
// channel, subscribed on a connection per master for all the
// installations whose slots that master serves (cluster.go). Otherwise
// one stream and one subscription carry everything.
type subscriber struct {
	e       *Engine
	reorder time.Duration // the 2.0 layout's reorder window (admitLocked)

	mu              sync.Mutex
	streams         map[string]*stream // by installation
	personal        *stream            // streams[""]: the only one without installation tags
	changed         chan struct{}      // an installation was added (cluster.go)
	beforeSubscribe func()             // test seam: runs before each subscription
}

// stream is one installation's ordered flow of messages.
type stream struct {
	inst string

	mu         sync.Mutex
	live       error // why delivery is not established; nil while it is
	recovering bool  // messages wait in pending until the gap is recovered
	pending    []*protocol.Message
	overflow   bool   // pending outgrew the gap limit and was dropped
	start      int64  // start date of the last delivered message (0: none yet)
	last       uint64 // its counter value
	joined     bool   // a position was taken (markStart or a subscription)
	gen        uint64 // counts recoveries: a repair begun before one is void
	repairing  bool   // a repair of a gap before held is under way

	// Live messages that come after a missing id wait in held, in id
	// order: for the ids to be read back from Redis (repair), or in the
	// 2.0 layout for at most the reorder window (see admitLocked).
	held      []heldMessage
	heldTimer *time.Timer
}

// heldMessage is a live message waiting for the ids before it, since at.
type heldMessage struct {
	m  *protocol.Message
	at time.Time
}

var errNotSubscribed = errors.New("redis: pub/sub not subscribed")

func (s *subscriber) init(e *Engine) {
	s.e = e
	s.beforeSubscribe = e.opt.beforeSubscribe
	s.changed = make(chan struct{}, 1)
	if e.opt.Layout == Layout20 && e.opt.ReorderWindow > 0 {
		s.reorder = e.opt.ReorderWindow
	}
	s.personal = &stream{live: errNotSubscribed}
	s.streams = map[string]*stream{"": s.personal}
	if e.opt.Tags == TagsInstallation {
		for _, inst := range e.opt.Installations {
			if s.streams[inst] == nil {
				s.streams[inst] = &stream{inst: inst, live: errNotSubscribed}
			}
		}
	}
}

// all returns the streams, sorted by installation.
func (s *subscriber) all() []*stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *stream) int { return strings.Compare(a.inst, b.inst) })
	return out
}

// stream returns installation inst's stream, adding it if new. On one
// Redis a single subscription carries every installation, so a new stream
// is as live as the personal one; in a cluster it waits for its own.
func (s *subscriber) stream(c *connection, inst string) (st *stream, added bool) {
	if !c.keys.tagged {
		return s.personal, false // the only one
	}
	s.mu.Lock()
	st = s.streams[inst]
	s.mu.Unlock()
	if st != nil {
		return st, false
	}
	live := errNotSubscribed
	if !c.keys.cluster {
		s.personal.mu.Lock()
		live = s.personal.live
		s.personal.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[inst]; st != nil {
		return st, false
	}
	st = &stream{inst: inst, live: live}
	s.streams[inst] = st
	return st, true
}

// ready reports why some installation's delivery is not established.
func (s *subscriber) ready() error {
	for _, st := range s.all() {
		st.mu.Lock()
		err := st.live
		st.mu.Unlock()
		if err != nil {
			if st.inst != "" {
				return fmt.Errorf("installation %s: %w", st.inst, err)
			}
			return err
		}
	}
	return nil
}

func setLive(streams []*stream, err error) {
	for _, st := range streams {
		st.mu.Lock()
		st.live = err
		st.mu.Unlock()
	}
}

// markStart takes the newest id in Redis as delivered, before the first
// subscription and before this process serves any client: a client that
// connects before the subscription is made reads history up to some id,
// and the first subscription then recovers everything after this one, so
// nothing published in between is lost to it. If Redis does not answer,
// the first subscription starts from what comes.
func (s *subscriber) markStart(ctx context.Context, streams []*stream) {
	c, err := s.e.client()
	if err != nil {
		return
	}
	rctx, cancel := s.e.bound(ctx)
	defer cancel()
	for _, st := range streams {
		start, counter, err := readCounter(rctx, c, c.keys.in(st.inst))
		if err != nil {
			return
		}
		// With nothing published yet (start 0), the first subscription
		// recovers from the first id of whatever numbering begins meanwhile.
		st.mu.Lock()
		st.start, st.last, st.joined = start, counter, true
		st.mu.Unlock()
	}
}

// addInstallation makes sure inst's messages are delivered here, before a
// connection of this process reads its history: its position is taken
// now, and in a cluster its subscription follows (cluster.go), recovering
// from that position.
func (s *subscriber) addInstallation(ctx context.Context, inst string) {
	c, err := s.e.client()
	if err != nil {
		return
	}
	st, added := s.stream(c, inst)
	if !added {
		return
	}
	s.markStart(ctx, []*stream{st})
	notify(s.changed, struct{}{})
}

// readCounter reads the start date and the message counter of k's
// installation.
func readCounter(ctx context.Context, c *connection, k layout) (start int64, counter uint64, err error) {
	vals, err := c.client.Do(ctx, c.client.B().Mget().Key(k.startDate(), k.counter()).Build()).ToArray()
	if err != nil {
		return 0, 0, fmt.Errorf("read counter: %w", err)
	}
	if len(vals) != 2 {
		return 0, 0, errors.New("read counter: unexpected reply")
	}
	if v, err := vals[0].ToString(); err == nil {
		start, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, err := vals[1].ToString(); err == nil {
		counter, _ = strconv.ParseUint(v, 10, 64)
	}
	return start, counter, nil
}

// run keeps the subscriptions until ctx ends: one per master for the
// installations it serves in a cluster with installation tags
// (runCluster), else one for everything.
func (s *subscriber) run(ctx context.Context) {
	c, err := s.e.client()
	if err != nil {
		return
	}
	if c.keys.cluster && c.keys.tagged {
		s.runCluster(ctx, c)
		return
	}
	b := backoff{}
	for {
		began := time.Now()
		streams := s.all()
		err := s.once(ctx, c, route{dedicate: c.client.Dedicate, streams: streams})
		if ctx.Err() != nil {
			return
		}
		s.lost(streams, err)
		if time.Since(began) > 10*time.Second {
			b.reset()
		}
		if !sleep(ctx, b.next()) {
			return
		}
	}
}

// lost records a subscription that ended with err.
func (s *subscriber) lost(streams []*stream, err error) {
	setLive(streams, fmt.Errorf("redis pub/sub: %w", err))
	s.e.metrics.resubscribed.Inc()
	s.e.log.Warn("redis pub/sub subscription lost", "err", err)
}

// route is one subscription: a connection (dedicate) and the streams
// whose messages come through it.
type route struct {
	dedicate func() (rueidis.DedicatedClient, func())
	streams  []*stream
}

// subscriptions are the commands that subscribe r's channels and its
// probe, how many confirmations they bring, and the probe channel.
func (s *subscriber) subscriptions(dc rueidis.DedicatedClient, k layout, r route) (cmds rueidis.Commands, confirms int, probe string) {
	uid := s.e.opt.ProcessUniqueID
	switch {
	case k.cluster && k.tagged:
		// One sharded channel per installation, each in its own slot;
		// the probe in the first one's.
		for _, st := range r.streams {
			cmds = append(cmds, dc.B().Ssubscribe().Channel(k.in(st.inst).subscription()).Build())
		}
		probe = k.in(r.streams[0].inst).probe(uid)
		cmds = append(cmds, dc.B().Ssubscribe().Channel(probe).Build())
		return cmds, len(cmds), probe
	case k.cluster:
		probe = k.probe(uid)
		return rueidis.Commands{dc.B().Ssubscribe().Channel(k.subscription(), probe).Build()}, 2, probe
	default:
		probe = k.probe(uid)
		return rueidis.Commands{dc.B().Psubscribe().Pattern(k.subscription()).Build(), dc.B().Subscribe().Channel(probe).Build()}, 2, probe
	}
}

// once subscribes on a connection of its own, recovers the gap of each of
// r's streams and delivers until the subscription ends.
func (s *subscriber) once(ctx context.Context, c *connection, r route) error {
	for _, st := range r.streams {
		st.mu.Lock()
		st.beginRecovery()
		st.mu.Unlock()
	}
	s.mu.Lock()
	hook := s.beforeSubscribe
	s.mu.Unlock()
	if hook != nil {
		hook()
	}

	dc, release := r.dedicate()
	defer release()
	cmds, confirms, probe := s.subscriptions(dc, c.keys, r)
	confirmed := make(chan struct{}, confirms)
	ended := make(chan string, 1)
	probed := make(chan struct{}, 1)
	var heard atomic.Int64 // unix ns of the last message that came
	closed := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			heard.Store(time.Now().UnixNano())
			if m.Channel == probe {
				notify(probed, struct{}{})
				return
			}
			s.receive(c, m.Message)
		},
		OnSubscription: func(ps rueidis.PubSubSubscription) {
			switch ps.Kind {
			case "psubscribe", "subscribe", "ssubscribe":
				notify(confirmed, struct{}{})
			case "punsubscribe", "unsubscribe", "sunsubscribe":
				// A cluster moves a sharded channel's slot, or a
				// client killed the subscription: messages are lost
				// until a new one is made.
				notify(ended, ps.Kind)
			}
		},
	})
	var err error
	sctx, cancel := s.e.bound(ctx)
	for _, res := range dc.DoMulti(sctx, cmds...) {
		if err == nil {
			err = res.Error()
		}
	}
	cancel()
	if err != nil {
		return err
	}
	timeout := time.NewTimer(s.e.opt.Timeout)
	defer timeout.Stop()
	for range confirms {
		select {
		case <-confirmed:
		case err := <-closed:
			return connErr(err)
		case k := <-ended:
			return fmt.Errorf("subscription ended (%s)", k)
		case <-timeout.C:
			return errors.New("subscription not confirmed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, st := range r.streams {
		if err := s.recover(ctx, c, st); err != nil {
			return err
		}
	}
	setLive(r.streams, nil)
	return s.watch(ctx, c, dc, probe, &heard, probed, closed, ended)
}

// beginRecovery makes live messages wait until the stream's gap is read
// back: what waited for a missing id goes first, as the recovery reads
// whatever was stored for the gap. A repair under way is void.
func (st *stream) beginRecovery() {
	if st.live == nil {
		st.live = errNotSubscribed
	}
	st.recovering, st.pending, st.overflow = true, nil, false
	for _, h := range st.held {
		st.pending = append(st.pending, h.m)
	}
	st.held = nil
	if st.heldTimer != nil {
		st.heldTimer.Stop()
		st.heldTimer = nil
	}
	st.gen++
}

// watch keeps an established subscription until it ends, sending a probe
// through it every ProbeInterval: a connection that silently stops
// delivering (its socket open, health checks green) is caught when a probe
// does not come back within ProbeTimeout, and closed so that a new one is
// made and the gap recovered.
//
// A connection that still delivers messages is not silent, only slow (a
// process starved of CPU, a Redis busy): closing it would drop what its
// socket holds, and messages stored for no time could not be read back.
// So while messages keep coming after the probe was sent, the probe gets
// up to slowProbes times ProbeTimeout.
func (s *subscriber) watch(ctx context.Context, c *connection, dc rueidis.DedicatedClient, probe string,
	heard *atomic.Int64, probed <-chan struct{}, closed <-chan error, ended <-chan string) error {
	if s.e.opt.probesLost {
		probe += ":lost"
	}
	tick := time.NewTicker(s.e.opt.ProbeInterval)
	defer tick.Stop()
	var waiting time.Time // when the oldest probe not yet back was sent
	for {
		select {
		case err := <-closed:
			return connErr(err)
		case k := <-ended:
			return fmt.Errorf("subscription ended (%s)", k)
		case <-ctx.Done():
			return ctx.Err()
		case <-probed:
			if !waiting.IsZero() {
				s.e.metrics.probeLag.Observe(time.Since(waiting).Seconds())
			}
			waiting = time.Time{}
		case now := <-tick.C:
			if overdue := now.Sub(waiting); !waiting.IsZero() && overdue > s.e.opt.ProbeTimeout {
				if heard.Load() < waiting.UnixNano() || overdue > slowProbes*s.e.opt.ProbeTimeout {
					go dc.Close() // waits for calls under way, which a wedged connection may never end
					return errSilent
				}
				s.e.metrics.probeSlow.Inc()
			}
			if waiting.IsZero() {
				waiting = now
			}
			cmd := c.client.B().Publish().Channel(probe).Message("probe").Build()
			if c.keys.cluster {
				cmd = c.client.B().Spublish().Channel(probe).Message("probe").Build()
			}
			pctx, cancel := s.e.bound(ctx)
			_ = c.client.Do(pctx, cmd).Error() // a failed probe is a probe not back
			cancel()
		}
	}
}

// slowProbes bounds how many ProbeTimeouts a probe may take while
// messages keep coming through its subscription.
const slowProbes = 10

var errSilent = errors.New("redis pub/sub: the subscription delivers nothing (a probe did not come back)")

func notify[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func connErr(err error) error {
	if err == nil {
		return errors.New("connection closed")
	}
	return err
}

// receive handles one pub/sub payload.
func (s *subscriber) receive(c *connection, payload string) {
	ms, err := c.keys.decodePublished([]byte(payload), s.e.opt.TTLs)
	if err != nil {
		s.e.log.Warn("redis pub/sub: undecodable message", "err", err)
		return
	}
	now := time.Now()
	for _, m := range ms {
		if !m.Created.IsZero() {
			s.e.metrics.messageLag.Observe(max(now.Sub(m.Created).Seconds(), 0))
		}
		if m.Body == nil {
			s.e.log.Warn("redis pub/sub: message not delivered, its body is not JSON", "mid", m.MID)
		}
	}
	b := hub.GetBatch()
	defer b.Flush() // after the streams' locks are released: sockets are written with no lock held
	var st *stream
	for _, m := range ms {
		inst, err := c.keys.installationOf(m.Channels)
		if err != nil {
			s.e.log.Warn("redis pub/sub: message not delivered", "mid", m.MID, "err", err)
			continue
		}
		if st == nil || st.inst != inst {
			st, _ = s.stream(c, inst)
		}
		st.mu.Lock()
		if st.recovering {
			if len(st.pending) >= s.e.opt.GapLimit {
				st.pending, st.overflow = nil, true
			}
			if !st.overflow {
				st.pending = append(st.pending, m)
			}
		} else {
			s.admitLocked(c, st, m, b)
		}
		st.mu.Unlock()
	}
}

// admitLocked delivers a live message in id order. A message that comes
// after a missing id waits in held while the ids before it are read back
// from Redis (repair): the message was stored but not published (Save),
// or pub/sub lost it, say while a cluster moved the installation's slot.
// Ids that were taken and never stored (Reserve) are found missing and
// skipped.
//
// In the 2.0 layout the original's processes take an id (INCR) before
// they store and publish the message in separate calls, so that two
// processes' messages can reach pub/sub out of order, and a session would
// drop the older one as already sent. There a message that comes after a
// missing id waits for at most the reorder window, until the ids before
// it came; then it goes, in id order with whatever else waits.
func (s *subscriber) admitLocked(c *connection, st *stream, m *protocol.Message, b *hub.Batch) {
	start, id := protocol.SplitMID(m.MID)
	switch {
	case !st.joined || st.start == 0 || start < st.start || start == st.start && id <= st.last+1:
		s.deliverLocked(st, m, b)
		s.drainLocked(st, b, "")
	case start > st.start:
		// A new numbering (Redis lost its data): what waits is older.
		s.drainLocked(st, b, m.MID)
		s.deliverLocked(st, m, b)
	default:
		i, found := slices.BinarySearchFunc(st.held, m.MID, func(h heldMessage, mid string) int { return strings.Compare(h.m.MID, mid) })
		if found {
			return
		}
		st.held = slices.Insert(st.held, i, heldMessage{m, time.Now()})
		switch {
		case len(st.held) > s.e.opt.GapLimit:
			s.drainLocked(st, b, st.held[len(st.held)-1].m.MID)
		case s.reorder > 0:
			if st.heldTimer == nil {
				st.heldTimer = time.AfterFunc(s.reorder, func() { s.reorderExpired(st) })
			}
		default:
			s.repairLocked(c, st)
		}
	}
}

// drainLocked delivers, in id order, the held messages up to upTo
// (giving up on the ids missing below it), then those next in line.
func (s *subscriber) drainLocked(st *stream, b *hub.Batch, upTo string) {
	for len(st.held) > 0 {
		m := st.held[0].m
		start, id := protocol.SplitMID(m.MID)
		if m.MID > upTo && !(start == st.start && id <= st.last+1) {
			break
		}
		s.deliverLocked(st, m, b)
		st.held[0] = heldMessage{}
		st.held = st.held[1:]
	}
	if len(st.held) == 0 {
		st.held = nil
		if st.heldTimer != nil {
			st.heldTimer.Stop()
			st.heldTimer = nil
		}
	}
}

// reorderExpired delivers the messages that waited the whole reorder
// window, giving up on the ids missing before them: ids taken and never
// published (a failed publish of the original, or an id reserved at a
// pushpull process's stop), or published later than the window. The
// timer is set again for the next message still waiting.
func (s *subscriber) reorderExpired(st *stream) {
	b := hub.GetBatch()
	defer b.Flush() // after mu is released
	st.mu.Lock()
	defer st.mu.Unlock()
	st.heldTimer = nil
	if s.e.ctx.Err() != nil || st.recovering {
		return
	}
	now := time.Now()
	upTo := ""
	for _, h := range st.held {
		if now.Sub(h.at) >= s.reorder && h.m.MID > upTo {
			upTo = h.m.MID
		}
	}
	s.drainLocked(st, b, upTo)
	if len(st.held) > 0 {
		first := st.held[0].at
		for _, h := range st.held {
			if h.at.Before(first) {
				first = h.at
			}
		}
		st.heldTimer = time.AfterFunc(max(s.reorder-now.Sub(first), time.Millisecond), func() { s.reorderExpired(st) })
	}
}

// repairLocked reads back, in the background, the ids missing between the
// last delivered and the first held message, then delivers them and what
// waited, in id order. One repair runs at a time per stream; a recovery
// (a new subscription) makes it void, as the recovery reads the same ids.
func (s *subscriber) repairLocked(c *connection, st *stream) {
	if st.repairing || len(st.held) == 0 {
		return
	}
	start, first := protocol.SplitMID(st.held[0].m.MID)
	if start != st.start || first <= st.last+1 {
		return
	}
	st.repairing = true
	gen, from, to := st.gen, st.last+1, first-1
	s.e.metrics.repairs.Inc()
	s.e.wg.Add(1)
	go func() {
		defer s.e.wg.Done()
		var found []*protocol.Message
		if to-from < uint64(s.e.opt.GapLimit) {
			mids := make([]string, 0, to-from+1)
			for id := from; id <= to; id++ {
				mids = append(mids, protocol.FormatMID(start, id))
			}
			k := c.keys.in(st.inst)
			bo := backoff{}
			for {
				ctx, cancel := s.e.bound(s.e.ctx)
				ms, err := s.e.fetch(ctx, c, k, mids, nil)
				cancel()
				if err == nil {
					found = ms
					break
				}
				s.e.log.Warn("redis: reading back a gap in the ids", "installation", st.inst, "from", from, "to", to, "err", err)
				if !sleep(s.e.ctx, bo.next()) {
					return
				}
				st.mu.Lock()
				void := st.gen != gen
				st.mu.Unlock()
				if void {
					return
				}
			}
		} else {
			s.e.log.Warn("redis: gap in the ids too large to read back", "installation", st.inst, "from", from, "to", to)
		}
		b := hub.GetBatch()
		defer b.Flush() // after mu is released
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.gen != gen {
			return
		}
		st.repairing = false
		for _, m := range found {
			if i, dup := slices.BinarySearchFunc(st.held, m.MID, func(h heldMessage, mid string) int { return strings.Compare(h.m.MID, mid) }); !dup {
				st.held = slices.Insert(st.held, i, heldMessage{m, time.Now()})
			}
		}
		// Every id up to the first held one is delivered now, or known
		// to be missing: the first held goes, so each repair progresses.
		s.drainLocked(st, b, protocol.FormatMID(start, first))
		s.repairLocked(c, st) // a later gap
	}()
}

// deliverLocked hands m to the hub and moves the delivered position;
// what the hub leaves to write goes to b, flushed once st.mu is released.
// Holding st.mu orders it with recovery.
func (s *subscriber) deliverLocked(st *stream, m *protocol.Message, b *hub.Batch) {
	start, id := protocol.SplitMID(m.MID)
	switch {
	case start > st.start:
		st.start, st.last = start, id
	case start == st.start && id > st.last:
		st.last = id
	}
	if m.Body == nil || m.Expired(time.Now()) {
		return // nothing to deliver; only its position counted
	}
	s.e.hub.Broadcast(m, b)
}

// recover delivers, in id order, the messages of st published while this
// process was not subscribed, then what pub/sub brought meanwhile.
func (s *subscriber) recover(ctx context.Context, c *connection, st *stream) error {
	rctx, cancel := s.e.bound(ctx)
	defer cancel()
	k := c.keys.in(st.inst)
	start, counter, err := readCounter(rctx, c, k)
	if err != nil {
		return err
	}

	st.mu.Lock()
	joined, lastStart, last := st.joined, st.start, st.last
	st.mu.Unlock()

	var from uint64 // first id to read back; 0: none
	switch {
	case start == 0 || !joined:
		// Nothing was published since Redis lost its data, or this is
		// the first subscription: nothing here waits for older messages.
	case start == lastStart && counter < last:
		// Redis came back from an older snapshot.
		if err := raiseLua.Exec(rctx, c.client, []string{k.counter()}, []string{strconv.FormatUint(last, 10)}).Error(); err != nil {
			return fmt.Errorf("raise counter: %w", err)
		}
	case start == lastStart:
		from = last + 1
	case start > lastStart:
		from = 1 // a new numbering: Redis lost its data and messages followed
	}

	resync := false
	var missed []*protocol.Message
	if from > 0 && counter >= from {
		if counter-from >= uint64(s.e.opt.GapLimit) {
			resync = true
		} else {
			mids := make([]string, 0, counter-from+1)
			for id := from; id <= counter; id++ {
				mids = append(mids, protocol.FormatMID(start, id))
			}
			if missed, err = s.e.fetch(rctx, c, k, mids, nil); err != nil {
				return err
			}
			if c.keys.v20 {
				if err := s.e.locate(rctx, c, missed); err != nil {
					return err
				}
			}
		}
	}

	st.mu.Lock()
	resync = resync || st.overflow
	st.mu.Unlock()
	if resync {
		s.e.log.Warn("redis pub/sub: gap too large to replay, asking clients to resume", "installation", st.inst, "from", from, "to", counter)
		if s.e.opt.OnResync != nil {
			s.e.opt.OnResync() // messages keep waiting in pending meanwhile
		}
	}

	b := hub.GetBatch()
	defer b.Flush() // after mu is released
	st.mu.Lock()
	defer st.mu.Unlock()
	if start != 0 && (!joined || resync) {
		if start > st.start || (start == st.start && counter > st.last) {
			st.start, st.last = start, counter
		}
	}
	got := make(map[string]struct{}, len(missed))
	var deliver []*protocol.Message
	if !resync {
		for _, m := range missed {
			got[m.MID] = struct{}{}
			deliver = append(deliver, m)
		}
	}
	for _, m := range st.pending {
		if _, dup := got[m.MID]; !dup {
			deliver = append(deliver, m)
		}
	}
	// Pending messages may have come out of order (the original's), or
	// after a gap pub/sub left: in id order they go.
	slices.SortStableFunc(deliver, func(a, b *protocol.Message) int { return strings.Compare(a.MID, b.MID) })
	for _, m := range deliver {
		s.deliverLocked(st, m, b)
	}
	st.pending, st.overflow, st.recovering, st.joined = nil, false, false, true
	st.repairing = false
	return nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// locate finds the channels of messages that name none (the 2.0
// original's stored messages), among the channels with subscribers here:
// the only ones this process delivers to. ms are in id order.
func (e *Engine) locate(ctx context.Context, c *connection, ms []*protocol.Message) error {
	lost := make(map[string]*protocol.Message)
	var lo, hi string
	for _, m := range ms {
		if len(m.Channels) == 0 {
			if lo == "" {
				lo = m.MID
			}
			hi = m.MID
			lost[m.MID] = m
		}
	}
	if len(lost) == 0 {
		return nil
	}
	var channels []string
	e.hub.Each(func(ch string, _ int) { channels = append(channels, ch) })
	const chunk = 500
	for len(channels) > 0 {
		n := min(chunk, len(channels))
		var cmds rueidis.Commands
		var of []string
		for _, ch := range channels[:n] {
			for _, key := range c.keys.indexes(ch, false) {
				cmds = append(cmds, c.client.B().Zrangebylex().Key(key).Min("["+c.keys.member(lo)).Max("["+c.keys.member(hi)).Build())
				of = append(of, ch)
			}
		}
		channels = channels[n:]
		for i, r := range c.client.DoMulti(ctx, cmds...) {
			members, err := r.AsStrSlice()
			if err != nil {
				return fmt.Errorf("redis locate: %w", err)
			}
			for _, member := range members {
				if m := lost[c.keys.midOf(member)]; m != nil && !slices.Contains(m.Channels, of[i]) {
					m.Channels = append(m.Channels, of[i])
				}
			}
		}
	}
	return nil
}
