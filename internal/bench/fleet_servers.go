package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/spawn"
)

// fleetServers is the processes of a fleet: its Redis (unless it was
// given), its subscriber processes and its publisher, all in Redis mode on
// the one Redis.
type fleetServers struct {
	dir        string
	redis      *spawn.Process // nil for a Redis the bench did not start
	redisAddrs []string
	subs       []fleetProc
	pub        fleetProc
}

// fleetProc is one pushpull process of the fleet.
type fleetProc struct {
	p       *spawn.Process
	subURL  string // "" for the publisher
	pubURL  string
	statURL string
}

func (f fleetProc) pid() int { return f.p.Pid() }

// fleetTenants is who the channels belong to: in the personal mode the one
// key, in the shared mode each installation's clientId and key.
type fleetTenants struct {
	key     string
	clients []string          // clientIds; none in the personal mode
	keys    map[string]string // clientId -> key
}

// newFleetTenants makes n installations with random ids and keys (none
// for n = 0) beside key.
func newFleetTenants(key string, n int) fleetTenants {
	t := fleetTenants{key: key}
	if n > 0 {
		t.keys = make(map[string]string, n)
	}
	for range n {
		id := newChannelID() // 32 hex digits, as Bitrix's clientIds
		t.clients = append(t.clients, id)
		t.keys[id] = "key-" + newChannelID()
	}
	return t
}

// startFleetServers starts Redis (without addrs), procs subscriber
// processes and a publisher-mode process of exe, their keys grouped by
// tags (storage.tags; "" the default).
func startFleetServers(ctx context.Context, exe, redisBin string, addrs []string, tags string, procs int, tenants fleetTenants, ping time.Duration, logf func(string, ...any)) (f *fleetServers, err error) {
	dir, err := os.MkdirTemp("", "pushpull-fleet-")
	if err != nil {
		return nil, err
	}
	f = &fleetServers{dir: dir, redisAddrs: addrs}
	defer func() {
		if err != nil {
			f.stop()
			f = nil
		}
	}()
	storage := map[string]any{"type": "redis", "addrs": addrs}
	if len(addrs) == 0 {
		var port int
		if f.redis, port, err = startRedis(ctx, redisBin, dir); err != nil {
			return f, err
		}
		f.redisAddrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		storage = map[string]any{"type": "redis", "host": "127.0.0.1", "port": port}
		logf("fleet: redis-server on %s", f.redisAddrs[0])
	}
	if tags != "" {
		storage["tags"] = tags
	}
	for i := 0; i <= procs; i++ {
		publisher := i == procs
		name := "fleet-" + strconv.Itoa(i)
		if publisher {
			name = "fleet-publisher"
		}
		file := filepath.Join(dir, name+".json")
		if err := writeFleetConfig(file, name, storage, tenants, ping, publisher); err != nil {
			return f, err
		}
		wait, cancel := context.WithTimeout(ctx, 30*time.Second)
		n := 2
		if publisher {
			n = 1
		}
		p, ls, err := spawn.Serve(wait, n, "pushpull serve ("+name+")", exec.Command(exe, "serve", "--config", file))
		if err == nil {
			// Ready: subscribed to Redis, so nothing published is missed.
			if err = p.WaitLine(wait, readyLine); err != nil {
				_ = p.Stop(5 * time.Second)
			}
		}
		cancel()
		if err != nil {
			return f, err
		}
		pub := ls[len(ls)-1].Addr
		fp := fleetProc{p: p, pubURL: fmt.Sprintf("http://%s/bitrix/pub/", pub), statURL: fmt.Sprintf("http://%s/server-stat/", pub)}
		if publisher {
			f.pub = fp
		} else {
			fp.subURL = fmt.Sprintf("ws://%s/bitrix/subws/", ls[0].Addr)
			f.subs = append(f.subs, fp)
		}
	}
	return f, nil
}

// writeFleetConfig writes one fleet process's config: a subscribe server
// and a publish and statistics server on free ports, or for the publisher
// (publishMode) the second alone; ping, above 0, is its
// websocket.pingInterval.
func writeFleetConfig(file, name string, storage map[string]any, tenants fleetTenants, ping time.Duration, publisher bool) error {
	pub := config.Server{Name: name + "-pub", Hostname: "127.0.0.1", Port: 0,
		Routes: config.Routes{Pub: []string{"/bitrix/pub/"}, Stat: []string{"/server-stat/"}}}
	servers := []config.Server{pub}
	if !publisher {
		servers = []config.Server{{Name: name + "-sub", Hostname: "127.0.0.1", Port: 0,
			Routes: config.Routes{Sub: []string{"/bitrix/subws/"}}}, pub}
	}
	security := map[string]any{"key": tenants.key}
	if len(tenants.clients) > 0 {
		security["clients"] = tenants.keys
	}
	cfg := map[string]any{
		"servers":         servers,
		"storage":         storage,
		"security":        security,
		"publishMode":     publisher,
		"processUniqueId": name + "-" + newChannelID()[:8],
		// Info logs the listening lines the bench reads and little else.
		"log":             map[string]string{"level": "info"},
		"shutdownTimeout": 2,
	}
	if ping > 0 {
		cfg["websocket"] = map[string]any{"pingInterval": ping.Seconds()}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// subPIDs returns the subscriber processes' pids.
func (f *fleetServers) subPIDs() []int {
	pids := make([]int, len(f.subs))
	for i, s := range f.subs {
		pids[i] = s.pid()
	}
	return pids
}

// all returns the pushpull processes, the publisher last.
func (f *fleetServers) all() []fleetProc {
	return append(slices.Clip(f.subs), f.pub)
}

// alive returns an error if a process of the fleet has exited.
func (f *fleetServers) alive() error {
	for _, s := range f.all() {
		if s.p != nil {
			if err := s.p.Exited(); err != nil {
				return err
			}
		}
	}
	if f.redis != nil {
		return f.redis.Exited()
	}
	return nil
}

// maxWarnings bounds the warnings a fleet result carries.
const maxWarnings = 20

// readyLine is in the line `pushpull serve` logs once its store delivers
// (for Redis: its pub/sub subscription is up).
const readyLine = "msg=ready"

// warnings returns the warnings and errors the pushpull processes have
// logged since they were ready (a lost Redis subscription, a slow client
// dropped), each after its process's name: what explains a loss the run
// counted. Those before (waiting for Redis at the start) are not.
func (f *fleetServers) warnings() []string {
	var out []string
	for _, s := range f.all() {
		if s.p == nil {
			continue
		}
		text := s.p.Out.String()
		if i := strings.Index(text, readyLine); i >= 0 {
			text = text[i:]
		}
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				if len(out) == maxWarnings {
					return append(out, "...")
				}
				out = append(out, s.p.Name+": "+strings.TrimSpace(line))
			}
		}
	}
	return out
}

// stop stops the pushpull processes, then Redis, and removes the configs.
func (f *fleetServers) stop() {
	var wg sync.WaitGroup
	for _, s := range f.all() {
		if s.p != nil {
			wg.Go(func() { _ = s.p.Stop(10 * time.Second) })
		}
	}
	wg.Wait()
	if f.redis != nil {
		_ = f.redis.Stop(5 * time.Second)
	}
	os.RemoveAll(f.dir)
}
