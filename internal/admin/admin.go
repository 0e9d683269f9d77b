// Package admin serves the live admin page of a process, on its trusted
// server behind the backend key: the processes and their connections,
// channels, publish and delivery rates and latency over the last minutes,
// the Redis state, readiness, recent warnings and errors, and a check of
// the portal's security key. The page (static/, embedded) is plain
// JavaScript drawing inline SVG; it reads everything from one JSON route,
// whose numbers are those of the process's Prometheus registry.
package admin

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/httpjson"
)

//go:embed static
var static embed.FS

// Options are what the page shows and where it reads it.
type Options struct {
	Key       string              // the backend key: the bearer token of the page's API
	ProcessID string              // this process's unique id
	Gatherer  prometheus.Gatherer // the process's metrics
	Ready     func(context.Context) error
	Processes func(context.Context) ([]engine.ProcessStats, error)
	// Channels calls f for every channel with subscribers on this process.
	Channels func(f func(channel string, subscribers int))
	Redis    func(context.Context) any // the Redis state; nil: not on Redis
	CheckKey func(key string) any      // compares a pasted key with the security key
	Errors   *Ring                     // recent warnings and errors; nil: none kept

	Interval time.Duration // between samples of the charts (default 2 s)
	Window   int           // samples kept (default 300: 10 minutes at 2 s)
}

// Admin is the page's handlers and its sampler.
type Admin struct {
	o Options

	mu      sync.Mutex
	samples []Sample // oldest first, at most o.Window
	prev    *raw     // the last gathered counters
}

// Sample is one point of the charts: what happened since the sample
// before.
type Sample struct {
	Time        int64   `json:"t"`           // unix ms
	Published   float64 `json:"published"`   // messages per second
	Delivered   float64 `json:"delivered"`   // deliveries per second
	Connections float64 `json:"connections"` // open at the time
	LatencyMean float64 `json:"latencyMean"` // publish latency, seconds; NaN-free: 0 without publishes
	LatencyP99  float64 `json:"latencyP99"`
	RedisMean   float64 `json:"redisMean"` // Redis call latency, seconds
}

// raw is what a sample derives from.
type raw struct {
	t                    time.Time
	published            float64
	delivered            float64
	connections          float64
	latCount, latSum     float64
	latBuckets           []bucket
	redisCount, redisSum float64
}

type bucket struct{ le, n float64 }

// New returns the admin page.
func New(o Options) *Admin {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 300
	}
	return &Admin{o: o}
}

// Run samples the charts until ctx ends.
func (a *Admin) Run(ctx context.Context) {
	t := time.NewTicker(a.o.Interval)
	defer t.Stop()
	a.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.sample(now)
		}
	}
}

func (a *Admin) sample(now time.Time) {
	fams, err := a.o.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	r := &raw{t: now}
	for _, f := range fams {
		switch f.GetName() {
		case "pushpull_published_messages_total":
			r.published = sum(f)
		case "pushpull_delivered_messages_total":
			r.delivered = sum(f)
		case "pushpull_connections":
			r.connections = sum(f)
		case "pushpull_publish_seconds":
			if len(f.Metric) > 0 {
				h := f.Metric[0].GetHistogram()
				r.latCount, r.latSum = float64(h.GetSampleCount()), h.GetSampleSum()
				for _, b := range h.Bucket {
					r.latBuckets = append(r.latBuckets, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
				}
			}
		case "pushpull_redis_command_seconds":
			for _, m := range f.Metric {
				r.redisCount += float64(m.GetHistogram().GetSampleCount())
				r.redisSum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.prev
	a.prev = r
	if p == nil {
		return
	}
	dt := r.t.Sub(p.t).Seconds()
	if dt <= 0 {
		return
	}
	s := Sample{
		Time:        r.t.UnixMilli(),
		Published:   math.Max(r.published-p.published, 0) / dt,
		Delivered:   math.Max(r.delivered-p.delivered, 0) / dt,
		Connections: r.connections,
	}
	if n := r.latCount - p.latCount; n > 0 {
		s.LatencyMean = (r.latSum - p.latSum) / n
		s.LatencyP99 = quantile(0.99, r.latBuckets, p.latBuckets, n)
	}
	if n := r.redisCount - p.redisCount; n > 0 {
		s.RedisMean = (r.redisSum - p.redisSum) / n
	}
	a.samples = append(a.samples, s)
	if len(a.samples) > a.o.Window {
		a.samples = slices.Delete(a.samples, 0, len(a.samples)-a.o.Window)
	}
}

func sum(f *dto.MetricFamily) float64 {
	var v float64
	for _, m := range f.Metric {
		v += value(m)
	}
	return v
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// quantile estimates the q-quantile of the observations between two
// readings of a histogram's cumulative buckets, interpolating linearly
// within a bucket as Prometheus' histogram_quantile does.
func quantile(q float64, now, before []bucket, n float64) float64 {
	rank := q * n
	lower, prevCount := 0.0, 0.0
	for i, b := range now {
		c := b.n
		if i < len(before) {
			c -= before[i].n
		}
		if c >= rank {
			if c == prevCount {
				return b.le
			}
			return lower + (b.le-lower)*(rank-prevCount)/(c-prevCount)
		}
		lower, prevCount = b.le, c
	}
	return lower // beyond the last bucket: its bound
}

// shown are the metric families the page shows, as /metrics names them.
var shown = []string{
	"pushpull_ready", "pushpull_connections", "pushpull_connects_total", "pushpull_disconnects_total",
	"pushpull_websocket_connections", "pushpull_polling_requests", "pushpull_channels",
	"pushpull_published_messages_total", "pushpull_publish_errors_total", "pushpull_delivered_messages_total",
	"pushpull_written_bytes_total", "pushpull_slow_consumers_total", "pushpull_rate_limited_messages_total", "pushpull_refused_connections_total",
	"pushpull_resume_requests_total", "pushpull_store_messages", "pushpull_store_bytes",
	"pushpull_redis_up", "pushpull_redis_pubsub_up", "pushpull_redis_keys", "pushpull_redis_memory_bytes",
	"pushpull_redis_clients", "pushpull_redis_pubsub_reconnects_total", "pushpull_redis_command_errors_total",
	"go_goroutines", "process_resident_memory_bytes", "process_open_fds",
}

// series names a metric as the text format writes it: name{a="x",b="y"},
// labels sorted.
func series(name string, m *dto.Metric) string {
	if len(m.Label) == 0 {
		return name
	}
	ls := slices.Clone(m.Label)
	sort.Slice(ls, func(i, j int) bool { return ls[i].GetName() < ls[j].GetName() })
	var b strings.Builder
	b.WriteString(name + "{")
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.GetName() + "=" + strconv.Quote(l.GetValue()))
	}
	b.WriteByte('}')
	return b.String()
}

// State is what the page's API answers.
type State struct {
	Process      string                `json:"process"`
	Time         int64                 `json:"time"` // unix ms
	Ready        bool                  `json:"ready"`
	ReadyError   string                `json:"readyError,omitempty"`
	Metrics      map[string]float64    `json:"metrics"`
	Processes    []engine.ProcessStats `json:"processes"`
	ProcessesErr string                `json:"processesError,omitempty"`
	Channels     int                   `json:"channels"`
	TopChannels  []ChannelCount        `json:"topChannels"`
	Redis        any                   `json:"redis"`
	Errors       []Record              `json:"errors"`
	History      []Sample              `json:"history"`
	IntervalMs   int64                 `json:"intervalMs"`
}

// ChannelCount is a channel with its subscribers on this process; the id
// is shortened (a private channel's id is what lets a client subscribe).
type ChannelCount struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// topChannels is how many of the busiest channels the page lists.
const topChannels = 10

func (a *Admin) state(ctx context.Context) State {
	st := State{Process: a.o.ProcessID, Time: time.Now().UnixMilli(), Metrics: map[string]float64{},
		IntervalMs: a.o.Interval.Milliseconds()}
	if err := a.o.Ready(ctx); err != nil {
		st.ReadyError = err.Error()
	} else {
		st.Ready = true
	}
	fams, _ := a.o.Gatherer.Gather()
	for _, f := range fams {
		if !slices.Contains(shown, f.GetName()) {
			continue
		}
		for _, m := range f.Metric {
			st.Metrics[series(f.GetName(), m)] = value(m)
		}
	}
	if a.o.Processes != nil {
		ps, err := a.o.Processes(ctx)
		if err != nil {
			st.ProcessesErr = err.Error()
		}
		st.Processes = ps
	}
	if a.o.Channels != nil {
		// The busiest, kept while counting (f runs under the hub's
		// locks): no list of every channel is made.
		top := make([]ChannelCount, 0, topChannels+1)
		a.o.Channels(func(c string, n int) {
			st.Channels++
			if len(top) == topChannels && !busier(ChannelCount{c, n}, top[len(top)-1]) {
				return
			}
			i := sort.Search(len(top), func(i int) bool { return busier(ChannelCount{c, n}, top[i]) })
			top = slices.Insert(top, i, ChannelCount{c, n})
			if len(top) > topChannels {
				top = top[:topChannels]
			}
		})
		for _, c := range top {
			st.TopChannels = append(st.TopChannels, ChannelCount{shorten(c.Channel), c.Subscribers})
		}
	}
	if a.o.Redis != nil {
		st.Redis = a.o.Redis(ctx)
	}
	if a.o.Errors != nil {
		st.Errors = a.o.Errors.Records()
	}
	a.mu.Lock()
	st.History = slices.Clone(a.samples)
	a.mu.Unlock()
	return st
}

// busier orders channels by subscribers, then by id.
func busier(a, b ChannelCount) bool {
	return a.Subscribers > b.Subscribers || a.Subscribers == b.Subscribers && a.Channel < b.Channel
}

// shorten keeps the start of a channel id (and a tenant's prefix).
func shorten(c string) string {
	const keep = 8
	prefix, id, ok := strings.Cut(c, "|")
	if !ok {
		prefix, id = "", c
	} else {
		prefix += "|"
	}
	if len(id) <= keep {
		return c
	}
	return prefix + id[:keep] + "…"
}

// authorized reports whether r carries the backend key as a bearer token.
func (a *Admin) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	return ok && a.o.Key != "" && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(a.o.Key)) == 1
}

// maxKeyBody bounds a key check's body.
const maxKeyBody = 4 << 10

// Handler serves the page under prefix ("/pushpull/admin/"): the page
// itself to anyone (it holds no data), its script, and its API to the
// backend key only.
func (a *Admin) Handler(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(prefix, w, r) })
}

func (a *Admin) serve(prefix string, w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		path, ok = strings.CutPrefix(r.URL.Path+"/", prefix)
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case path == "" && r.Method == http.MethodGet:
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, prefix, http.StatusMovedPermanently)
			return
		}
		a.file(w, "static/index.html", "text/html; charset=utf-8")
	case path == "admin.js" && r.Method == http.MethodGet:
		a.file(w, "static/admin.js", "text/javascript; charset=utf-8")
	case path == "api/state" || path == "api/keycheck":
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushpull admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "the backend key (security.backendKey) is needed, as a bearer token"})
			return
		}
		if path == "api/state" && r.Method == http.MethodGet {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			writeJSON(w, http.StatusOK, a.state(ctx))
			return
		}
		if path == "api/keycheck" && r.Method == http.MethodPost {
			a.keyCheck(w, r)
			return
		}
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	default:
		http.NotFound(w, r)
	}
}

// keyCheck answers whether the pasted key ({"key": "..."}) is the security
// key in force. The key is neither echoed nor logged.
func (a *Admin) keyCheck(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxKeyBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body not read"})
		return
	}
	if len(body) > maxKeyBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "a key is at most 4 KB"})
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `the body is {"key": "..."}`})
		return
	}
	writeJSON(w, http.StatusOK, a.o.CheckKey(req.Key))
}

func (a *Admin) file(w http.ResponseWriter, name, ctype string) {
	b, err := fs.ReadFile(static, name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	_, _ = w.Write(b)
}

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) { httpjson.Write(w, code, v) }
