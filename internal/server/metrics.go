package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushpull/pushpull/internal/store"
)

// metrics are the Prometheus series the server exports. Hot-path counts
// are read from the transports' own atomics when scraped.
type metrics struct {
	reg            *prometheus.Registry
	published      prometheus.Counter
	publishErrors  prometheus.Counter
	publishSeconds prometheus.Histogram
	handler        http.Handler
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_published_messages_total", Help: "Messages accepted on the publish route.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushpull_publish_errors_total", Help: "Publishes refused because the engine failed.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pushpull_publish_seconds", Help: "Time to store and hand a message to the engine.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
	}
	wsm := s.ws.Metrics()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.published, m.publishErrors, m.publishSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_websocket_connections", Help: "Open WebSocket connections.",
		}, func() float64 { return float64(wsm.Sessions.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_polling_requests", Help: "Long-polling requests being held.",
		}, func() float64 { return float64(s.poll.Count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushpull_channels", Help: "Channels with subscribers on this process.",
		}, func() float64 { return float64(s.hub.Channels()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushpull_websocket_frames_total", Help: "WebSocket frames written.",
		}, func() float64 { return float64(wsm.Frames.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushpull_slow_consumers_total", Help: "WebSocket clients dropped because their queue was full.",
		}, func() float64 { return float64(wsm.SlowConsumers.Load()) }),
	)
	if st, ok := s.gate.Engine.(interface{ Usage() store.Usage }); ok {
		// The memory store's bounds at work.
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushpull_store_messages", Help: "Messages the memory store keeps.",
			}, func() float64 { return float64(st.Usage().Messages) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushpull_store_bytes", Help: "Bytes of the messages the memory store keeps (storage.maxBytes bounds it).",
			}, func() float64 { return float64(st.Usage().Bytes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pushpull_store_evicted_total", Help: "Messages the memory store dropped before they expired, to stay within its bounds.",
			}, func() float64 { return float64(st.Usage().Evicted) }),
		)
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		notFound(w)
		return
	}
	m.handler.ServeHTTP(w, r)
}
