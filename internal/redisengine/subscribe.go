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
type subscriber struct {
	e *Engine

	mu         sync.Mutex
	state      error // why delivery is not established; nil while it is
	recovering bool  // messages wait in pending until the gap is recovered
	pending    []*protocol.Message
	overflow   bool   // pending outgrew the gap limit and was dropped
	start      int64  // start date of the last delivered message (0: none yet)
	last       uint64 // its counter value
	joined     bool   // a subscription was established before

	// In the 2.0 layout, live messages that come after a missing id wait
	// in held, in id order, for at most reorder (see admitLocked).
	reorder   time.Duration
	held      []heldMessage
	heldTimer *time.Timer

	beforeSubscribe func() // test seam: runs before each subscription
}

// heldMessage is a live message waiting for the ids before it, since at.
type heldMessage struct {
	m  *protocol.Message
	at time.Time
}

var errNotSubscribed = errors.New("redis: pub/sub not subscribed")

func (s *subscriber) init(e *Engine) {
	s.e = e
	s.state = errNotSubscribed
	s.beforeSubscribe = e.opt.beforeSubscribe
	if e.opt.Layout == Layout20 && e.opt.ReorderWindow > 0 {
		s.reorder = e.opt.ReorderWindow
	}
}

func (s *subscriber) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *subscriber) setState(err error) {
	s.mu.Lock()
	s.state = err
	s.mu.Unlock()
}

// markStart takes the newest id in Redis as delivered, before the first
// subscription and before this process serves any client: a client that
// connects before the subscription is made reads history up to some id,
// and the first subscription then recovers everything after this one, so
// nothing published in between is lost to it. If Redis does not answer,
// the first subscription starts from what comes.
func (s *subscriber) markStart(ctx context.Context) {
	c, err := s.e.client()
	if err != nil {
		return
	}
	rctx, cancel := s.e.bound(ctx)
	defer cancel()
	start, counter, err := readCounter(rctx, c)
	if err != nil {
		return
	}
	// With nothing published yet (start 0), the first subscription
	// recovers from the first id of whatever numbering begins meanwhile.
	s.mu.Lock()
	s.start, s.last, s.joined = start, counter, true
	s.mu.Unlock()
}

// readCounter reads the start date and the message counter.
func readCounter(ctx context.Context, c *connection) (start int64, counter uint64, err error) {
	vals, err := c.client.Do(ctx, c.client.B().Mget().Key(c.keys.startDate(), c.keys.counter()).Build()).ToArray()
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

// run keeps a subscription until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	b := backoff{}
	for {
		began := time.Now()
		err := s.once(ctx)
		if ctx.Err() != nil {
			return
		}
		s.setState(fmt.Errorf("redis pub/sub: %w", err))
		s.e.metrics.resubscribed.Inc()
		s.e.log.Warn("redis pub/sub subscription lost", "err", err)
		if time.Since(began) > 10*time.Second {
			b.reset()
		}
		if !sleep(ctx, b.next()) {
			return
		}
	}
}

// once subscribes on a connection of its own, recovers the gap and
// delivers until the subscription ends.
func (s *subscriber) once(ctx context.Context) error {
	c, err := s.e.client()
	if err != nil {
		return err
	}
	s.mu.Lock()
	// What waited for a missing id goes first: the recovery reads
	// whatever was stored for the gap.
	s.recovering, s.pending, s.overflow = true, nil, false
	for _, h := range s.held {
		s.pending = append(s.pending, h.m)
	}
	s.held = nil
	if s.heldTimer != nil {
		s.heldTimer.Stop()
		s.heldTimer = nil
	}
	hook := s.beforeSubscribe
	s.mu.Unlock()
	if hook != nil {
		hook()
	}

	dc, release := c.client.Dedicate()
	defer release()
	confirmed := make(chan struct{}, 2)
	ended := make(chan string, 1)
	probed := make(chan struct{}, 1)
	probe := c.keys.probe(s.e.opt.ProcessUniqueID)
	closed := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if m.Channel == probe {
				notify(probed, struct{}{})
				return
			}
			s.receive(c.keys, m.Message)
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
	// The messages, and this process's probe channel: two subscriptions
	// on one connection (one slot in a cluster).
	var cmds rueidis.Commands
	if c.keys.cluster {
		cmds = rueidis.Commands{dc.B().Ssubscribe().Channel(c.keys.subscription(), probe).Build()}
	} else {
		cmds = rueidis.Commands{dc.B().Psubscribe().Pattern(c.keys.subscription()).Build(), dc.B().Subscribe().Channel(probe).Build()}
	}
	sctx, cancel := s.e.bound(ctx)
	for _, r := range dc.DoMulti(sctx, cmds...) {
		if err == nil {
			err = r.Error()
		}
	}
	cancel()
	if err != nil {
		return err
	}
	timeout := time.NewTimer(s.e.opt.Timeout)
	defer timeout.Stop()
	for range 2 {
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
	if err := s.recover(ctx, c); err != nil {
		return err
	}
	s.setState(nil)
	return s.watch(ctx, c, dc, probe, probed, closed, ended)
}

// watch keeps an established subscription until it ends, sending a probe
// through it every ProbeInterval: a connection that silently stops
// delivering (its socket open, health checks green) is caught when a probe
// does not come back within ProbeTimeout, and closed so that a new one is
// made and the gap recovered.
func (s *subscriber) watch(ctx context.Context, c *connection, dc rueidis.DedicatedClient, probe string,
	probed <-chan struct{}, closed <-chan error, ended <-chan string) error {
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
			if !waiting.IsZero() && now.Sub(waiting) > s.e.opt.ProbeTimeout {
				s.setState(errSilent)
				go dc.Close() // waits for calls under way, which a wedged connection may never end
				return errSilent
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
func (s *subscriber) receive(keys layout, payload string) {
	ms, err := keys.decodePublished([]byte(payload), s.e.opt.TTLs)
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
	defer b.Flush() // after mu is released: sockets are written with no lock held
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		if s.recovering {
			if len(s.pending) >= s.e.opt.GapLimit {
				s.pending, s.overflow = nil, true
			}
			if !s.overflow {
				s.pending = append(s.pending, m)
			}
			continue
		}
		s.admitLocked(m, b)
	}
}

// admitLocked delivers a live message in id order. In the 2.0 layout the
// original's processes take an id (INCR) before they store and publish
// the message in separate calls, so that two processes' messages can reach
// pub/sub out of order, and a session would drop the older one as already
// sent. A message that comes after a missing id therefore waits, for at
// most the reorder window, until the ids before it came; then it goes, in
// id order with whatever else waits. Pushpull's own messages, published
// atomically, come in order.
func (s *subscriber) admitLocked(m *protocol.Message, b *hub.Batch) {
	if s.reorder <= 0 {
		s.deliverLocked(m, b)
		return
	}
	start, id := protocol.SplitMID(m.MID)
	switch {
	case s.start == 0 || start < s.start || start == s.start && id <= s.last+1:
		s.deliverLocked(m, b)
		s.drainLocked(b, "")
	case start > s.start:
		// A new numbering (Redis lost its data): what waits is older.
		s.drainLocked(b, m.MID)
		s.deliverLocked(m, b)
	default:
		i, _ := slices.BinarySearchFunc(s.held, m.MID, func(h heldMessage, mid string) int { return strings.Compare(h.m.MID, mid) })
		s.held = slices.Insert(s.held, i, heldMessage{m, time.Now()})
		if len(s.held) > s.e.opt.GapLimit {
			s.drainLocked(b, s.held[len(s.held)-1].m.MID)
		} else if s.heldTimer == nil {
			s.heldTimer = time.AfterFunc(s.reorder, s.reorderExpired)
		}
	}
}

// drainLocked delivers, in id order, the held messages up to upTo
// (giving up on the ids missing below it), then those next in line.
func (s *subscriber) drainLocked(b *hub.Batch, upTo string) {
	for len(s.held) > 0 {
		m := s.held[0].m
		start, id := protocol.SplitMID(m.MID)
		if m.MID > upTo && !(start == s.start && id <= s.last+1) {
			break
		}
		s.deliverLocked(m, b)
		s.held[0] = heldMessage{}
		s.held = s.held[1:]
	}
	if len(s.held) == 0 {
		s.held = nil
		if s.heldTimer != nil {
			s.heldTimer.Stop()
			s.heldTimer = nil
		}
	}
}

// reorderExpired delivers the messages that waited the whole reorder
// window, giving up on the ids missing before them: ids taken and never
// published (a failed publish of the original, or an id reserved at a
// pushpull process's stop), or published later than the window. The
// timer is set again for the next message still waiting.
func (s *subscriber) reorderExpired() {
	b := hub.GetBatch()
	defer b.Flush() // after mu is released
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heldTimer = nil
	if s.e.ctx.Err() != nil || s.recovering {
		return
	}
	now := time.Now()
	upTo := ""
	for _, h := range s.held {
		if now.Sub(h.at) >= s.reorder && h.m.MID > upTo {
			upTo = h.m.MID
		}
	}
	s.drainLocked(b, upTo)
	if len(s.held) > 0 {
		first := s.held[0].at
		for _, h := range s.held {
			if h.at.Before(first) {
				first = h.at
			}
		}
		s.heldTimer = time.AfterFunc(max(s.reorder-now.Sub(first), time.Millisecond), s.reorderExpired)
	}
}

// deliverLocked hands m to the hub and moves the delivered position;
// what the hub leaves to write goes to b, flushed once mu is released.
// Holding mu orders it with recovery.
func (s *subscriber) deliverLocked(m *protocol.Message, b *hub.Batch) {
	start, id := protocol.SplitMID(m.MID)
	switch {
	case start > s.start:
		s.start, s.last = start, id
	case start == s.start && id > s.last:
		s.last = id
	}
	if m.Body == nil || m.Expired(time.Now()) {
		return // nothing to deliver; only its position counted
	}
	s.e.hub.Broadcast(m, b)
}

// recover delivers, in id order, the messages published while this
// process was not subscribed, then what pub/sub brought meanwhile.
func (s *subscriber) recover(ctx context.Context, c *connection) error {
	rctx, cancel := s.e.bound(ctx)
	defer cancel()
	start, counter, err := readCounter(rctx, c)
	if err != nil {
		return err
	}

	s.mu.Lock()
	joined, lastStart, last := s.joined, s.start, s.last
	s.mu.Unlock()

	var from uint64 // first id to read back; 0: none
	switch {
	case start == 0 || !joined:
		// Nothing was published since Redis lost its data, or this is
		// the first subscription: nothing here waits for older messages.
	case start == lastStart && counter < last:
		// Redis came back from an older snapshot.
		if err := raiseLua.Exec(rctx, c.client, []string{c.keys.counter()}, []string{strconv.FormatUint(last, 10)}).Error(); err != nil {
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
			if missed, err = s.e.fetch(rctx, c, mids, nil); err != nil {
				return err
			}
			if c.keys.v20 {
				if err := s.e.locate(rctx, c, missed); err != nil {
					return err
				}
			}
		}
	}

	s.mu.Lock()
	resync = resync || s.overflow
	s.mu.Unlock()
	if resync {
		s.e.log.Warn("redis pub/sub: gap too large to replay, asking clients to resume", "from", from, "to", counter)
		if s.e.opt.OnResync != nil {
			s.e.opt.OnResync() // messages keep waiting in pending meanwhile
		}
	}

	b := hub.GetBatch()
	defer b.Flush() // after mu is released
	s.mu.Lock()
	defer s.mu.Unlock()
	if start != 0 && (!joined || resync) {
		if start > s.start || (start == s.start && counter > s.last) {
			s.start, s.last = start, counter
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
	for _, m := range s.pending {
		if _, dup := got[m.MID]; !dup {
			deliver = append(deliver, m)
		}
	}
	if s.reorder > 0 {
		// The original's messages may have come out of order.
		slices.SortStableFunc(deliver, func(a, b *protocol.Message) int { return strings.Compare(a.MID, b.MID) })
	}
	for _, m := range deliver {
		s.deliverLocked(m, b)
	}
	s.pending, s.overflow, s.recovering, s.joined = nil, false, false, true
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
