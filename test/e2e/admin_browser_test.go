package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// scrapeMetrics returns the series of a /metrics answer by name (labels
// as the text format writes them).
func scrapeMetrics(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestAdminPageBrowser opens the admin page in headless Chromium while the
// server is under load (WebSocket subscribers, a publisher that does not
// stop): the page asks for the backend key and refuses a wrong one, every
// number it shows for a metric is what /metrics says (the same for what
// cannot change under this load, between the scrapes before and after for
// the counters that grow), its charts have points, the key check tells the
// portal's key from another, neither key is left on the page, and the
// screenshot is a PNG of the page's size. On Redis, with a second process
// beside it, the page lists both processes and Redis's state.
func TestAdminPageBrowser(t *testing.T) {
	t.Run("memory", func(t *testing.T) { adminPageSuite(t, false) })
	t.Run("redis", func(t *testing.T) { adminPageSuite(t, true) })
}

func adminPageSuite(t *testing.T, onRedis bool) {
	chromium := os.Getenv("PUSHPULL_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s (apt-get install chromium, or set PUSHPULL_CHROMIUM): %v", chromium, err)
	}
	dir := filepath.Join(moduleRoot, "test", "browser")
	installDeps(t, dir)

	const key, backendKey = "admin-portal-key", "admin-backend-key"
	routes := map[string]any{"backend": "/pushpull/", "metrics": "/metrics"}
	for k, v := range defaultRoutes {
		routes[k] = v
	}
	conf := func() map[string]any {
		return map[string]any{
			"security": map[string]any{"key": key, "backendKey": backendKey},
			"servers":  []any{map[string]any{"name": "all", "routes": routes}},
		}
	}
	cfg := conf()
	processes := 1
	if onRedis {
		r := redistest.Start(t)
		cfg["storage"] = map[string]any{"type": "redis", "host": "127.0.0.1", "port": r.Port}
		other := conf()
		other["storage"] = cfg["storage"]
		waitReadyStatus(t, startServer(t, other), true)
		processes = 2
	}
	srv := startServer(t, cfg)
	waitReadyStatus(t, srv, true)
	base := "http://127.0.0.1:" + strconv.Itoa(srv.Ports[0])

	// The load: 30 subscribers on 10 channels, drained, and a publisher.
	var channels []string
	for range 10 {
		channels = append(channels, newChannelID(t))
	}
	for i := range 30 {
		c := mustDialWS(t, srv.WSURL+"?CHANNEL_ID="+signed(key, channels[i%len(channels)]))
		go func() {
			for range c.Frames {
			}
		}()
	}
	wrongChannel(t, srv.WSURL+"?CHANNEL_ID=nope") // a 4010 to count
	ctx, stop := context.WithCancel(t.Context())
	var load sync.WaitGroup
	load.Add(1)
	go func() {
		defer load.Done()
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.PubURL+"?CHANNEL_ID="+channels[i%len(channels)],
				strings.NewReader(command("im", "message", i)))
			req.Header.Set("Message-Expiry", "60")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	defer func() { stop(); load.Wait() }()
	testutil.WaitFor(t, "the subscribers connected", func() bool {
		return scrapeMetrics(t, base+"/metrics")[`pushpull_connections{protocol="3",transport="websocket"}`] == 30
	})

	before := scrapeMetrics(t, base+"/metrics")
	shot := filepath.Join(t.TempDir(), "admin.png")
	cmd := exec.CommandContext(t.Context(), "node", "adminpage.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PUSHPULL_ADMIN_URL="+base+"/pushpull/admin/",
		"PUSHPULL_BACKEND_KEY="+backendKey,
		"PUSHPULL_KEY="+key,
		"PUSHPULL_SCREENSHOT="+shot,
		"PUSHPULL_CHROMIUM="+chromium,
	)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node adminpage.mjs: %v\n%s", err, stderr.Bytes())
	}
	after := scrapeMetrics(t, base+"/metrics")

	var got struct {
		Console    []string `json:"console"`
		WrongLogin string   `json:"wrongLogin"`
		Page       struct {
			Metrics   map[string]string `json:"metrics"`
			Ready     string            `json:"ready"`
			Processes int               `json:"processes"`
			Channels  int               `json:"channels"`
			Points    int               `json:"points"`
			Storage   string            `json:"storage"`
		} `json:"page"`
		Right, Wrong struct{ Result, Text, Input string }
		PageHasKey   bool `json:"pageHasKey"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("node adminpage.mjs printed %q: %v", stdout.Bytes(), err)
	}
	t.Logf("page: %+v", got.Page)
	if len(got.Console) > 0 {
		t.Errorf("page errors: %q", got.Console)
	}
	if got.WrongLogin == "" {
		t.Error("a wrong backend key opened the page")
	}
	if got.Page.Ready != "ready" || got.Page.Processes != processes || got.Page.Channels != 10 || got.Page.Points < 2 {
		t.Errorf("page: ready %q, %d processes, %d channels, %d chart points; want ready, %d, 10, 2 or more",
			got.Page.Ready, got.Page.Processes, got.Page.Channels, got.Page.Points, processes)
	}
	if onRedis && (!strings.Contains(got.Page.Storage, "Redis") || !strings.Contains(got.Page.Storage, "pub/sub subscribedyes")) {
		t.Errorf("storage on Redis: %q", got.Page.Storage)
	}

	// What the load does not change is the same on the page and in
	// /metrics; counters that grow lie between the two scrapes.
	growing := []string{"pushpull_published_messages_total", "pushpull_delivered_messages_total",
		"pushpull_written_bytes_total", "pushpull_resume_requests_total"}
	fluctuating := []string{"go_goroutines", "process_", "pushpull_store_", "pushpull_redis_keys", "pushpull_redis_clients", "pushpull_redis_memory"}
	checked := 0
	for series, text := range got.Page.Metrics {
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			t.Errorf("%s shows %q, not a number", series, text)
			continue
		}
		a, ok := after[series]
		if !ok {
			t.Errorf("%s is on the page but not in /metrics", series)
			continue
		}
		switch {
		case hasPrefix(series, fluctuating):
		case hasPrefix(series, growing):
			if v < before[series] || v > a {
				t.Errorf("%s: page %v, /metrics %v before and %v after", series, v, before[series], a)
			}
		default:
			if v != a {
				t.Errorf("%s: page %v, /metrics %v", series, v, a)
			}
		}
		checked++
	}
	for series, want := range map[string]float64{
		"pushpull_websocket_connections": 30, "pushpull_channels": 10,
		`pushpull_connections{protocol="3",transport="websocket"}`: 30,
		`pushpull_disconnects_total{code="4010"}`:                  1,
	} {
		if got.Page.Metrics[series] != strconv.FormatFloat(want, 'f', -1, 64) {
			t.Errorf("the page shows %s = %q; want %v", series, got.Page.Metrics[series], want)
		}
	}
	if p := got.Page.Metrics["pushpull_published_messages_total"]; p == "" || p == "0" {
		t.Errorf("published %q under load", p)
	}
	if onRedis && got.Page.Metrics["pushpull_redis_command_errors_total"] != "0" {
		t.Errorf("the page shows %s failed Redis calls; want 0", got.Page.Metrics["pushpull_redis_command_errors_total"])
	}
	if onRedis && !strings.Contains(got.Page.Storage, "connectedyes") {
		t.Errorf("storage on Redis: %q; want connected", got.Page.Storage)
	}
	if checked < 20 {
		t.Errorf("%d numbers on the page; want the page's metrics", checked)
	}

	if got.Right.Result != "match" || got.Wrong.Result != "mismatch" || got.Right.Input != "" || got.Wrong.Input != "" {
		t.Errorf("key check: right %+v, wrong %+v", got.Right, got.Wrong)
	}
	if got.PageHasKey {
		t.Error("the portal's key is left on the page")
	}

	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() < 900 {
		t.Errorf("screenshot %dx%d; want 1280 wide (the viewport), the page's height (900 at least)", b.Dx(), b.Dy())
	}
	colours := map[uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("screenshot has %d colours: blank", len(colours))
	}
	t.Logf("screenshot %s: %dx%d, %d colours sampled", shot, b.Dx(), b.Dy(), len(colours))
	if dst := os.Getenv("PUSHPULL_ADMIN_SHOT"); dst != "" {
		if raw, err := os.ReadFile(shot); err == nil {
			_ = os.WriteFile(dst, raw, 0o644)
		}
	}
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
