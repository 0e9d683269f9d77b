package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/pushpull/pushpull/internal/config"
)

// servePerFile runs one `pushpull serve --config FILE` process per config
// file, as the appliance runs one push server per file, each with the
// flags given that override the files; their logs go to stderr. A stop
// (ctx) and a reload (hup) are passed on to every one; when one ends by
// itself, the others are stopped and its error returned, so that the
// service manager restarts the set.
func servePerFile(ctx context.Context, setup *config.Setup, hup <-chan os.Signal, stderr io.Writer) error {
	log := newLogger(setup.Processes[0].Config.Log, new(slog.LevelVar), stderr)
	for _, note := range setup.Notes {
		log.Warn("config", "note", note)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--per-file: finding this program to start it per file: %w", err)
	}
	type child struct {
		file string
		cmd  *exec.Cmd
		done chan struct{}
		err  error
	}
	var children []*child
	ended := make(chan *child, len(setup.Processes))
	// Under systemd (Type=notify), each process notifies this one, which
	// notifies systemd for all.
	sd := newNotifier(log)
	var relays []*notifyRelay
	var watchdog time.Duration
	if sd.on && abstractSockets {
		if watchdog, err = daemon.SdWatchdogEnabled(false); err != nil {
			log.Warn("watchdog not fed", "err", err)
		}
		for i := range setup.Processes {
			r, err := newNotifyRelay(i)
			if err != nil {
				for _, r := range relays {
					r.close()
				}
				return fmt.Errorf("--per-file: a notify socket for the processes: %w", err)
			}
			relays = append(relays, r)
		}
	}
	stopRelay := make(chan struct{})
	defer func() {
		for _, r := range relays {
			r.close()
		}
	}()
	stopAll := func() {
		close(stopRelay)
		sd.send(daemon.SdNotifyStopping, "STATUS=stopping")
		for _, c := range children {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
		grace := config.Seconds(setup.Processes[0].Config.ShutdownTimeout) + 5*time.Second
		deadline := time.After(grace)
		for _, c := range children {
			select {
			case <-c.done:
			case <-deadline:
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
	}
	for i, p := range setup.Processes {
		args := append([]string{"serve", "--config", p.Files[0]}, setup.ChildArgs...)
		c := &child{file: p.Files[0], cmd: exec.Command(exe, args...), done: make(chan struct{})}
		c.cmd.Stdout, c.cmd.Stderr = stderr, stderr
		var relay *notifyRelay
		if relays != nil {
			relay = relays[i]
		}
		c.cmd.Env = childEnv(relay, watchdog)
		c.cmd.SysProcAttr = childAttr()
		if err := c.cmd.Start(); err != nil {
			stopAll()
			return fmt.Errorf("%s: %w", c.file, err)
		}
		log.Info("process started", "config", c.file, "pid", c.cmd.Process.Pid)
		children = append(children, c)
		go func() {
			c.err = c.cmd.Wait()
			close(c.done)
			ended <- c
		}()
	}
	if relays != nil {
		go relayNotify(relays, watchdog, sd, stopRelay)
	}
	for {
		select {
		case <-ctx.Done():
			stopAll()
			return nil
		case <-hup:
			for _, c := range children {
				_ = c.cmd.Process.Signal(syscall.SIGHUP)
			}
		case c := <-ended:
			err := c.err
			if err == nil {
				err = errors.New("exited")
			}
			log.Error("process ended: stopping the others", "config", c.file, "err", err)
			stopAll()
			return fmt.Errorf("%s: %w", c.file, err)
		}
	}
}
