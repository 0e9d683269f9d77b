package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The processes of --per-file tell their readiness and liveness to the
// process that started them, which tells systemd for them all: a unit of
// Type=notify with NotifyAccess=main hears the main process only.

// notifyRelay is one per-file process's NOTIFY_SOCKET: an abstract unix
// datagram socket the parent reads.
type notifyRelay struct {
	name string
	conn *net.UnixConn

	mu      sync.Mutex
	ready   bool
	lastDog time.Time
	changed chan struct{} // signalled (never closed) on READY=1
}

func newNotifyRelay(i int) (*notifyRelay, error) {
	name := "@pushpull-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	r := &notifyRelay{name: name, conn: conn, changed: make(chan struct{}, 1)}
	go r.read()
	return r, nil
}

func (r *notifyRelay) read() {
	buf := make([]byte, 4096)
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return
		}
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			switch line {
			case daemon.SdNotifyReady:
				r.mu.Lock()
				r.ready = true
				r.mu.Unlock()
				select {
				case r.changed <- struct{}{}:
				default:
				}
			case daemon.SdNotifyWatchdog:
				r.mu.Lock()
				r.lastDog = time.Now()
				r.mu.Unlock()
			}
		}
	}
}

func (r *notifyRelay) isReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

func (r *notifyRelay) fedSince(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.lastDog.Before(t)
}

func (r *notifyRelay) close() { r.conn.Close() }

// childEnv is the environment of a per-file process: the parent's,
// with the notify socket its relay's (none without one) and the watchdog
// its own.
func childEnv(r *notifyRelay, watchdog time.Duration) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" || k == "WATCHDOG_PID"
	})
	if r != nil {
		env = append(env, "NOTIFY_SOCKET="+r.name)
		if watchdog > 0 {
			env = append(env, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
		}
	}
	return env
}

// relayNotify tells systemd READY=1 once every process has, and feeds
// its watchdog while every process feeds its own, until stop is closed.
func relayNotify(relays []*notifyRelay, watchdog time.Duration, sd *notifier, stop <-chan struct{}) {
	for _, r := range relays {
		for !r.isReady() {
			select {
			case <-stop:
				return
			case <-r.changed:
			}
		}
	}
	sd.send(daemon.SdNotifyReady, fmt.Sprintf("STATUS=serving: %d processes", len(relays)))
	if watchdog <= 0 {
		<-stop
		return
	}
	t := time.NewTicker(watchdog / 2)
	defer t.Stop()
	for {
		since := time.Now().Add(-watchdog)
		alive := true
		for _, r := range relays {
			alive = alive && r.fedSince(since)
		}
		if alive {
			sd.send(daemon.SdNotifyWatchdog)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
