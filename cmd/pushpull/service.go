package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/pushpull/pushpull/internal/app"
	"github.com/pushpull/pushpull/internal/config"
)

// notifier tells systemd how the service is, over the socket a unit of
// Type=notify names in NOTIFY_SOCKET: READY=1 once it serves, WATCHDOG=1
// while it is alive, RELOADING=1 and READY=1 around a reload, STOPPING=1
// when a graceful stop begins. Without NOTIFY_SOCKET it sends nothing.
type notifier struct {
	log *slog.Logger
	on  bool
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{log: log, on: os.Getenv("NOTIFY_SOCKET") != ""}
}

func (n *notifier) send(states ...string) {
	if !n.on {
		return
	}
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		n.log.Warn("cannot notify systemd", "err", err)
	}
}

// supervise runs beside app.Run until ctx ends: it reports readiness,
// keeps the watchdog fed while the process serves, and reloads the
// configuration on each value of hup. It returns once all of that has
// stopped.
func supervise(ctx context.Context, a *app.App, args []string, hup <-chan os.Signal, log *slog.Logger) {
	sd := newNotifier(log)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := a.WaitReady(ctx, func(err error) {
			log.Warn("not ready yet", "err", err)
			sd.send("STATUS=waiting for the store: " + err.Error())
		})
		if err == nil {
			log.Info("ready")
			sd.send(daemon.SdNotifyReady, "STATUS=serving")
		}
	})
	if interval, err := daemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("watchdog not fed", "err", err)
	} else if interval > 0 {
		wg.Go(func() { feedWatchdog(ctx, a, interval, sd, log) })
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				sd.send(daemon.SdNotifyReloading, strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"))
				reload(a, args, log)
				sd.send(daemon.SdNotifyReady, "STATUS=serving")
			}
		}
	})
	<-ctx.Done()
	sd.send(daemon.SdNotifyStopping, "STATUS=stopping")
	wg.Wait()
}

// feedWatchdog sends WATCHDOG=1 twice per interval for as long as the
// process answers HTTP on its listeners (app.Alive); a process that stops
// answering is left for systemd to restart.
func feedWatchdog(ctx context.Context, a *app.App, interval time.Duration, sd *notifier, log *slog.Logger) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, interval/2)
		err := a.Alive(check)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("watchdog: the process does not answer", "err", err)
		default:
			sd.send(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reload reads the configuration again, with the arguments and
// environment the process started with, and applies what can change
// while clients stay connected; a configuration that does not load or
// validate leaves the running one, and says why.
func reload(a *app.App, args []string, log *slog.Logger) {
	// A per-file setup's processes reload themselves: this is one process.
	setup, err := config.ParseServe(args, os.Getenv, io.Discard)
	if err == nil {
		next := setup.Processes[0].Config
		var r app.Reloaded
		if r, err = a.Reload(next); err == nil {
			for _, note := range setup.Notes {
				log.Warn("config", "note", note)
			}
			log.Info("reloaded", "applied", strings.Join(r.Applied, ","), "certificates", strings.Join(r.Certificates, ","))
			if len(r.NotApplied) > 0 {
				log.Warn("not reloaded: restart to apply", "keys", strings.Join(r.NotApplied, ","))
			}
			if until := a.PreviousKeyUntil(); !until.IsZero() {
				log.Info("the previous security key still verifies", "until", until.UTC().Format(time.RFC3339))
			}
			return
		}
	}
	log.Error("reload failed: the running configuration stays", "err", err)
}
