package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
)

// The peer the bench measures beside pushpull: nginx with the nchan module
// (Debian's nginx and libnginx-mod-nchan), a pub/sub server of the same
// shape: WebSocket subscribers on a channel named in the URL, publishes
// POSTed to a channel over HTTP, messages kept in a buffer per channel.
//
// The bench starts it in the foreground (daemon off) with a configuration
// of its own in a temporary directory, on free loopback ports, and stops
// it with SIGTERM: no system nginx service is involved.

// NchanOptions says how to start nginx with nchan.
type NchanOptions struct {
	Nginx  string // the nginx binary; nginx from PATH, or /usr/sbin/nginx, when empty
	Module string // ngx_nchan_module.so; found where Debian puts it when empty
	// Workers is worker_processes: 0 for auto, one per CPU the machine
	// has (nginx 1.22 counts them all, whatever the affinity).
	Workers int
	CPUs    string // taskset -c list the server runs on; "" for any
	Conns   int    // connections the scenario opens; each worker can hold them all
	// Expiry above 0 keeps each channel's last 10,000 messages (pushpull's
	// maxChannelMessages) for that many seconds, as pushpull keeps the
	// messages published with Message-Expiry; 0 keeps none, as pushpull
	// keeps none published without it.
	Expiry int
}

// nchanBuffer is how many messages a channel keeps when they are kept:
// pushpull's default maxChannelMessages.
const nchanBuffer = 10000

// nchanSharedMemory is nchan_shared_memory_size, where it keeps channels
// and messages: pushpull's default storage.maxBytes.
const nchanSharedMemory = "512m"

// Paths of the peer's routes in the configuration the bench writes.
const (
	nchanSubPath  = "/sub/"
	nchanPubPath  = "/pub/"
	nchanStatPath = "/nchan-stat/"
)

// nchanModules are where Debian's libnginx-mod-nchan installs the module.
var nchanModules = []string{
	"/usr/lib/nginx/modules/ngx_nchan_module.so",
	"/usr/share/nginx/modules/ngx_nchan_module.so",
}

// nchanModuleConfs are the snippets that load it, read when the module is
// elsewhere.
const nchanModuleConfs = "/usr/share/nginx/modules-available/*nchan*.conf"

var loadModuleLine = regexp.MustCompile(`(?m)^\s*load_module\s+"?([^";\s]+)"?\s*;`)

// FindNchan returns the nginx binary and the nchan module to run, or an
// error saying which is missing. Empty arguments are looked for.
func FindNchan(nginx, module string) (string, string, error) {
	if nginx == "" {
		if p, err := exec.LookPath("nginx"); err == nil {
			nginx = p
		} else if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			nginx = "/usr/sbin/nginx"
		} else {
			return "", "", errors.New("nginx is not installed (Debian: apt-get install nginx libnginx-mod-nchan)")
		}
	}
	if module == "" {
		module = findNchanModule()
		if module == "" {
			return "", "", errors.New("the nchan module is not installed (Debian: apt-get install libnginx-mod-nchan)")
		}
	} else if _, err := os.Stat(module); err != nil {
		return "", "", fmt.Errorf("nchan module: %w", err)
	}
	return nginx, module, nil
}

func findNchanModule() string {
	for _, p := range nchanModules {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	confs, _ := filepath.Glob(nchanModuleConfs)
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		for _, m := range loadModuleLine.FindAllSubmatch(b, -1) {
			p := string(m[1])
			if !filepath.IsAbs(p) {
				p = filepath.Join("/usr/share/nginx", p) // Debian's --prefix
			}
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// nchanConfig is the nginx.conf the bench runs: the subscriber location on
// one port and the publisher and stub status on another, as pushpull's
// public and internal listeners. reuseport gives each worker its own
// listening socket, so the kernel spreads the connections over them.
func nchanConfig(dir, module string, subPort, pubPort int, o NchanOptions) string {
	workers := "auto"
	if o.Workers > 0 {
		workers = strconv.Itoa(o.Workers)
	}
	conns := max(o.Conns, 0) + 1024
	buffer, timeout := 0, 1
	if o.Expiry > 0 {
		buffer, timeout = nchanBuffer, o.Expiry
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# written by pushpull bench")
	p("load_module %s;", module)
	p("daemon off;")
	p("master_process on;")
	p("worker_processes %s;", workers)
	p("worker_rlimit_nofile %d;", 2*conns+256)
	p("pid %s;", filepath.Join(dir, "nginx.pid"))
	p("error_log stderr warn;")
	p("events {")
	p("  worker_connections %d;", conns)
	p("}")
	p("http {")
	p("  access_log off;")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("  %s_temp_path %s;", t, filepath.Join(dir, t))
	}
	p("  keepalive_requests 100000000;")
	p("  nchan_shared_memory_size %s;", nchanSharedMemory)
	p("  nchan_message_buffer_length %d;", buffer)
	p("  nchan_message_timeout %ds;", timeout)
	p("  server {")
	p("    listen 127.0.0.1:%d reuseport;", subPort)
	p("    location %s {", nchanSubPath)
	p("      nchan_subscriber websocket longpoll;")
	p("      nchan_subscriber_first_message newest;")
	p("      nchan_channel_id $arg_CHANNEL_ID;")
	p("    }")
	p("  }")
	p("  server {")
	p("    listen 127.0.0.1:%d reuseport;", pubPort)
	p("    location %s {", nchanPubPath)
	p("      nchan_publisher;")
	p("      nchan_channel_id $arg_CHANNEL_ID;")
	p("    }")
	p("    location = %s {", nchanStatPath)
	p("      nchan_stub_status;")
	p("    }")
	p("  }")
	p("}")
	return b.String()
}

// SpawnNchan starts nginx with nchan on two free loopback ports and returns
// once its stub status answers.
func SpawnNchan(ctx context.Context, o NchanOptions) (s *Spawned, err error) {
	nginx, module, err := FindNchan(o.Nginx, o.Module)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pushpull-bench-nchan-")
	if err != nil {
		return nil, err
	}
	// Workers started by root run as nobody; they only read here.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s = &Spawned{dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conf := filepath.Join(dir, "nginx.conf")
	err = spawn.RetryPorts(func() error {
		ports, err := spawn.FreePorts(2)
		if err != nil {
			return err
		}
		if err := os.WriteFile(conf, []byte(nchanConfig(dir, module, ports[0], ports[1], o)), 0o644); err != nil {
			return err
		}
		// -e: the log of the start itself, before the configuration is
		// read, goes to stderr too rather than to /var/log/nginx.
		p, err := spawn.Start("nginx", pinned(o.CPUs, nginx, "-e", "stderr", "-p", dir, "-c", conf))
		if err != nil {
			return err
		}
		s.server = p
		pub := fmt.Sprintf("127.0.0.1:%d", ports[1])
		s.Target = Target{
			Kind:    KindNchan,
			PID:     p.Pid(),
			SubURL:  fmt.Sprintf("ws://127.0.0.1:%d%s", ports[0], nchanSubPath),
			PubURL:  "http://" + pub + nchanPubPath,
			StatURL: "http://" + pub + nchanStatPath,
			Storage: "memory",
		}
		if err := waitNchan(wait, p, s.StatURL); err != nil {
			_ = p.Stop(5 * time.Second)
			s.server = nil
			return err
		}
		return nil
	})
	return s, err
}

// waitNchan polls the stub status until it answers, failing when nginx
// exits first (ErrPortTaken when a port was taken) or ctx ends.
func waitNchan(ctx context.Context, p *spawn.Process, statURL string) error {
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, statURL, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx: no answer from %s: %w\n%s", statURL, ctx.Err(), p.Out.String())
		case <-p.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// parseNchanSubscribers reads the "subscribers: N" line of nchan's stub
// status.
func parseNchanSubscribers(b []byte) (int64, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok || string(bytes.TrimSpace(key)) != "subscribers" {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("nchan stub status: bad subscribers line %q", line)
		}
		return n, nil
	}
	return 0, errors.New("nchan stub status: no subscribers line")
}
