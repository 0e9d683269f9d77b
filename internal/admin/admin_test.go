package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The ring keeps warnings and errors with their attributes (groups and
// WithAttrs included), the newest n, while every record still reaches the
// process's own handler at its level.
func TestRing(t *testing.T) {
	var out bytes.Buffer
	r := NewRing(2)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError})))
	log.Info("not kept")
	log.With("listener", "sub").Warn("first", "n", 1)
	log.WithGroup("redis").Error("second", "err", errors.New("down"))
	log.Warn("third", slog.Group("g", "a", 1))
	got := r.Records()
	if len(got) != 2 || got[0].Msg != "second" || got[1].Msg != "third" {
		t.Fatalf("records %+v; want the last two", got)
	}
	if got[0].Attrs != "redis.err=down" || got[0].Level != "ERROR" || got[1].Attrs != "g.a=1" {
		t.Errorf("attrs %q, %q", got[0].Attrs, got[1].Attrs)
	}
	if s := out.String(); strings.Contains(s, "first") || !strings.Contains(s, "second") || strings.Contains(s, "not kept") {
		t.Errorf("the wrapped handler wrote %q; want the errors only, its own level", s)
	}
	r = NewRing(4)
	slog.New(r.Handler(slog.DiscardHandler)).With("listener", "sub").Warn("w", "n", 1)
	if got := r.Records(); len(got) != 1 || got[0].Attrs != "listener=sub n=1" {
		t.Errorf("records %+v", got)
	}
}

// quantile interpolates within buckets of the observations between two
// readings.
func TestQuantile(t *testing.T) {
	before := []bucket{{0.1, 10}, {1, 10}, {10, 10}}
	now := []bucket{{0.1, 10}, {1, 110}, {10, 110}} // 100 new, all in (0.1, 1]
	if q := quantile(0.5, now, before, 100); q < 0.54 || q > 0.56 {
		t.Errorf("p50 %v; want 0.55", q)
	}
	if q := quantile(0.99, now, before, 100); q < 0.99 || q > 1 {
		t.Errorf("p99 %v; want 0.991", q)
	}
}

// The busiest channels are listed, at most topChannels, the busiest
// first.
func TestTopChannels(t *testing.T) {
	a := New(Options{Gatherer: prometheus.NewRegistry(), Ready: func(context.Context) error { return nil },
		Channels: func(f func(string, int)) {
			for i := range 100 {
				f(fmt.Sprintf("c%03d", i), (i*37)%100)
			}
		}})
	st := a.state(context.Background())
	if st.Channels != 100 || len(st.TopChannels) != topChannels {
		t.Fatalf("%d channels, %d listed", st.Channels, len(st.TopChannels))
	}
	for i, c := range st.TopChannels {
		if c.Subscribers != 99-i {
			t.Errorf("listed %d: %+v; want %d subscribers", i, c, 99-i)
		}
	}
}

// The API needs the backend key; the key check answers without echoing the
// key, and refuses bodies that are not its JSON or too large.
func TestAPI(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pushpull_published_messages_total", Help: "h"})
	reg.MustRegister(c)
	c.Add(3)
	var checked string
	a := New(Options{
		Key: "admin-key", ProcessID: "p1", Gatherer: reg,
		Ready: func(context.Context) error { return errors.New("redis: down") },
		Channels: func(f func(string, int)) {
			f("0123456789abcdef0123456789abcdef", 2)
			f("client|fedcba9876543210fedcba9876543210", 1)
		},
		CheckKey: func(k string) any { checked = k; return map[string]bool{"matches": k == "right"} },
	})
	srv := httptest.NewServer(a.Handler("/pushpull/admin/"))
	defer srv.Close()
	do := func(method, path, key, body string) (*http.Response, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	if resp, body := do("GET", "/pushpull/admin/", "", ""); resp.StatusCode != 200 || !strings.Contains(body, "admin.js") {
		t.Fatalf("page: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/pushpull/admin/admin.js", "", ""); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("script: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, key := range []string{"", "wrong", "admin-key-and-more"} {
		if resp, _ := do("GET", "/pushpull/admin/api/state", key, ""); resp.StatusCode != 401 {
			t.Errorf("state with key %q: %d; want 401", key, resp.StatusCode)
		}
	}
	resp, body := do("GET", "/pushpull/admin/api/state", "admin-key", "")
	if resp.StatusCode != 200 {
		t.Fatalf("state: %d %s", resp.StatusCode, body)
	}
	var st State
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.ReadyError != "redis: down" || st.Metrics["pushpull_published_messages_total"] != 3 || st.Channels != 2 {
		t.Errorf("state %+v", st)
	}
	if len(st.TopChannels) != 2 || st.TopChannels[0].Channel != "01234567…" || st.TopChannels[1].Channel != "client|fedcba98…" {
		t.Errorf("top channels %+v; want shortened ids, the busiest first", st.TopChannels)
	}
	resp, body = do("POST", "/pushpull/admin/api/keycheck", "admin-key", `{"key":"right"}`)
	if resp.StatusCode != 200 || body != `{"matches":true}`+"\n" || checked != "right" {
		t.Errorf("key check: %d %q", resp.StatusCode, body)
	}
	resp, body = do("POST", "/pushpull/admin/api/keycheck", "admin-key", `{"key":"secret-wrong"}`)
	if resp.StatusCode != 200 || strings.Contains(body, "secret-wrong") {
		t.Errorf("the answer %q echoes the key", body)
	}
	if resp, _ := do("POST", "/pushpull/admin/api/keycheck", "", `{"key":"right"}`); resp.StatusCode != 401 {
		t.Errorf("key check without the backend key: %d", resp.StatusCode)
	}
	if resp, _ := do("POST", "/pushpull/admin/api/keycheck", "admin-key", "not json"); resp.StatusCode != 400 {
		t.Errorf("bad body: %d", resp.StatusCode)
	}
	if resp, _ := do("POST", "/pushpull/admin/api/keycheck", "admin-key", `{"key":"`+strings.Repeat("k", 5000)+`"}`); resp.StatusCode != 413 {
		t.Errorf("large body: %d", resp.StatusCode)
	}
	if resp, _ := do("GET", "/pushpull/admin/nothing", "admin-key", ""); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
}

// No body makes the key check fail other than with its answers.
func FuzzKeyCheck(f *testing.F) {
	f.Add([]byte(`{"key":"k"}`))
	f.Add([]byte(`{"key":1}`))
	f.Add([]byte(`[]`))
	a := New(Options{Key: "admin-key", Gatherer: prometheus.NewRegistry(),
		CheckKey: func(k string) any { return len(k) }})
	h := a.Handler("/a/")
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/a/api/keycheck", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-key")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
