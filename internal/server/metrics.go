package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/format"
)

// protoVersion is the protocol version a connection speaks, as a metrics
// label: 1-2 (a push-stream cursor in the request), 3 (text or JSON),
// 4 (protobuf), 5 (JSON-RPC).
type protoVersion uint8

const (
	proto12 protoVersion = iota
	proto3
	proto4
	proto5
	protoCount
)

var protoNames = [protoCount]string{"1-2", "3", "4", "5"}

func versionOf(f format.Format, legacy bool) protoVersion {
	switch {
	case legacy:
		return proto12
	case f == format.Protobuf:
		return proto4
	case f == format.JSONRPC:
		return proto5
	}
	return proto3
}

// The transports, as a metrics label.
const (
	transportWS = iota
	transportPoll
	transportCount
)

var transportNames = [transportCount]string{"websocket", "longpolling"}

// closeCodes are the WebSocket close codes counted under their own label;
// any other is counted as "other".
var closeCodes = []int{
	protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseProtocolError, 1005, 1006,
	protocol.CloseInvalidPayload, protocol.ClosePolicy, protocol.CloseTooBig, protocol.CloseInternalError,
	protocol.CloseServiceRestart, protocol.CloseConfigReplaced, protocol.CloseChannelExpired,
	protocol.CloseServerRestarted, protocol.CloseConfigExpired, protocol.CloseManual, protocol.CloseStuck,
	protocol.CloseWrongChannel, protocol.ClosePublicRequired, protocol.CloseUnparseable, protocol.CloseNotAllowed,
	protocol.CloseUnknownCommand, protocol.CloseTooManyMessages, protocol.CloseNoReceivers,
	protocol.CloseTooManyChannels, protocol.CloseBadChannelID, protocol.ClosePrivate, protocol.CloseSignature,
	protocol.CloseTooManyConns,
}

// metrics are the Prometheus series the server exports. Every labelled
// child is resolved once, here; hot-path counts (deliveries, frames, bytes)
// are read from the hub's and transports' own atomics when scraped.
type metrics struct {
	reg            *prometheus.Registry
	published      prometheus.Counter
	publishErrors  prometheus.Counter
	publishSeconds prometheus.Histogram
	handler        http.Handler

	conns        [protoCount][transportCount]prometheus.Gauge
	connects     [protoCount][transportCount]prometheus.Counter
	disconnects  map[int]prometheus.Counter // by close code; written only by newMetrics
	otherClose   prometheus.Counter
	refusedPerIP prometheus.Counter // subscribe requests over limits.maxConnPerIP
	resumes      [transportCount]prometheus.Counter
	resumed      [transportCount]prometheus.Observer // messages each resume returned
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_published_messages_total", Help: "Messages accepted for publishing (backend and clients).",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_publish_errors_total", Help: "Publishes refused because the engine failed.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pushpull_publish_seconds", Help: "Time to store a message and hand it to the engine.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		disconnects: make(map[int]prometheus.Counter, len(closeCodes)),
		refusedPerIP: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_refused_connections_total", Help: "Subscribe requests refused (429) for going over limits.maxConnPerIP.",
		}),
	}
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pushpull_connections", Help: "Open subscriber connections (WebSockets and held long polls) by protocol version and transport.",
	}, []string{"protocol", "transport"})
	connects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushpull_connects_total", Help: "Subscriber connections accepted (WebSocket sessions, long-poll requests) by protocol version and transport.",
	}, []string{"protocol", "transport"})
	for p := range protoCount {
		for t := range transportCount {
			m.conns[p][t] = conns.WithLabelValues(protoNames[p], transportNames[t])
			m.connects[p][t] = connects.WithLabelValues(protoNames[p], transportNames[t])
		}
	}
	disconnects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushpull_disconnects_total", Help: "WebSocket sessions ended, by close code (1006: without a close frame: the peer vanished, stopped answering pings, or read too slowly).",
	}, []string{"code"})
	for _, c := range closeCodes {
		m.disconnects[c] = disconnects.WithLabelValues(strconv.Itoa(c))
	}
	m.otherClose = disconnects.WithLabelValues("other")
	resumes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushpull_resume_requests_total", Help: "Subscribe requests that resumed from history (a mid, tag or time), by transport.",
	}, []string{"transport"})
	resumed := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pushpull_resume_messages", Help: "Messages each resume read from history, by transport.",
		Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	}, []string{"transport"})
	for t := range transportCount {
		m.resumes[t] = resumes.WithLabelValues(transportNames[t])
		m.resumed[t] = resumed.WithLabelValues(transportNames[t])
	}

	wsm := s.ws.Metrics()
	pst := s.poll.Stats()
	counter := func(name, help string, labels prometheus.Labels, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	const answersHelp = "Long-poll requests answered, by answer: messages (200), not_modified (304), evicted (429), failed (503), gone (the client left first)."
	const bytesHelp = "Bytes written to subscribers, by transport (WebSocket frames of every kind, long-poll bodies)."
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.published, m.publishErrors, m.publishSeconds,
		conns, connects, disconnects, resumes, resumed, m.refusedPerIP,
		gauge("pushpull_websocket_connections", "Open WebSocket connections.",
			func() float64 { return float64(wsm.Sessions.Load()) }),
		gauge("pushpull_polling_requests", "Long-polling requests being held.",
			func() float64 { return float64(s.poll.Count()) }),
		gauge("pushpull_channels", "Channels with subscribers on this process.",
			func() float64 { return float64(s.hub.Channels()) }),
		gauge("pushpull_ready", "1 while the engine stores and delivers messages (what /readyz answers).",
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if s.engine.Ready(ctx) != nil {
					return 0
				}
				return 1
			}),
		counter("pushpull_delivered_messages_total", "Messages handed to subscribers on this process: one per subscriber and channel.", nil, s.hub.Delivered),
		counter("pushpull_websocket_frames_total", "WebSocket frames written.", nil, wsm.Frames.Load),
		counter("pushpull_written_bytes_total", bytesHelp, prometheus.Labels{"transport": "websocket"}, wsm.Bytes.Load),
		counter("pushpull_written_bytes_total", bytesHelp, prometheus.Labels{"transport": "longpolling"}, pst.Bytes.Load),
		counter("pushpull_longpoll_answers_total", answersHelp, prometheus.Labels{"answer": "messages"}, pst.Messages.Load),
		counter("pushpull_longpoll_answers_total", answersHelp, prometheus.Labels{"answer": "not_modified"}, pst.NotModified.Load),
		counter("pushpull_longpoll_answers_total", answersHelp, prometheus.Labels{"answer": "evicted"}, pst.Evicted.Load),
		counter("pushpull_longpoll_answers_total", answersHelp, prometheus.Labels{"answer": "failed"}, pst.Failed.Load),
		counter("pushpull_longpoll_answers_total", answersHelp, prometheus.Labels{"answer": "gone"}, pst.Gone.Load),
		counter("pushpull_slow_consumers_total", "WebSocket clients dropped because their queue was full.", nil, wsm.SlowConsumers.Load),
		counter("pushpull_rate_limited_messages_total", "Client publishes refused for going over limits.clientMessages.", nil, s.clientRate.refusedCount),
	)
	if st, ok := s.gate.Engine.(interface{ Usage() store.Usage }); ok {
		// The memory store's history and its bounds at work.
		reg.MustRegister(
			gauge("pushpull_store_messages", "Messages the memory store keeps (the history).",
				func() float64 { return float64(st.Usage().Messages) }),
			gauge("pushpull_store_bytes", "Bytes of the messages the memory store keeps (storage.maxBytes bounds it).",
				func() float64 { return float64(st.Usage().Bytes) }),
			counter("pushpull_store_evicted_total", "Messages the memory store dropped before they expired, to stay within its bounds.", nil,
				func() int64 { return int64(st.Usage().Evicted) }),
		)
	}
	if e, ok := s.gate.Engine.(interface{ Collectors() []prometheus.Collector }); ok {
		reg.MustRegister(e.Collectors()...)
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// connected counts a subscriber connection that opened; the caller calls
// disconnected (WebSocket) or left (long polling) when it ends.
func (m *metrics) connected(p protoVersion, t int) {
	m.conns[p][t].Inc()
	m.connects[p][t].Inc()
}

// disconnected counts a WebSocket session that ended with code.
func (m *metrics) disconnected(p protoVersion, code int) {
	m.conns[p][transportWS].Dec()
	m.closed(code)
}

// closed counts a close code.
func (m *metrics) closed(code int) {
	if c, ok := m.disconnects[code]; ok {
		c.Inc()
		return
	}
	m.otherClose.Inc()
}

// left counts a long poll that ended.
func (m *metrics) left(p protoVersion) { m.conns[p][transportPoll].Dec() }

// resume counts a resume that read n messages from history.
func (m *metrics) resume(t, n int) {
	m.resumes[t].Inc()
	m.resumed[t].Observe(float64(n))
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		notFound(w)
		return
	}
	m.handler.ServeHTTP(w, r)
}
