package redisengine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// In a Redis Cluster with installation tags every installation's
// messages come through a sharded channel in its own slot. A process
// holds one subscription per master, for all the installations whose
// slots that master serves, and follows the cluster: when a master goes
// (its connection ends), or moves a slot away (Redis ends the slot's
// sharded subscriptions with sunsubscribe), the slot map is read again and
// the affected installations subscribed where their slots are now, each
// recovering its gap from storage. Subscriptions of the other masters go
// on untouched.

// nodeRoute is a running subscription on one master.
type nodeRoute struct {
	addr   string
	insts  []string
	cancel context.CancelFunc
	done   chan struct{}
	began  time.Time
}

// routeEnd reports a subscription that ended.
type routeEnd struct {
	r   *nodeRoute
	err error
}

// runCluster keeps a subscription on every master that serves an
// installation of this process, until ctx ends.
func (s *subscriber) runCluster(ctx context.Context, c *connection) {
	routes := map[string]*nodeRoute{}
	ended := make(chan routeEnd, 64)
	b := backoff{}
	stop := func(r *nodeRoute) {
		r.cancel()
		<-r.done
		delete(routes, r.addr)
	}
	defer func() {
		for _, r := range routes {
			stop(r)
		}
	}()
	for {
		plan, err := s.plan(ctx, c)
		if err != nil {
			// Those not served by a running subscription wait.
			var waiting []*stream
			for _, st := range s.all() {
				if !servedBy(routes, st.inst) {
					waiting = append(waiting, st)
				}
			}
			setLive(waiting, fmt.Errorf("redis cluster: %w", err))
			s.e.log.Warn("redis cluster: slot map unavailable", "err", err)
		} else {
			for addr, r := range routes {
				if !slices.Equal(r.insts, plan[addr]) {
					stop(r)
				}
			}
			for addr, insts := range plan {
				if routes[addr] == nil {
					routes[addr] = s.startRoute(ctx, c, addr, insts, ended)
				}
			}
		}
		var retry <-chan time.Time
		if err != nil {
			retry = time.After(b.next())
		}
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		case <-retry:
		case e := <-ended:
			if routes[e.r.addr] != e.r {
				continue // one stopped while it ended: its streams moved on
			}
			delete(routes, e.r.addr)
			var streams []*stream
			for _, inst := range e.r.insts {
				st, _ := s.stream(c, inst)
				streams = append(streams, st)
			}
			s.lost(streams, fmt.Errorf("%s: %w", e.r.addr, e.err))
			if time.Since(e.r.began) > 10*time.Second {
				b.reset()
			}
			// The cluster needs a moment to agree on a new owner.
			if !sleep(ctx, b.next()) {
				return
			}
		}
	}
}

func servedBy(routes map[string]*nodeRoute, inst string) bool {
	for _, r := range routes {
		if slices.Contains(r.insts, inst) {
			return true
		}
	}
	return false
}

// startRoute subscribes, on master addr, the installations insts.
func (s *subscriber) startRoute(ctx context.Context, c *connection, addr string, insts []string, ended chan<- routeEnd) *nodeRoute {
	rctx, cancel := context.WithCancel(ctx)
	r := &nodeRoute{addr: addr, insts: insts, cancel: cancel, done: make(chan struct{}), began: time.Now()}
	streams := make([]*stream, len(insts))
	for i, inst := range insts {
		streams[i], _ = s.stream(c, inst)
	}
	go func() {
		defer close(r.done)
		err := s.onNode(rctx, c, addr, streams)
		select {
		case ended <- routeEnd{r, err}:
		case <-rctx.Done(): // stopped: nobody waits for its end
		}
	}()
	return r
}

// onNode runs one subscription on master addr.
func (s *subscriber) onNode(ctx context.Context, c *connection, addr string, streams []*stream) error {
	node, ok := c.client.Nodes()[addr]
	if !ok {
		// The client learns a new master from a redirection: one read
		// in the slot teaches it.
		k := c.keys.in(streams[0].inst)
		rctx, cancel := s.e.bound(ctx)
		_ = c.client.Do(rctx, c.client.B().Exists().Key(k.counter()).Build()).Error()
		cancel()
		if node, ok = c.client.Nodes()[addr]; !ok {
			return fmt.Errorf("master %s not known to the client yet", addr)
		}
	}
	return s.once(ctx, c, route{dedicate: node.Dedicate, streams: streams})
}

// plan maps each master to the installations whose sharded channels it
// serves now, read from CLUSTER SLOTS.
func (s *subscriber) plan(ctx context.Context, c *connection) (map[string][]string, error) {
	rctx, cancel := s.e.bound(ctx)
	defer cancel()
	owners, err := slotOwners(rctx, c.client)
	if err != nil {
		return nil, err
	}
	plan := map[string][]string{}
	for _, st := range s.all() {
		slot := keySlot(c.keys.in(st.inst).subscription())
		addr := owners[slot]
		if addr == "" {
			return nil, fmt.Errorf("slot %d (installation %q) is served by no master", slot, st.inst)
		}
		plan[addr] = append(plan[addr], st.inst) // s.all is sorted
	}
	return plan, nil
}

// slotOwners reads which master serves each slot.
func slotOwners(ctx context.Context, c rueidis.Client) (*[clusterSlots]string, error) {
	ranges, err := c.Do(ctx, c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, fmt.Errorf("cluster slots: %w", err)
	}
	var owners [clusterSlots]string
	for _, r := range ranges {
		v, err := r.ToArray()
		if err != nil || len(v) < 3 {
			return nil, errors.New("cluster slots: unexpected reply")
		}
		from, err1 := v[0].AsInt64()
		to, err2 := v[1].AsInt64()
		master, err3 := v[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(master) < 2 || from < 0 || to >= clusterSlots || from > to {
			return nil, errors.New("cluster slots: unexpected range")
		}
		host, err1 := master[0].ToString()
		port, err2 := master[1].AsInt64()
		if err1 != nil || err2 != nil {
			return nil, errors.New("cluster slots: unexpected node")
		}
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		for i := from; i <= to; i++ {
			owners[i] = addr
		}
	}
	return &owners, nil
}
