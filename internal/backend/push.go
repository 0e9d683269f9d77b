package backend

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/pushpull/pushpull/internal/webpush"
)

// Web Push: notifications to users who are not connected, in the shape
// of the Bitrix push module's CPushManager::AddQueue. Each user is
// decided for on this server's own presence; what is to be sent is
// queued (one item per subscription) in the state's PushStore, and a
// worker (RunPush) sends the due items, retrying on 429 and 5xx and
// forgetting subscriptions the push service says are gone.

// PushConfig turns Web Push on.
type PushConfig struct {
	Sender      *webpush.Sender
	DeferDelay  time.Duration // how long a deferred notification waits (300 s)
	MaxQueue    int           // items waiting at most (100,000)
	MaxAttempts int           // tries of one item (10)
	Rate        float64       // push requests per second, this process (100)
	UserRate    float64       // notifications per minute, one user (30)
	Backoff     time.Duration // the first retry's delay, doubled at each (1 s)
	Interval    time.Duration // how often the worker looks for due items (250 ms)
	Lease       time.Duration // how long a claimed item is this process's (5 min)
	// AllowPrivate takes endpoints on addresses that are not public
	// (Sender's client must then connect to them too).
	AllowPrivate bool
}

// ActiveWindow is how recently a user must have been connected to count
// as active: a notification to such a user is deferred, as the Bitrix
// module does for users active in the last 300 s.
const ActiveWindow = 300 * time.Second

// Limits of the push calls.
const (
	maxSubsPerUser = 20
	maxExpiry      = 28 * 24 * 3600 // seconds: what push services keep at most
	defaultExpiry  = 43200
	maxPushText    = 4096
	pushBatch      = 16 // claimed at once: sent within two client timeouts, well inside a lease
	pushWorkers    = 8
	maxBackoff     = 10 * time.Minute
	maxRetryAfter  = time.Hour
	maxUserLimits  = 10000
	stopGrace      = 5 * time.Second // how long a stop waits for the sends under way
)

// pushState is the Web Push half of a Service.
type pushState struct {
	cfg    PushConfig
	store  PushStore
	global *rate.Limiter

	mu    sync.Mutex               // the per-user limiters (LOCKS.md: backend.pushState.mu)
	users map[string]*rate.Limiter // by user

	queued, sent, failed, retried, dropped, skipped prometheus.Counter
}

func newPushState(cfg PushConfig, store PushStore) *pushState {
	if cfg.DeferDelay <= 0 {
		cfg.DeferDelay = ActiveWindow
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 100000
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.UserRate <= 0 {
		cfg.UserRate = 30
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "pushpull_webpush_" + name + "_total", Help: help})
	}
	return &pushState{
		cfg: cfg, store: store,
		global:  rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate))),
		users:   make(map[string]*rate.Limiter),
		queued:  counter("queued", "Web Push notifications queued (one per subscription)."),
		sent:    counter("sent", "Web Push notifications the push services accepted."),
		failed:  counter("failed", "Web Push notifications given up: refused, expired, or out of attempts."),
		retried: counter("retries", "Web Push sends retried after a 429, a 5xx or a network failure."),
		dropped: counter("dropped_subscriptions", "Web Push subscriptions forgotten because the push service answered 404 or 410."),
		skipped: counter("deferred_skipped", "Deferred Web Push notifications not sent because their user came online."),
	}
}

// PushEnabled reports whether Web Push is configured.
func (s *Service) PushEnabled() bool { return s.push != nil }

// VAPIDPublicKey returns the key browsers subscribe with
// (applicationServerKey); "" when Web Push is off.
func (s *Service) VAPIDPublicKey() string {
	if s.push == nil {
		return ""
	}
	return s.push.cfg.Sender.VAPID.PublicKey()
}

var errPushOff = badRequest{"Web Push is off (webPush.vapidPrivateKey)"}

// Subscribe registers sub as one of user's (for application appID).
func (s *Service) Subscribe(ctx context.Context, user, appID string, sub webpush.Subscription) (string, error) {
	if s.push == nil {
		return "", errPushOff
	}
	k, err := sub.Parse()
	if err != nil {
		return "", badf("subscription: %v", err)
	}
	if !s.push.cfg.AllowPrivate {
		if err := webpush.CheckHost(k); err != nil {
			return "", badf("subscription: %v", err)
		}
	}
	ps := PushSub{ID: pushSubID(sub.Endpoint), User: user, AppID: appID, Sub: sub, Created: s.o.Now()}
	return ps.ID, s.push.store.AddSub(ctx, ps, maxSubsPerUser)
}

// Unsubscribe forgets user's subscription with endpoint.
func (s *Service) Unsubscribe(ctx context.Context, user, endpoint string) (bool, error) {
	if s.push == nil {
		return false, errPushOff
	}
	return s.push.store.RemoveSub(ctx, user, pushSubID(endpoint))
}

// Subscriptions returns user's subscriptions.
func (s *Service) Subscriptions(ctx context.Context, user string) ([]PushSub, error) {
	if s.push == nil {
		return nil, errPushOff
	}
	m, err := s.push.store.Subs(ctx, []string{user}, "")
	return m[user], err
}

// Notification is one AddQueue call: a notification to users.
type Notification struct {
	Users          []string
	Skip           []string // SKIP_USERS
	Message        string
	Tag            string // replaces the user's waiting notification with the same tag; the push Topic
	SubTag         string
	Badge          *int64
	Params         json.RawMessage
	AdvancedParams json.RawMessage // senderName, notificationsToCancel, ...
	Expiry         time.Duration   // how long it may wait (EXPIRY; 0: 43,200 s)
	Sound          string
	AppID          string // only the subscriptions of this application ("": all)
	Important      bool   // Urgency: high
	Immediately    bool   // send even to users active or online (silently to those online)
	Deferred       bool   // defer for every user who is not online
}

// Decisions for a user.
const (
	PushSend   = "send"
	PushSilent = "silent" // online now, sent without sound
	PushDefer  = "defer"
	PushSkip   = "skip"
)

// PushDecision is what AddQueue decided for one user.
type PushDecision struct {
	Decision      string `json:"decision"`
	Reason        string `json:"reason,omitempty"`
	Subscriptions int    `json:"subscriptions,omitempty"`
}

// Queued is AddQueue's answer.
type Queued struct {
	Queued int                     `json:"queued"`
	Users  map[string]PushDecision `json:"users"`
}

// pushPayload is what the service worker receives, as JSON.
type pushPayload struct {
	Message        string          `json:"message,omitempty"`
	Tag            string          `json:"tag,omitempty"`
	SubTag         string          `json:"subTag,omitempty"`
	Badge          *int64          `json:"badge,omitempty"`
	Params         json.RawMessage `json:"params,omitempty"`
	AdvancedParams json.RawMessage `json:"advancedParams,omitempty"`
	Sound          string          `json:"sound,omitempty"`
	AppID          string          `json:"appId,omitempty"`
	Important      bool            `json:"important,omitempty"`
	Silent         bool            `json:"silent,omitempty"`
	Time           int64           `json:"time"`
}

// payloads renders n as the loud and the silent payload, refusing one
// past the Web Push limit.
func (n Notification) payloads(now time.Time) (loud, silent []byte, err error) {
	p := pushPayload{Message: n.Message, Tag: n.Tag, SubTag: n.SubTag, Badge: n.Badge, Params: n.Params,
		AdvancedParams: n.AdvancedParams, Sound: n.Sound, AppID: n.AppID, Important: n.Important, Time: now.Unix()}
	loud, _ = json.Marshal(p)
	p.Silent, p.Sound = true, ""
	silent, _ = json.Marshal(p)
	if size := max(len(loud), len(silent)); size > webpush.MaxPayload {
		return nil, nil, badRequest{"notification: " + webpush.PayloadTooLarge{Size: size}.Error()}
	}
	return loud, silent, nil
}

// AddQueue decides, for each user, whether to send n now, silently,
// later, or not at all, and queues what is to be sent:
//
//   - users in Skip, and users without a subscription (of AppID), are
//     skipped;
//   - a user connected now (anywhere: any process on a shared Redis) is
//     skipped, the live channel reaches them, unless Immediately, which
//     sends silently;
//   - with Immediately, everyone else is sent to now;
//   - with Deferred, or for a user connected within ActiveWindow, the
//     notification is deferred: sent after webPush.deferDelay unless the
//     user is connected by then;
//   - everyone else is sent to now.
//
// Tags listed in AdvancedParams.notificationsToCancel cancel the users'
// waiting notifications with those tags first.
func (s *Service) AddQueue(ctx context.Context, n Notification) (Queued, error) {
	if s.push == nil {
		return Queued{}, errPushOff
	}
	now := s.o.Now()
	loud, silent, err := n.payloads(now)
	if err != nil {
		return Queued{}, err
	}
	if n.Expiry <= 0 {
		n.Expiry = defaultExpiry * time.Second
	}
	if cancel := notificationsToCancel(n.AdvancedParams); len(cancel) > 0 {
		if _, err := s.CancelPush(ctx, n.Users, cancel); err != nil {
			return Queued{}, err
		}
	}
	skip := make(map[string]bool, len(n.Skip))
	for _, u := range n.Skip {
		skip[u] = true
	}
	var candidates []string
	for _, u := range n.Users {
		if !skip[u] {
			candidates = append(candidates, u)
		}
	}
	subs, err := s.push.store.Subs(ctx, candidates, n.AppID)
	if err != nil {
		return Queued{}, err
	}
	var subscribed []string
	for _, u := range candidates {
		if len(subs[u]) > 0 {
			subscribed = append(subscribed, u)
		}
	}
	status, err := s.Online(ctx, subscribed)
	if err != nil {
		return Queued{}, err
	}
	out := Queued{Users: make(map[string]PushDecision, len(n.Users))}
	urgency := webpush.UrgencyNormal
	if n.Important {
		urgency = webpush.UrgencyHigh
	}
	var items []PushItem
	for _, u := range n.Users {
		d := PushDecision{Decision: PushSkip}
		st := status[u]
		active := st.LastSeen != nil && time.Duration(*st.LastSeen)*time.Second <= ActiveWindow
		switch {
		case skip[u]:
			d.Reason = "in SKIP_USERS"
		case len(subs[u]) == 0:
			d.Reason = "no subscription"
		case st.Online && n.Immediately:
			d.Decision = PushSilent
		case st.Online:
			d.Reason = "online"
		case n.Immediately:
			d.Decision = PushSend
		case n.Deferred || active:
			d.Decision = PushDefer
		default:
			d.Decision = PushSend
		}
		if d.Decision != PushSkip {
			d.Subscriptions = len(subs[u])
			for _, sub := range subs[u] {
				it := PushItem{ID: randomID(), User: u, Sub: sub.ID, Tag: n.Tag, SubTag: n.SubTag, Payload: loud,
					TTL: int64(n.Expiry / time.Second), Urgency: urgency, Created: now, Due: now}
				switch d.Decision {
				case PushSilent:
					it.Payload = silent
				case PushDefer:
					it.Deferred, it.Due = true, now.Add(s.push.cfg.DeferDelay)
				}
				items = append(items, it)
			}
		}
		out.Users[u] = d
	}
	if len(items) > 0 {
		if err := s.push.store.Enqueue(ctx, items, s.push.cfg.MaxQueue); err != nil {
			return Queued{}, err
		}
		s.push.queued.Add(float64(len(items)))
	}
	out.Queued = len(items)
	return out, nil
}

// notificationsToCancel reads ADVANCED_PARAMS.notificationsToCancel.
func notificationsToCancel(adv json.RawMessage) []string {
	var p struct {
		Cancel []string `json:"notificationsToCancel"`
	}
	if len(adv) == 0 || json.Unmarshal(adv, &p) != nil {
		return nil
	}
	return p.Cancel
}

// CancelPush removes the waiting notifications of users whose tag or
// sub-tag is one of tags, and returns how many.
func (s *Service) CancelPush(ctx context.Context, users, tags []string) (int, error) {
	if s.push == nil {
		return 0, errPushOff
	}
	total := 0
	for _, u := range users {
		n, err := s.push.store.Cancel(ctx, u, tags)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// RunPush sends the due notifications until ctx ends. Sends under way
// then get a few seconds to finish, and their outcome is recorded,
// before it returns, so that the queue a snapshot keeps holds no
// notification both sent and waiting.
func (s *Service) RunPush(ctx context.Context) {
	if s.push == nil {
		return
	}
	t := time.NewTicker(s.push.cfg.Interval)
	defer t.Stop()
	for {
		n := s.pushOnce(ctx)
		if n == pushBatch && ctx.Err() == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pushOnce claims a batch of due items and handles them, pushWorkers at
// a time. It returns how many it claimed.
func (s *Service) pushOnce(ctx context.Context) int {
	p := s.push
	items, err := p.store.Claim(ctx, s.o.Now(), p.cfg.Lease, pushBatch)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Log.Warn("web push: queue unavailable", "err", err)
		}
		return 0
	}
	// What was claimed is seen through when ctx ends: the queue is
	// updated whatever happens, and the sends under way get stopGrace to
	// finish (one cut short is sent again later, maybe twice).
	work := context.WithoutCancel(ctx)
	send, cancelSend := context.WithCancel(work)
	defer cancelSend()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, cancelSend) })
	defer stop()
	sem := make(chan struct{}, pushWorkers)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.pushItem(work, send, it)
		})
	}
	wg.Wait()
	return len(items)
}

// pushItem handles one claimed item: ctx bounds the queue's and the
// presence's calls, send the request to the push service.
func (s *Service) pushItem(ctx, send context.Context, it PushItem) {
	p := s.push
	now := s.o.Now()
	finish := func() {
		if err := p.store.Finish(ctx, it); err != nil {
			s.o.Log.Warn("web push: queue unavailable", "err", err)
		}
	}
	later := func(d time.Duration) { s.reschedule(ctx, it, now.Add(d)) }
	if it.expired(now) {
		p.failed.Inc()
		finish()
		return
	}
	if it.Deferred {
		st, err := s.Online(ctx, []string{it.User})
		if err != nil {
			later(p.cfg.Backoff)
			return
		}
		if st[it.User].Online {
			p.skipped.Inc()
			finish()
			return
		}
		it.Deferred = false
	}
	if d := p.reserve(it.User, now); d > 0 {
		later(d)
		return
	}
	sub, ok, err := p.store.Sub(ctx, it.User, it.Sub)
	if err != nil {
		later(p.cfg.Backoff)
		return
	}
	if !ok { // unsubscribed meanwhile
		finish()
		return
	}
	keys, err := sub.Sub.Parse()
	if err != nil {
		_, _ = p.store.RemoveSub(ctx, it.User, it.Sub)
		p.failed.Inc()
		finish()
		return
	}
	ttl := it.Created.Add(time.Duration(it.TTL) * time.Second).Sub(now)
	res, err := p.cfg.Sender.Send(send, keys, it.Payload, webpush.Options{TTL: ttl, Urgency: it.Urgency, Topic: webpush.Topic(it.Tag)})
	var tooLarge webpush.PayloadTooLarge
	switch {
	case errors.As(err, &tooLarge):
		p.failed.Inc()
		finish()
	case webpush.IsPrivateAddress(err):
		s.o.Log.Warn("web push: subscription dropped", "user", it.User, "err", err)
		_, _ = p.store.RemoveSub(ctx, it.User, it.Sub)
		p.failed.Inc()
		finish()
	case err != nil:
		s.retry(ctx, it, s.o.Now(), 0, err.Error(), finish)
	case res.Delivered():
		p.sent.Inc()
		finish()
	case res.Gone():
		if _, err := p.store.RemoveSub(ctx, it.User, it.Sub); err != nil {
			later(p.cfg.Backoff)
			return
		}
		p.dropped.Inc()
		finish()
	case res.Retryable():
		s.retry(ctx, it, s.o.Now(), res.RetryAfter, res.String(), finish)
	default:
		s.o.Log.Warn("web push: refused", "user", it.User, "status", res.String(), "body", res.Body)
		p.failed.Inc()
		finish()
	}
}

// retry counts an attempt of it and puts it back after Retry-After, or
// else the backoff of its attempts, or gives it up.
func (s *Service) retry(ctx context.Context, it PushItem, now time.Time, retryAfter time.Duration, why string, finish func()) {
	p := s.push
	it.Attempts++
	if it.Attempts >= p.cfg.MaxAttempts {
		s.o.Log.Warn("web push: given up", "user", it.User, "attempts", it.Attempts, "last", why)
		p.failed.Inc()
		finish()
		return
	}
	p.retried.Inc()
	d := min(retryAfter, maxRetryAfter)
	if d <= 0 {
		d = p.cfg.Backoff
		for i := 1; i < it.Attempts && d < maxBackoff; i++ {
			d *= 2
		}
		d = min(d, maxBackoff)
		d += rand.N(d/4 + 1) // spread the processes' retries
	}
	s.reschedule(ctx, it, now.Add(d))
}

// reschedule puts a claimed item back, due at due.
func (s *Service) reschedule(ctx context.Context, it PushItem, due time.Time) {
	it.Due = due
	if err := s.push.store.Reschedule(ctx, it); err != nil {
		s.o.Log.Warn("web push: queue unavailable", "err", err)
	}
}

// reserve takes one send from user's and the global rate, or returns how
// long to wait for one (taking nothing).
func (p *pushState) reserve(user string, now time.Time) time.Duration {
	p.mu.Lock()
	l := p.users[user]
	if l == nil {
		if len(p.users) >= maxUserLimits {
			for u, o := range p.users { // forget the users at full burst: they lose nothing
				if o.TokensAt(now) >= float64(o.Burst()) {
					delete(p.users, u)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(p.cfg.UserRate/60), max(1, int(p.cfg.UserRate)))
		p.users[user] = l
	}
	p.mu.Unlock()
	ur := l.ReserveN(now, 1)
	if d := ur.DelayFrom(now); d > 0 {
		ur.CancelAt(now)
		return d
	}
	gr := p.global.ReserveN(now, 1)
	if d := gr.DelayFrom(now); d > 0 {
		gr.CancelAt(now)
		ur.CancelAt(now)
		return d
	}
	return 0
}

// PushCollectors returns the Web Push metrics (none when it is off).
func (s *Service) PushCollectors() []prometheus.Collector {
	p := s.push
	if p == nil {
		return nil
	}
	stats := func() (int, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, oldest, _ := p.store.QueueStats(ctx)
		return n, oldest
	}
	return []prometheus.Collector{p.queued, p.sent, p.failed, p.retried, p.dropped, p.skipped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_webpush_queue_length", Help: "Web Push notifications waiting (in the shared queue on Redis).",
		}, func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_webpush_queue_age_seconds", Help: "Age of the oldest Web Push notification waiting (0: none).",
		}, func() float64 {
			_, oldest := stats()
			if oldest.IsZero() {
				return 0
			}
			return time.Since(oldest).Seconds()
		}),
	}
}
