package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/wsclient"
)

// Behind the appliance's nginx: nginx, run with a config of the shape of
// the appliance's and the official Docker environment's push.conf, in
// front of pushpull's subscribe and publish servers. The official SDK
// receives over WebSocket (/bitrix/subws/) and long polling (/bitrix/sub/,
// which nginx rewrites to /bitrix/subws/), the backend publishes through
// /bitrix/pub/, and clients publish to each other over their WebSocket
// and through /bitrix/rest/.

// pushConf is the appliance's push.conf (bitrix-tools/env-docker,
// confs/nginx/inc/push.conf) with its upstreams and the maps of
// maps/im_settings.conf, plus the two forwarding headers that let
// pushpull see the client's address (security.trustedProxies), in each
// location: one with proxy_set_header of its own inherits none.
const pushConf = `
map $http_upgrade $connection_upgrade {
    default upgrade;
    '' 'close';
}
map $http_upgrade  $replace_upgrade {
    default $http_upgrade;
    '' 'websocket';
}
server {
    listen 127.0.0.1:{{PORT}};
    location = /nginx-ready {
        return 204;
    }

    location ~* ^/bitrix/subws/ {
        proxy_pass http://{{SUB}};
        proxy_max_temp_file_size 0;
        proxy_read_timeout  43800;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $replace_upgrade;
        proxy_set_header Connection $connection_upgrade;
    }
    location ~* ^/bitrix/sub/ {
        rewrite ^/bitrix/sub/(.*)$ /bitrix/subws/$1 break;
        proxy_pass http://{{SUB}};
        proxy_max_temp_file_size 0;
        proxy_read_timeout  43800;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location ~* ^/bitrix/rest/ {
        proxy_pass http://{{PUB}};
        proxy_max_temp_file_size 0;
        proxy_read_timeout  43800;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location ~* ^/bitrix/pub/ {
        proxy_pass http://{{PUB}};
        proxy_max_temp_file_size 0;
        proxy_read_timeout  43800;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
`

// findNginx returns Debian's nginx, skipping the test when it is missing
// (scripts/test installs it).
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Skip("nginx is not installed (scripts/test installs it)")
	return ""
}

// startPushNginx runs nginx in the foreground with push.conf in front of
// pushpull's subscribe server at sub and publish server at pub (host:port)
// on a free loopback port, and returns its base URL (http://127.0.0.1:N).
// It is stopped when the test ends.
func startPushNginx(t *testing.T, sub, pub string) string {
	t.Helper()
	nginx := findNginx(t)
	dir := t.TempDir()
	// Workers started by root run as nobody; they only read here.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var base string
	err := spawn.RetryPorts(func() error {
		ports, err := spawn.FreePorts(1)
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes 1;\npid %s;\nerror_log stderr warn;\n", filepath.Join(dir, "nginx.pid"))
		b.WriteString("events {\n  worker_connections 1024;\n}\nhttp {\n  access_log off;\n")
		for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&b, "  %s_temp_path %s;\n", tmp, filepath.Join(dir, tmp))
		}
		b.WriteString(strings.NewReplacer("{{PORT}}", strconv.Itoa(ports[0]), "{{SUB}}", sub, "{{PUB}}", pub).Replace(pushConf))
		b.WriteString("}\n")
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return err
		}
		p, err := spawn.Start("nginx", exec.Command(nginx, "-e", "stderr", "-p", dir, "-c", conf))
		if err != nil {
			return err
		}
		base = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		if err := waitNginx(p, base); err != nil {
			_ = p.Stop(5 * time.Second)
			return err
		}
		t.Cleanup(func() {
			if err := p.Stop(stopTimeout); err != nil {
				t.Errorf("nginx: %v", err)
			}
			if t.Failed() {
				t.Logf("nginx output:\n%s", p.Out.String())
			}
		})
		return nil
	})
	if err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	return base
}

// waitNginx waits until nginx answers on base (any status: an unknown
// path is nginx's own 404), failing when it exits first.
func waitNginx(p *spawn.Process, base string) error {
	deadline := time.After(startTimeout)
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		if resp, err := http.Get(base + "/nginx-ready"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-deadline:
			return fmt.Errorf("nginx: no answer on %s within %v\n%s", base, startTimeout, p.Out.String())
		case <-p.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startBehindNginx starts pushpull in the appliance's layout (a subscribe
// server with /bitrix/subws/ only, as the appliance's template has it, and
// a publish server with /bitrix/pub/, /bitrix/rest/ and /server-stat/)
// with key45 and extra config, and nginx in front of it. The Server it
// returns has its client URLs pointing at nginx; direct holds pushpull's.
func startBehindNginx(t *testing.T, extra map[string]any) (proxied, direct *Server) {
	t.Helper()
	cfg := map[string]any{
		"security": map[string]any{"key": key45},
		"storage":  map[string]any{"type": "memory"},
		"polling":  map[string]any{"timeout": 5},
		"servers": []any{
			map[string]any{"name": "sub-8010", "routes": map[string]any{"sub": "/bitrix/subws/"}},
			map[string]any{"name": "pub-9010", "routes": map[string]any{"pub": "/bitrix/pub/", "rest": "/bitrix/rest/", "stat": "/server-stat/"}},
		},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	direct = startServer(t, cfg)
	base := startPushNginx(t, direct.addrs[0], direct.addrs[1])
	p := *direct
	p.SubURL = base + "/bitrix/sub/"
	p.WSURL = "ws" + strings.TrimPrefix(base, "http") + "/bitrix/subws/"
	p.PubURL = base + "/bitrix/pub/"
	p.StatURL = ""
	return &p, direct
}

// The official SDK behind nginx: protocol 4 over WebSocket and over long
// polling through the rewrite, receiving what the backend publishes
// through nginx, resuming after a reconnect, and publishing to another
// client (over its WebSocket, or POSTing to /bitrix/rest/ when long
// polling).
func TestBehindApplianceNginx(t *testing.T) {
	findNginx(t)
	srv, direct := startBehindNginx(t, map[string]any{"security": map[string]any{"key": key45, "trustedProxies": []any{"127.0.0.1"}}})
	base := strings.TrimSuffix(srv.PubURL, "/bitrix/pub/")
	for _, m := range []struct {
		name      string
		webSocket bool
	}{{"websocket", true}, {"longpolling", false}} {
		t.Run(m.name, func(t *testing.T) {
			start := func(t *testing.T) (*SDKClient, pair) {
				t.Helper()
				p := newPair(t)
				opts := srv.SDKOptions(p.entry(key45), 4)
				opts.WebSocketEnabled = m.webSocket
				opts.Extra = map[string]any{"publish_enabled": true, "publish": base + "/bitrix/rest/"}
				c := startSDK(t, opts)
				events := c.Collect(t, "first connection", func(e SDKEvent) bool { return e.Type == "request" })
				u := events[len(events)-1].URL
				wantPrefix := srv.SubURL
				if m.webSocket {
					wantPrefix = srv.WSURL
				}
				if !strings.HasPrefix(u, wantPrefix) || !strings.Contains(u, "binaryMode=true") {
					t.Fatalf("SDK connected to %s; want %s...binaryMode=true", u, wantPrefix)
				}
				waitOnline(t, direct, p.priv, true)
				return c, p
			}
			t.Run("receive", func(t *testing.T) {
				c, p := start(t)
				publish(t, srv, []string{p.priv}, command("test", "through-nginx", 1))
				events := c.WaitCommand(t, "through-nginx")
				checkSDKMessage(t, events[len(events)-1], "through-nginx", 1)
			})
			t.Run("resume", func(t *testing.T) {
				c, p := start(t)
				publish(t, srv, []string{p.priv}, command("test", "before", 0))
				c.WaitCommand(t, "before")
				c.Send("disconnect")
				c.Collect(t, "going offline", func(e SDKEvent) bool { return e.Type == "status" && e.Status == "offline" })
				publishWith(t, srv, []string{p.priv}, command("test", "missed", 1), map[string]string{"Message-Expiry": "600"})
				c.Send("connect")
				events := c.WaitCommand(t, "missed")
				checkSDKMessage(t, events[len(events)-1], "missed", 1)
			})
			t.Run("client publish", func(t *testing.T) {
				a, pa := start(t)
				b, pb := start(t)
				cmd, _ := json.Marshal(map[string]any{
					"channels": []string{pb.pub + "." + pb.publicSig(key45)},
					"module":   "chat", "command": "typing", "params": map[string]any{"n": 1},
				})
				a.Send("publish " + string(cmd))
				sent := a.Collect(t, "published", func(e SDKEvent) bool {
					if e.Type == "publish_failed" {
						t.Fatalf("publish failed: %s", e.Line)
					}
					return e.Type == "published"
				})
				if !m.webSocket {
					// Long polling, the SDK POSTs it to /bitrix/rest/.
					isPost := func(e SDKEvent) bool { return e.Type == "post" }
					i := slices.IndexFunc(sent, isPost)
					if i < 0 {
						sent = a.Collect(t, "the POST", isPost)
						i = len(sent) - 1
					}
					if e := sent[i]; !strings.HasPrefix(e.URL, base+"/bitrix/rest/") || e.Code != http.StatusOK {
						t.Errorf("the SDK posted to %s, answered %d; want %s/bitrix/rest/, 200", e.URL, e.Code, base)
					}
				}
				events := b.WaitCommand(t, "typing")
				last := events[len(events)-1]
				var extra struct {
					Sender struct {
						Type int    `json:"type"`
						ID   string `json:"id"`
					} `json:"sender"`
				}
				_ = json.Unmarshal(last.Extra, &extra)
				if last.ModuleID != "chat" || extra.Sender.Type != 1 || extra.Sender.ID != pa.pub {
					t.Errorf("B got %s; want chat/typing from client %s", last.Line, pa.pub)
				}
			})
		})
	}

	// A long poll straight to /bitrix/subws/, which nginx sends with
	// "Upgrade: websocket" and "Connection: close", is a long poll.
	t.Run("longpoll on subws", func(t *testing.T) {
		ch := newChannelID(t)
		poll := startLongPoll(t, base+"/bitrix/subws/?CHANNEL_ID="+signed(key45, ch))
		waitOnline(t, direct, ch, true)
		publish(t, srv, []string{ch}, command("test", "polled", 1))
		r := awaitResponse(t, poll)
		if r.Status != http.StatusOK || !strings.Contains(r.Body, `"command":"polled"`) {
			t.Fatalf("long poll on /bitrix/subws/ through nginx: %d %q", r.Status, r.Body)
		}
	})
}

// dialWSFrom opens a WebSocket to url from the loopback address local
// (127.0.0.2, ...), so that nginx sees another client address, sending
// header with the handshake.
func dialWSFrom(t testing.TB, url, local string, header http.Header) (*WSClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	frames := make(chan Frame, 1024)
	c := &WSClient{Frames: frames, conn: conn}
	go c.readLoop(wsclient.Stream(conn, br), frames)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// limits.maxConnPerIP behind nginx: with nginx among security.trustedProxies
// each client address has its own count; without, every client is nginx's
// address, and whatever forwarding header a client sends itself changes
// nothing.
func TestBehindNginxClientAddress(t *testing.T) {
	findNginx(t)
	connect := func(t *testing.T, url, local string, header http.Header) int {
		t.Helper()
		ch := newChannelID(t)
		c, err := dialWSFrom(t, url+"?CHANNEL_ID="+signed(key45, ch), local, header)
		if err == nil {
			_ = c
			return http.StatusSwitchingProtocols
		}
		var se ws.StatusError
		if errors.As(err, &se) {
			return int(se)
		}
		t.Fatalf("WebSocket from %s: %v", local, err)
		return 0
	}
	limit := map[string]any{"maxConnPerIP": 1}
	t.Run("trusted", func(t *testing.T) {
		srv, direct := startBehindNginx(t, map[string]any{"limits": limit,
			"security": map[string]any{"key": key45, "trustedProxies": []any{"127.0.0.1/32", "::1"}}})
		if got := connect(t, srv.WSURL, "127.0.0.2", nil); got != 101 {
			t.Fatalf("first client of 127.0.0.2: %d", got)
		}
		if got := connect(t, srv.WSURL, "127.0.0.2", nil); got != http.StatusTooManyRequests {
			t.Errorf("second client of 127.0.0.2: %d; want 429", got)
		}
		if got := connect(t, srv.WSURL, "127.0.0.3", nil); got != 101 {
			t.Errorf("client of 127.0.0.3: %d; want 101 (its own count)", got)
		}
		// A client cannot pass for another by naming it: nginx appends
		// the address it came from, which pushpull reads.
		if got := connect(t, srv.WSURL, "127.0.0.2", http.Header{"X-Forwarded-For": {"192.0.2.77"}}); got != http.StatusTooManyRequests {
			t.Errorf("127.0.0.2 naming 192.0.2.77 in X-Forwarded-For: %d; want 429", got)
		}
		// Long polls count too.
		from2 := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
		resp, err := from2.Get(srv.SubURL + "?CHANNEL_ID=" + signed(key45, newChannelID(t)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("long poll of 127.0.0.2 through the rewrite: %d; want 429", resp.StatusCode)
		}
		// Straight to pushpull, from a peer that is no proxy, the header
		// is not believed.
		if got := connect(t, direct.WSURL, "127.0.0.4", nil); got != 101 {
			t.Fatalf("first direct client of 127.0.0.4: %d", got)
		}
		if got := connect(t, direct.WSURL, "127.0.0.4", http.Header{"X-Forwarded-For": {"192.0.2.78"}, "X-Real-Ip": {"192.0.2.78"}}); got != http.StatusTooManyRequests {
			t.Errorf("direct client of 127.0.0.4 naming 192.0.2.78: %d; want 429", got)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		srv, _ := startBehindNginx(t, map[string]any{"limits": limit})
		if got := connect(t, srv.WSURL, "127.0.0.2", nil); got != 101 {
			t.Fatalf("first client: %d", got)
		}
		if got := connect(t, srv.WSURL, "127.0.0.3", nil); got != http.StatusTooManyRequests {
			t.Errorf("client of 127.0.0.3 without trusted proxies: %d; want 429 (every client is nginx)", got)
		}
	})
}
