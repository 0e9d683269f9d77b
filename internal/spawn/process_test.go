package spawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary act as a child process (see child).
const childEnv = "SPAWN_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		child(mode)
		return
	}
	os.Exit(m.Run())
}

// child plays a server: "serve" binds two loopback ports, logs them as
// pushpull serve does and runs until SIGTERM; "taken" fails as pushpull
// does on a port another process holds; "broken" fails otherwise; "deaf"
// logs its listeners and ignores SIGTERM.
func child(mode string) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch mode {
	case "taken":
		fmt.Fprintln(os.Stderr, "pushpull: servers[0] (127.0.0.1:8010): listen tcp 127.0.0.1:8010: bind: address already in use")
		os.Exit(1)
	case "broken":
		fmt.Fprintln(os.Stderr, "pushpull: servers[0].port: -1 is not a port (0-65535)")
		os.Exit(1)
	}
	if mode == "deaf" {
		signal.Ignore(syscall.SIGTERM)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	for _, name := range []string{"sub", "pub"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Error("listen", "err", err)
			os.Exit(1)
		}
		defer l.Close()
		log.Info("listening", "server", name, "addr", l.Addr().String(), "tls", false)
	}
	<-stop
}

// childCmd is the command of a child in mode; it is killed when the test
// ends.
func childCmd(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	})
	return cmd
}

func startChild(t *testing.T, mode string) (*Process, error) {
	t.Helper()
	return Start("child "+mode, childCmd(t, mode))
}

// Serve returns the addresses the server reports, which accept
// connections; Stop ends it with SIGTERM.
func TestServe(t *testing.T) {
	p, ls, err := Serve(t.Context(), 2, "child", childCmd(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Server != "sub" || ls[1].Server != "pub" {
		t.Fatalf("listeners %+v; want sub and pub", ls)
	}
	for _, l := range ls {
		c, err := net.Dial("tcp", l.Addr)
		if err != nil {
			t.Fatalf("%s reported %s: %v", l.Server, l.Addr, err)
		}
		c.Close()
	}
	if err := p.Exited(); err != nil {
		t.Fatalf("running child: %v", err)
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// A server failing to start gives its error with its output.
func TestServeFails(t *testing.T) {
	_, _, err := Serve(t.Context(), 2, "child", childCmd(t, "broken"))
	if err == nil || errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), "is not a port") {
		t.Fatalf("broken server: %v; want its error, not ErrPortTaken", err)
	}
}

// A program that lost a port is started again; one failing for another
// reason is not.
func TestRetryPorts(t *testing.T) {
	var modes []string
	start := func(fail string) func() error {
		return func() error {
			mode := "serve"
			if len(modes) == 0 {
				mode = fail
			}
			modes = append(modes, mode)
			p, err := startChild(t, mode)
			if err != nil {
				return err
			}
			_, err = p.WaitListening(t.Context(), 2)
			return err
		}
	}
	if err := RetryPorts(start("taken")); err != nil {
		t.Fatalf("after a taken port: %v", err)
	}
	if strings.Join(modes, ",") != "taken,serve" {
		t.Errorf("started %v; want taken, then serve", modes)
	}

	modes = nil
	err := RetryPorts(start("broken"))
	if err == nil || errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), "is not a port") {
		t.Fatalf("broken program: %v; want its error, not ErrPortTaken", err)
	}
	if len(modes) != 1 {
		t.Errorf("started %v; want one attempt", modes)
	}

	n := 0
	err = RetryPorts(func() error {
		n++
		return fmt.Errorf("listen: %w", syscall.EADDRINUSE)
	})
	if !errors.Is(err, syscall.EADDRINUSE) || n != attempts {
		t.Errorf("always in use: %d attempts, %v; want %d and EADDRINUSE", n, err, attempts)
	}
}

// A server that waits past its deadline is stopped and its output
// reported; one deaf to SIGTERM is ended anyway, and Stop says so.
func TestStopAndDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cmd := childCmd(t, "serve")
	_, _, err := Serve(ctx, 3, "child", cmd)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a third listener that never comes: %v; want context.Canceled", err)
	}
	if cmd.ProcessState == nil {
		t.Error("the server that did not listen in time still runs")
	}

	p, ls, err := Serve(t.Context(), 2, "child", childCmd(t, "deaf"))
	if err != nil || len(ls) != 2 {
		t.Fatal(ls, err)
	}
	if err := p.Stop(0); err == nil {
		t.Error("Stop of a process ignoring SIGTERM: no error")
	}
	if p.Exited() == nil {
		t.Error("the deaf process still runs after Stop")
	}
}
