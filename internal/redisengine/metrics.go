package redisengine

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// metrics are the engine's Prometheus series, created per engine (none is
// registered globally): the caller registers Collectors.
type metrics struct {
	single, multi prometheus.Observer // command latency, pre-resolved by kind
	errors        prometheus.Counter
	probeLag      prometheus.Histogram
	messageLag    prometheus.Histogram
	resubscribed  prometheus.Counter
	repairs       prometheus.Counter
	tagsMismatch  prometheus.Counter
	probeSlow     prometheus.Counter
	all           []prometheus.Collector
}

func newMetrics(e *Engine) *metrics {
	cmd := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pushpull_redis_command_seconds",
		Help:    "Time of Redis calls: kind single is one command, pipeline a pipelined batch.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"kind"})
	m := &metrics{
		single: cmd.WithLabelValues("single"),
		multi:  cmd.WithLabelValues("pipeline"),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_redis_command_errors_total", Help: "Redis calls that failed (neither a nil reply nor a script's first NOSCRIPT is a failure).",
		}),
		probeLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushpull_redis_pubsub_probe_seconds",
			Help:    "Round trip of the probe this process sends through its own pub/sub subscription: the pub/sub lag.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		messageLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushpull_redis_pubsub_delay_seconds",
			Help:    "Age of messages arriving through pub/sub, from their creation time (millisecond precision; clocks of other hosts count).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		resubscribed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_redis_pubsub_reconnects_total", Help: "Pub/sub subscriptions lost (each is made again, and the gap recovered).",
		}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_redis_id_gaps_total", Help: "Gaps in an installation's ids seen on a live subscription, each read back from Redis before later messages are delivered.",
		}),
	}
	m.tagsMismatch = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pushpull_redis_tags_mismatch_total", Help: "Live processes seen on the Redis whose keys are grouped otherwise (storage.tags) than this one's.",
	})
	m.probeSlow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pushpull_redis_pubsub_probe_slow_total", Help: "Checks that found a probe overdue while messages still came through its subscription: kept, as slow rather than silent.",
	})
	m.all = []prometheus.Collector{cmd, m.errors, m.probeLag, m.messageLag, m.resubscribed, m.repairs, m.tagsMismatch, m.probeSlow,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_redis_pubsub_up", Help: "1 while the pub/sub subscription is established and its gap recovered.",
		}, func() float64 {
			if e.opt.PublishMode || e.sub.ready() != nil {
				return 0
			}
			return 1
		}),
		&stateCollector{e: e},
	}
	return m
}

// Collectors returns the engine's Prometheus collectors: command latency
// and errors, pub/sub lag, reconnects and state, and what Redis holds
// (read at each scrape).
func (e *Engine) Collectors() []prometheus.Collector { return e.metrics.all }

// timedClient times every call made through the engine's client.
type timedClient struct {
	rueidis.Client
	m *metrics
}

func (c timedClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	start := time.Now()
	r := c.Client.Do(ctx, cmd)
	c.m.single.Observe(time.Since(start).Seconds())
	if failed(r.Error()) {
		c.m.errors.Inc()
	}
	return r
}

func (c timedClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	start := time.Now()
	rs := c.Client.DoMulti(ctx, cmds...)
	c.m.multi.Observe(time.Since(start).Seconds())
	for _, r := range rs {
		if failed(r.Error()) {
			c.m.errors.Inc()
			break
		}
	}
	return rs
}

// failed reports whether err is a failure: not a missing key, nor the
// NOSCRIPT a script's first EVALSHA gets before the client sends it whole.
func failed(err error) bool {
	if err == nil || rueidis.IsRedisNil(err) {
		return false
	}
	if re, ok := rueidis.IsRedisErr(err); ok && re.IsNoScript() {
		return false
	}
	return true
}

// State is what the engine knows of Redis, for an operator.
type State struct {
	Addrs      []string `json:"addrs"`
	Layout     string   `json:"layout"`
	Cluster    bool     `json:"cluster"`
	Connected  bool     `json:"connected"`
	Subscribed bool     `json:"subscribed"` // pub/sub established and its gap recovered
	Error      string   `json:"error,omitempty"`
	Version    string   `json:"version,omitempty"` // redis_version
	Keys       int64    `json:"keys"`              // DBSIZE of the node asked
	UsedMemory int64    `json:"usedMemory"`        // used_memory, bytes
	Clients    int64    `json:"clients"`           // connected_clients
}

// State asks Redis for its state (INFO, DBSIZE), within the engine's call
// timeout; what it cannot read it leaves zero, with the reason in Error.
func (e *Engine) State(ctx context.Context) State {
	st := State{Addrs: e.opt.Client.InitAddress, Layout: e.opt.Layout}
	if st.Layout == "" {
		st.Layout = Layout10
	}
	st.Subscribed = !e.opt.PublishMode && e.sub.ready() == nil
	c, err := e.client()
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Cluster = c.keys.cluster
	ctx, cancel := e.bound(ctx)
	defer cancel()
	rs := c.client.DoMulti(ctx,
		c.client.B().Info().Section("server", "memory", "clients").Build(),
		c.client.B().Dbsize().Build())
	info, err := rs[0].ToString()
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Connected = true
	st.Keys, _ = rs[1].AsInt64()
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "redis_version":
			st.Version = v
		case "used_memory":
			st.UsedMemory, _ = strconv.ParseInt(v, 10, 64)
		case "connected_clients":
			st.Clients, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return st
}

// stateCollector exports State at each scrape.
type stateCollector struct{ e *Engine }

var (
	descUp      = prometheus.NewDesc("pushpull_redis_up", "1 when Redis answered the scrape's INFO.", nil, nil)
	descKeys    = prometheus.NewDesc("pushpull_redis_keys", "Keys in the Redis database (DBSIZE): the stored messages, channel indexes and online keys.", nil, nil)
	descMemory  = prometheus.NewDesc("pushpull_redis_memory_bytes", "Memory Redis uses (INFO used_memory).", nil, nil)
	descClients = prometheus.NewDesc("pushpull_redis_clients", "Clients connected to Redis (INFO connected_clients).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	ch <- descKeys
	ch <- descMemory
	ch <- descClients
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := c.e.State(ctx)
	up := 0.0
	if st.Connected {
		up = 1
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(st.Keys))
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(st.UsedMemory))
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(st.Clients))
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}
