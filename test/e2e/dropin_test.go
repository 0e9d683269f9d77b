package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// The drop-in: pushpull started on what the appliance and the official
// Docker image already have, nothing translated by hand.

const dropinKey = "e2e-appliance-key"

// renderApplianceDir writes the appliance's config folder as its init
// script ("push-server-multi configs") writes it from the templates of the
// original push server, for subscribe servers on sub and publish servers
// on pub, with Redis on the unix socket sock; the templates stay in the
// folder, as on the appliance. edit, when not nil, changes a file's text.
func renderApplianceDir(t *testing.T, sub, pub []int, sock string, edit func(name, text string) string) string {
	t.Helper()
	dir := t.TempDir()
	tmplDir := filepath.Join(moduleRoot, "internal", "config", "testdata", "appliance")
	for _, kind := range []string{"sub", "pub"} {
		tmpl := "push-server-" + kind + "-__PORT__.json"
		text, err := os.ReadFile(filepath.Join(tmplDir, tmpl))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tmpl), text, 0o644); err != nil {
			t.Fatal(err)
		}
		ports := sub
		if kind == "pub" {
			ports = pub
		}
		for _, p := range ports {
			r := strings.NewReplacer("__PORT__", strconv.Itoa(p), "__SECURITY_KEY__", dropinKey, "__WS_HOST__", "127.0.0.1",
				"__PUBPATH__", "/bitrix/pub/", "__SUBPATH__", "/bitrix/sub/", "__RESTPATH__", "/bitrix/rest/",
				"__SUBWSPATH__", "/bitrix/subws/", "__REDIS_SOCK__", sock, "__IP_LIST__", `"127.0.0.1"`)
			name := "push-server-" + kind + "-" + strconv.Itoa(p) + ".json"
			out := r.Replace(string(text))
			if edit != nil {
				out = edit(name, out)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// redisOnSocket starts redis-server listening on a unix socket too, as
// the appliance's does, and returns the socket's path.
func redisOnSocket(t *testing.T) string {
	t.Helper()
	// A socket path must be short (108 bytes): not under t.TempDir().
	dir, err := os.MkdirTemp("", "pp-e2e-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	return sock
}

// startAppliance starts `pushpull serve` with args on an appliance config
// folder of two subscribe servers and one publish server on free ports,
// and returns the process and the servers' base URLs.
func startAppliance(t *testing.T, sock string, env []string, args ...string) (srv *Server, subs []string, pub string) {
	t.Helper()
	err := spawn.RetryPorts(func() error {
		ports, err := spawn.FreePorts(3)
		if err != nil {
			return err
		}
		// Each server also answers /readyz, which the test waits for:
		// until a process has subscribed to Redis, what is published
		// without an expiry passes it by.
		dir := renderApplianceDir(t, ports[:2], ports[2:], sock, func(_, text string) string {
			return strings.Replace(text, `"routes": {`, `"routes": {"ready": "/readyz",`, 1)
		})
		cmd := exec.Command(binary, append([]string{"serve", "--config-dir", dir}, args...)...)
		if env != nil {
			cmd.Env = append(os.Environ(), env...)
		}
		srv, err = startProcess(t, 3, cmd)
		if err != nil {
			return err
		}
		subs = []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])}
		pub = fmt.Sprintf("127.0.0.1:%d", ports[2])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Key = dropinKey
	srv.PubURL = "http://" + pub + "/bitrix/pub/"
	for _, a := range append([]string{pub}, subs...) {
		waitReadyStatus(t, &Server{ReadyURL: "http://" + a + "/readyz"}, true)
	}
	return srv, subs, pub
}

// deliverAcross subscribes on every subscribe server, over WebSocket on
// /bitrix/subws/ (the appliance's only subscribe route), and publishes
// through the publish server: each gets the message.
func deliverAcross(t *testing.T, srv *Server, subs []string) {
	t.Helper()
	for i, sub := range subs {
		ch := newChannelID(t)
		c := mustDialWS(t, "ws://"+sub+"/bitrix/subws/?CHANNEL_ID="+signed(dropinKey, ch))
		waitOnline(t, srv, ch, true)
		publish(t, srv, []string{ch}, command("test", "dropin", i))
		env := c.NextEnvelopes(t, 1)[0]
		if env.Channel != ch || !strings.Contains(string(env.Text), `"command":"dropin"`) {
			t.Errorf("subscriber of %s got %+v", sub, env)
		}
	}
}

// The appliance's config folder, as its init script writes it, with Redis
// on its unix socket: one pushpull process serving every port, or one per
// file as the appliance runs them; a broken file starts nothing.
func TestApplianceConfigDir(t *testing.T) {
	sock := redisOnSocket(t)
	t.Run("one process", func(t *testing.T) {
		srv, subs, _ := startAppliance(t, sock, nil)
		deliverAcross(t, srv, subs)
		if n := strings.Count(srv.Logs(), "msg=started"); n != 1 {
			t.Errorf("%d processes started; want 1", n)
		}
	})
	t.Run("per file", func(t *testing.T) {
		srv, subs, _ := startAppliance(t, sock, nil, "--per-file")
		deliverAcross(t, srv, subs)
		if n := strings.Count(srv.Logs(), "msg=started"); n != 3 {
			t.Errorf("%d processes started; want 3", n)
		}
		// A reload reaches every process.
		if err := srv.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "each of the 3 processes to reload", func() bool { return strings.Count(srv.Logs(), "msg=reloaded") == 3 })
	})
	// Under systemd (Type=notify, NotifyAccess=main), the process that
	// started the others says READY=1 once all of them are, feeds the
	// watchdog while all of them do, and says STOPPING=1 at the end.
	t.Run("per file under systemd", func(t *testing.T) {
		notify := newNotifySocket(t)
		srv, subs, _ := startAppliance(t, sock, []string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=400000"}, "--per-file")
		testutil.WaitFor(t, "READY=1", func() bool { return notify.count("READY=1") == 1 })
		testutil.WaitFor(t, "WATCHDOG=1 twice", func() bool { return notify.count("WATCHDOG=1") >= 2 })
		deliverAcross(t, srv, subs)
		if err := srv.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "each of the 3 processes to reload", func() bool { return strings.Count(srv.Logs(), "msg=reloaded") == 3 })
		srv.ExitExpected = true
		if err := srv.proc.Stop(stopTimeout); err != nil {
			t.Fatal(err)
		}
		if notify.count("READY=1") != 1 || notify.count("STOPPING=1") != 1 {
			t.Errorf("READY=1 %d times, STOPPING=1 %d times; want once each: %q", notify.count("READY=1"), notify.count("STOPPING=1"), notify.seen())
		}
	})
	t.Run("broken file", func(t *testing.T) {
		ports, err := spawn.FreePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		broken := fmt.Sprintf("push-server-sub-%d.json", ports[1])
		dir := renderApplianceDir(t, ports[:2], ports[2:], sock, func(name, text string) string {
			if name == broken {
				return strings.Replace(text, `"key": "`+dropinKey+`"`, `"key": ["not", "a", "key"]`, 1)
			}
			return text
		})
		for _, extra := range [][]string{nil, {"--per-file"}} {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			out, err := exec.CommandContext(ctx, binary, append([]string{"serve", "--config-dir", dir}, extra...)...).CombinedOutput()
			cancel()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("%v: %v; want an exit status\n%s", extra, err, out)
			}
			if !strings.Contains(string(out), broken+": security.key: want a string") || strings.Contains(string(out), "listening") {
				t.Errorf("%v: output does not name the file and field, or something listened:\n%s", extra, out)
			}
		}
	})
}

// The official Docker environment's two containers, configured by their
// variables only (.env_push, .env_push_sub, .env_push_pub, .env_redis),
// over the config the pushpull image names (PUSHPULL_CONFIG): the
// subscribe side and the publish side share Redis.
func TestDockerEnvironment(t *testing.T) {
	r := redistest.Start(t)
	var subSrv, pubSrv *Server
	err := spawn.RetryPorts(func() error {
		ports, err := spawn.FreePorts(2)
		if err != nil {
			return err
		}
		start := func(mode string, port int) (*Server, error) {
			cmd := exec.Command(binary, "serve")
			cmd.Env = append(os.Environ(), "PUSH_SECURITY_KEY="+dropinKey, "REDIS_HOST=127.0.0.1", "REDIS_PORT="+strconv.Itoa(r.Port),
				"RUN_DIR=/tmp/push-server", "PUSHPULL_CONFIG="+filepath.Join(moduleRoot, "packaging", "container.json"))
			if mode == "sub" {
				cmd.Env = append(cmd.Env, "PUSH_SUB_MODE=sub", "PUSH_SUB_PORT="+strconv.Itoa(port))
			} else {
				cmd.Env = append(cmd.Env, "PUSH_PUB_MODE=pub", "PUSH_PUB_PORT="+strconv.Itoa(port))
			}
			return startProcess(t, 1, cmd)
		}
		if subSrv, err = start("sub", ports[0]); err != nil {
			return err
		}
		pubSrv, err = start("pub", ports[1])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pubSrv.PubURL = fmt.Sprintf("http://127.0.0.1:%d/bitrix/pub/", pubSrv.Ports[0])
	for _, s := range []*Server{subSrv, pubSrv} {
		s.ReadyURL = fmt.Sprintf("http://127.0.0.1:%d/readyz", s.Ports[0])
		waitReadyStatus(t, s, true)
	}
	deliverAcross(t, pubSrv, []string{fmt.Sprintf("127.0.0.1:%d", subSrv.Ports[0])})
	for _, s := range []*Server{subSrv, pubSrv} {
		if !strings.Contains(s.Logs(), "RUN_DIR=/tmp/push-server: not used") {
			t.Errorf("RUN_DIR not noted:\n%s", s.Logs())
		}
	}
}
