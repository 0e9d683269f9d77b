package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// running is a process started on free ports: sub serves subscribers, pub
// the backend routes.
type running struct {
	app      *App
	sub, pub string
}

// runApp runs a process of cfg (its ports set to 0) until the test ends.
func runApp(t *testing.T, cfg *config.Config, log *slog.Logger) *running {
	t.Helper()
	for i := range cfg.Servers {
		cfg.Servers[i].Port = 0
	}
	cfg.ShutdownTimeout = 5
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	addrs := a.Addrs()
	return &running{app: a, sub: addrs[0].String(), pub: addrs[1].String()}
}

// scrape returns the text of /metrics.
func (r *running) scrape(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + r.pub + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// sample returns the value of the series named exactly series (name and
// labels as the text format writes them, labels sorted), or -1 if absent.
func sample(text, series string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// waitMetric waits until series has value want.
func (r *running) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	var got float64
	testutil.WaitFor(t, series+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
		got = sample(r.scrape(t), series)
		return got == want
	})
}

func (r *running) publish(t testing.TB, ch, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+r.pub+"/bitrix/pub/?CHANNEL_ID="+ch, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Message-Expiry", "3600") // stored: without an expiry a message is transient
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}

// dialWS opens a subscriber WebSocket with query.
func (r *running) dialWS(t testing.TB, query string) (net.Conn, io.ReadWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, "ws://"+r.sub+"/bitrix/subws/?"+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var rw io.ReadWriter = conn
	if br != nil {
		rw = struct {
			io.Reader
			io.Writer
		}{br, conn}
	}
	return conn, rw
}

// readText reads the next text message from a server.
func readText(t testing.TB, conn net.Conn, rw io.ReadWriter) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			t.Fatal(err)
		}
		if op == ws.OpText {
			return string(data)
		}
	}
}

const (
	metricsChannel = "0123456789abcdef0123456789abcdef"
	wsProto3       = `pushpull_connections{protocol="3",transport="websocket"}`
	wsProto4       = `pushpull_connections{protocol="4",transport="websocket"}`
	pollProto3     = `pushpull_connections{protocol="3",transport="longpolling"}`
)

// The metrics move with what clients and the backend do: connections by
// protocol and transport open and close, disconnects count their close
// code, publishes and deliveries count, bytes are written, and resumes
// count how many messages each read back.
func TestMetricsMove(t *testing.T) {
	t.Run("memory", func(t *testing.T) { metricsSuite(t, config.Default()) })
	t.Run("redis", func(t *testing.T) {
		r := redistest.Start(t)
		cfg := config.Default()
		cfg.Storage.Type = "redis"
		cfg.Storage.Host, cfg.Storage.Port = "127.0.0.1", r.Port
		metricsSuite(t, cfg)
	})
}

func metricsSuite(t *testing.T, cfg *config.Config) {
	r := runApp(t, cfg, nil)
	testutil.WaitFor(t, "ready", func() bool { return sample(r.scrape(t), "pushpull_ready") == 1 })
	m := r.scrape(t)
	for _, s := range []string{wsProto3, `pushpull_connects_total{protocol="5",transport="longpolling"}`,
		`pushpull_disconnects_total{code="1006"}`, "pushpull_delivered_messages_total",
		`pushpull_written_bytes_total{transport="websocket"}`, "pushpull_rate_limited_messages_total",
		"pushpull_slow_consumers_total"} {
		if v := sample(m, s); v != 0 {
			t.Errorf("%s = %v at the start; want 0", s, v)
		}
	}
	for _, s := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if v := sample(m, s); v <= 0 {
			t.Errorf("%s = %v; want the runtime and process collectors", s, v)
		}
	}

	// A protocol-3 WebSocket and a protocol-4 one.
	conn3, rw3 := r.dialWS(t, "CHANNEL_ID="+metricsChannel)
	conn4, _ := r.dialWS(t, "CHANNEL_ID="+metricsChannel+"&binaryMode=true")
	r.waitMetric(t, wsProto3, 1)
	r.waitMetric(t, wsProto4, 1)
	m = r.scrape(t)
	if v := sample(m, `pushpull_connects_total{protocol="3",transport="websocket"}`); v != 1 {
		t.Errorf("protocol-3 WebSocket connects %v; want 1", v)
	}
	if v := sample(m, "pushpull_websocket_connections"); v != 2 {
		t.Errorf("pushpull_websocket_connections %v; want 2", v)
	}

	// A publish reaches both: one message published, two delivered.
	r.publish(t, metricsChannel, `{"n":1}`)
	got := readText(t, conn3, rw3)
	if !strings.Contains(got, `"n":1`) {
		t.Fatalf("got %q", got)
	}
	first := midOf(t, got)
	r.waitMetric(t, "pushpull_delivered_messages_total", 2)
	m = r.scrape(t)
	if v := sample(m, "pushpull_published_messages_total"); v != 1 {
		t.Errorf("published %v; want 1", v)
	}
	if v := sample(m, "pushpull_publish_seconds_count"); v != 1 {
		t.Errorf("publish latency observations %v; want 1", v)
	}
	testutil.WaitFor(t, "bytes written", func() bool {
		return sample(r.scrape(t), `pushpull_written_bytes_total{transport="websocket"}`) > float64(len(`{"n":1}`))
	})

	// The client closes with 3004; the protocol-4 one vanishes (1006).
	if err := wsutil.WriteClientMessage(conn3, ws.OpClose, ws.NewCloseFrameBody(3004, "bye")); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `pushpull_disconnects_total{code="3004"}`, 1)
	conn4.Close()
	r.waitMetric(t, `pushpull_disconnects_total{code="1006"}`, 1)
	r.waitMetric(t, wsProto3, 0)
	r.waitMetric(t, wsProto4, 0)

	// A WebSocket that is refused (no channel) closes with 4010.
	r.dialWS(t, "CHANNEL_ID=nope")
	r.waitMetric(t, `pushpull_disconnects_total{code="4010"}`, 1)

	// Two more messages; a WebSocket resuming after the first reads two
	// back, a long poll resuming after the second one.
	watch, wrw := r.dialWS(t, "CHANNEL_ID="+metricsChannel)
	r.publish(t, metricsChannel, `{"n":2}`)
	second := midOf(t, readText(t, watch, wrw))
	r.publish(t, metricsChannel, `{"n":3}`)
	third := midOf(t, readText(t, watch, wrw))
	conn, rw := r.dialWS(t, "CHANNEL_ID="+metricsChannel+"&mid="+first)
	// History may come in one frame or several.
	for got := ""; !strings.Contains(got, `"n":3`); {
		got += readText(t, conn, rw)
		if !strings.Contains(got, `"n":2`) {
			t.Fatalf("resumed WebSocket got %q first; want the message after its mid", got)
		}
	}
	r.waitMetric(t, `pushpull_resume_requests_total{transport="websocket"}`, 1)
	m = r.scrape(t)
	if v := sample(m, `pushpull_resume_messages_sum{transport="websocket"}`); v != 2 {
		t.Errorf("WebSocket resume read %v messages; want 2", v)
	}
	if v := sample(m, `pushpull_resume_messages_bucket{transport="websocket",le="1"}`); v != 0 {
		t.Errorf("a 2-message resume counted in the le=1 bucket (%v)", v)
	}
	body := poll(t, r, "CHANNEL_ID="+metricsChannel+"&mid="+second)
	if !strings.Contains(body, `"n":3`) || strings.Contains(body, `"n":2`) {
		t.Fatalf("resumed long poll answered %q", body)
	}
	m = r.scrape(t)
	if v := sample(m, `pushpull_resume_messages_sum{transport="longpolling"}`); v != 1 {
		t.Errorf("long-poll resume read %v messages; want 1", v)
	}
	if v := sample(m, `pushpull_longpoll_answers_total{answer="messages"}`); v != 1 {
		t.Errorf("long-poll answers with messages %v; want 1", v)
	}
	if v := sample(m, `pushpull_connects_total{protocol="3",transport="longpolling"}`); v != 1 {
		t.Errorf("long-poll connects %v; want 1", v)
	}
	if v := sample(m, `pushpull_written_bytes_total{transport="longpolling"}`); v != float64(len(body)) {
		t.Errorf("long-poll bytes %v; want %d", v, len(body))
	}

	// A held long poll is a connection until it is answered.
	done := make(chan string, 1)
	go func() { done <- poll(t, r, "CHANNEL_ID="+metricsChannel+"&mid="+third) }()
	r.waitMetric(t, pollProto3, 1)
	r.waitMetric(t, "pushpull_polling_requests", 1)
	r.publish(t, metricsChannel, `{"n":4}`)
	if got := <-done; !strings.Contains(got, `"n":4`) {
		t.Fatalf("held poll answered %q", got)
	}
	r.waitMetric(t, pollProto3, 0)

	if cfg.Storage.Type == "redis" {
		m = r.scrape(t)
		if v := sample(m, "pushpull_redis_command_errors_total"); v != 0 {
			t.Errorf("%v Redis calls failed; want none (a script's first NOSCRIPT is no failure)", v)
		}
		for _, s := range []string{"pushpull_redis_up", "pushpull_redis_pubsub_up"} {
			if v := sample(m, s); v != 1 {
				t.Errorf("%s = %v; want 1", s, v)
			}
		}
		if v := sample(m, "pushpull_redis_keys"); v < 4 {
			t.Errorf("pushpull_redis_keys = %v; want the 4 messages at least", v)
		}
		if v := sample(m, `pushpull_redis_command_seconds_count{kind="single"}`) + sample(m, `pushpull_redis_command_seconds_count{kind="pipeline"}`); v < 4 {
			t.Errorf("%v Redis calls timed; want one per publish at least", v)
		}
		if v := sample(m, "pushpull_redis_pubsub_delay_seconds_count"); v < 4 {
			t.Errorf("pub/sub delay observed %v times; want once per message", v)
		}
		testutil.WaitFor(t, "a probe timed", func() bool {
			return sample(r.scrape(t), "pushpull_redis_pubsub_probe_seconds_count") >= 1
		})
	} else {
		m = r.scrape(t)
		if v := sample(m, "pushpull_store_messages"); v != 4 {
			t.Errorf("pushpull_store_messages = %v; want 4", v)
		}
	}
}

// poll runs one long poll and returns its body.
func poll(t testing.TB, r *running, query string) string {
	resp, err := http.Get("http://" + r.sub + "/bitrix/sub/?" + query)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// midOf returns the mid of a text envelope.
func midOf(t testing.TB, envelope string) string {
	t.Helper()
	_, rest, ok := strings.Cut(envelope, `"mid":"`)
	if !ok || len(rest) < 26 {
		t.Fatalf("no mid in %q", envelope)
	}
	return rest[:26]
}

// The Grafana dashboard in docs/grafana is valid JSON, and every metric
// its queries name is one a live process exports: on the memory store or
// on Redis (the store's and Redis's series exist on one of them only).
func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana/pushpull.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(exprs) < 20 {
		t.Fatalf("%d queries in the dashboard; want its panels' queries", len(exprs))
	}

	mem := runApp(t, config.Default(), nil)
	rs := redistest.Start(t)
	cfg := config.Default()
	cfg.Storage.Type = "redis"
	cfg.Storage.Host, cfg.Storage.Port = "127.0.0.1", rs.Port
	red := runApp(t, cfg, nil)
	testutil.WaitFor(t, "ready", func() bool { return sample(red.scrape(t), "pushpull_ready") == 1 })
	exported := map[string]bool{}
	for _, text := range []string{mem.scrape(t), red.scrape(t)} {
		for line := range strings.SplitSeq(text, "\n") {
			if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
				name, kind, _ := strings.Cut(rest, " ")
				exported[name] = true
				if kind == "histogram" || kind == "summary" {
					exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
				}
			}
		}
	}
	name := regexp.MustCompile(`\b(?:pushpull|go|process)_[a-z0-9_]+\b`)
	for _, e := range exprs {
		found := name.FindAllString(e, -1)
		if len(found) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, n := range found {
			if !exported[n] {
				t.Errorf("query %q: %s is not exported", e, n)
			}
		}
	}
}

type dashPanel struct {
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
