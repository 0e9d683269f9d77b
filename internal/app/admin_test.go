package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/testutil"
)

// adminCall calls the admin page's API on the trusted server.
func adminCall(t *testing.T, r *running, method, path, key, origin, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.pub+"/pushpull/admin/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin page is served under the backend route of the trusted server,
// its API behind the backend key; the page's own calls (same origin) pass
// the trusted routes' origin check, other pages' do not. Its numbers are
// those of /metrics, and the key check tells the portal's key from another
// and never echoes it. Warnings the process logs are listed.
func TestAdminRoutes(t *testing.T) {
	cfg := config.Default()
	cfg.Security.Key = "portal-key"
	cfg.Security.BackendKey = "admin-key"
	r := runApp(t, cfg, nil)

	if code, body := adminCall(t, r, "GET", "", "", "", ""); code != 200 || !strings.Contains(body, "pushpull admin") {
		t.Fatalf("page: %d", code)
	}
	if code, _ := adminCall(t, r, "GET", "api/state", "", "", ""); code != 401 {
		t.Fatalf("state without the key: %d; want 401", code)
	}
	if code, _ := adminCall(t, r, "GET", "api/state", "portal-key", "", ""); code != 401 {
		t.Fatalf("state with the security key instead of the backend key: %d; want 401", code)
	}

	conn, _ := r.dialWS(t, "CHANNEL_ID=nope") // refused: not signed, 4010
	conn.Close()
	r.waitMetric(t, `pushpull_disconnects_total{code="4010"}`, 1)

	var st struct {
		Ready    bool               `json:"ready"`
		Metrics  map[string]float64 `json:"metrics"`
		Channels int                `json:"channels"`
		Errors   []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
		Processes []struct {
			ID string `json:"processUniqueId"`
		} `json:"processes"`
	}
	testutil.WaitFor(t, "ready on the admin page", func() bool {
		code, body := adminCall(t, r, "GET", "api/state", "admin-key", "", "")
		if code != 200 {
			t.Fatalf("state: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ready
	})
	m := r.scrape(t)
	for series, v := range st.Metrics {
		if strings.HasPrefix(series, "pushpull_disconnects_total") || strings.HasPrefix(series, "pushpull_connections") ||
			strings.HasPrefix(series, "pushpull_published") {
			if got := sample(m, series); got != v {
				t.Errorf("%s: page %v, /metrics %v", series, v, got)
			}
		}
	}
	if st.Metrics[`pushpull_disconnects_total{code="4010"}`] != 1 {
		t.Errorf("the page's 4010 count %v; want 1", st.Metrics[`pushpull_disconnects_total{code="4010"}`])
	}
	if len(st.Processes) != 1 || st.Processes[0].ID != cfg.UniqueID() {
		t.Errorf("processes %+v; want this one", st.Processes)
	}

	origin := "http://" + r.pub
	if code, body := adminCall(t, r, "POST", "api/keycheck", "admin-key", origin, `{"key":"portal-key"}`); code != 200 || !strings.Contains(body, `"matches":true`) {
		t.Errorf("key check from the page: %d %s", code, body)
	}
	code, body := adminCall(t, r, "POST", "api/keycheck", "admin-key", origin, `{"key":"typo-key"}`)
	if code != 200 || !strings.Contains(body, `"matches":false`) || strings.Contains(body, "typo-key") {
		t.Errorf("key check of another key: %d %s", code, body)
	}
	if code, _ := adminCall(t, r, "POST", "api/keycheck", "admin-key", "http://evil.example", `{"key":"portal-key"}`); code != 403 {
		t.Errorf("key check from another page: %d; want 403", code)
	}

	r.app.log.Warn("disk almost full", "free", "1%")
	code, body = adminCall(t, r, "GET", "api/state", "admin-key", "", "")
	if code != 200 || !strings.Contains(body, "disk almost full") || strings.Contains(body, "portal-key") || strings.Contains(body, "admin-key") {
		t.Errorf("recent errors: %d %s", code, body)
	}
}
