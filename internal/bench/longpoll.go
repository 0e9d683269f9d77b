package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Transports a delivery scenario's subscribers use.
const (
	TransportWebSocket = "websocket"
	TransportLongPoll  = "longpoll"
)

// subscriberSet is what a delivery scenario reads back from its
// subscribers, WebSocket or long-polling.
type subscriberSet interface {
	Dropped() (int64, error)
	Bad() int64
	Latencies() []int64
	Close()
}

// PollSwarm is a set of long-polling subscribers: each holds one request
// at a time on a keep-alive connection and, once answered, asks again from
// where the answer left it. pushpull resumes by mid (protocol 3: the
// envelopes' mids, a 304's Last-Message-Id); nchan by the Last-Modified and
// Etag of its last answer, sent back as If-Modified-Since and If-None-Match.
type PollSwarm struct {
	subs   []*pollSub
	ledger *Ledger
	kind   string
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closing  atomic.Bool
	bad      atomic.Int64
	dropped  atomic.Int64 // requests that failed (the subscriber asked again)
	firstErr struct {
		sync.Mutex
		err error
	}
}

type pollSub struct {
	idx     int
	url     string
	mid     string // pushpull: the last mid received
	etag    string // nchan: the last answer's Etag and Last-Modified
	lastMod string
	tick    []Tick
	lat     []int64
}

// OpenPollSwarm starts opt.Count long-polling subscribers on opt.URL (the
// server's subscribe URL; a ws:// scheme is taken as http://).
func OpenPollSwarm(ctx context.Context, opt SwarmOptions) (*PollSwarm, error) {
	base, err := url.Parse(opt.URL)
	if err != nil {
		return nil, err
	}
	switch base.Scheme {
	case "ws":
		base.Scheme = "http"
	case "wss":
		base.Scheme = "https"
	}
	ctx, cancel := context.WithCancel(ctx)
	dial := loopbackDialer(base.Hostname(), opt.Count)
	s := &PollSwarm{
		ledger: opt.Ledger,
		kind:   opt.Kind,
		cancel: cancel,
		client: &http.Client{Transport: &http.Transport{
			DialContext:         func(ctx context.Context, n, a string) (net.Conn, error) { return dial(ctx, n, a) },
			MaxIdleConns:        opt.Count + 16,
			MaxIdleConnsPerHost: opt.Count + 16,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		}},
	}
	for i := 0; i < opt.Count; i++ {
		u := *base
		q := u.Query()
		q.Set("CHANNEL_ID", opt.Channel(i))
		u.RawQuery = q.Encode()
		p := &pollSub{idx: i, url: u.String()}
		if opt.Ledger != nil {
			p.lat = make([]int64, 0, opt.PerConn)
		}
		s.subs = append(s.subs, p)
		s.wg.Add(1)
		go s.run(ctx, p)
		if opt.Progress != nil && (i+1)%1000 == 0 {
			opt.Progress(i + 1)
		}
	}
	return s, nil
}

func (s *PollSwarm) run(ctx context.Context, p *pollSub) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		if err := s.poll(ctx, p); err != nil && ctx.Err() == nil {
			s.failed(p, err)
			if sleep(ctx, 100*time.Millisecond) != nil {
				return
			}
		}
	}
}

// poll holds one request and accounts for its answer.
func (s *PollSwarm) poll(ctx context.Context, p *pollSub) error {
	u := p.url
	if p.mid != "" {
		u += "&mid=" + url.QueryEscape(p.mid)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	if p.lastMod != "" {
		req.Header.Set("If-Modified-Since", p.lastMod)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFrame+1))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if m := resp.Header.Get("Last-Message-Id"); m != "" && p.mid == "" {
			p.mid = m
		}
		return nil
	default:
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	if len(body) > maxFrame {
		return fmt.Errorf("an answer over %d bytes", maxFrame)
	}
	now := time.Now().UnixNano()
	if s.kind == KindNchan {
		p.etag, p.lastMod = resp.Header.Get("Etag"), resp.Header.Get("Last-Modified")
	} else if m := lastMID(body); m != "" {
		p.mid = m
	}
	if s.ledger == nil {
		return nil
	}
	var bad int
	p.tick, bad = parserFor(s.kind)(p.tick[:0], body)
	if bad > 0 {
		s.bad.Add(int64(bad))
	}
	for _, t := range p.tick {
		if s.ledger.Record(p.idx, t.Seq, now) {
			p.lat = append(p.lat, now-t.Sent)
		}
	}
	return nil
}

var keyMID = []byte(`"mid":"`)

// lastMID returns the mid of the last envelope in a pushpull answer.
func lastMID(body []byte) string {
	i := bytes.LastIndex(body, keyMID)
	if i < 0 {
		return ""
	}
	rest := body[i+len(keyMID):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func (s *PollSwarm) failed(p *pollSub, err error) {
	if s.closing.Load() {
		return
	}
	s.dropped.Add(1)
	s.firstErr.Lock()
	if s.firstErr.err == nil {
		s.firstErr.err = fmt.Errorf("subscriber %d: %w", p.idx, err)
	}
	s.firstErr.Unlock()
}

// Dropped returns how many requests failed (each subscriber asked again
// after a failure), and the first reason.
func (s *PollSwarm) Dropped() (int64, error) {
	s.firstErr.Lock()
	defer s.firstErr.Unlock()
	return s.dropped.Load(), s.firstErr.err
}

// Bad returns how many answers' messages carried no bench tick.
func (s *PollSwarm) Bad() int64 { return s.bad.Load() }

// Latencies returns every first-delivery latency recorded, in ns. Call it
// after Close.
func (s *PollSwarm) Latencies() []int64 {
	var all []int64
	for _, p := range s.subs {
		all = append(all, p.lat...)
	}
	return all
}

// Close ends every held request and waits for the subscribers to stop.
func (s *PollSwarm) Close() {
	if s.closing.Swap(true) {
		return
	}
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}
