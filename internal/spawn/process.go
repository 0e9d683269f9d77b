package spawn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrPortTaken says a program could not bind a port it was given: another
// process took it between its choosing and the program's start.
var ErrPortTaken = errors.New("a port it was given was taken by another process")

// Process is a program started by Start.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Output // its stdout (unless the caller took it) and stderr

	done chan struct{} // closed once it has exited and its output is written
	err  error         // its exit status, once done
}

// Start starts cmd with its stdout and stderr written to a new Output. A
// cmd whose Stdout is set keeps it (a pipe its caller reads, for a child
// that reports on stdout); Out then holds its stderr alone. On Linux the
// child is killed if this process dies, so it does not linger holding its
// ports.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, Out: &Output{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	cmd.Stderr = p.Out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = childAttr()
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status once Done is closed: nil for exit code 0.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop ends the process: SIGTERM, then, if it has not exited within grace,
// SIGQUIT (a Go program prints every goroutine's stack on it) and, if it
// still runs five seconds later, SIGKILL. It returns an error if the
// process outlived grace. A process that has exited is left as it is.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	_ = p.Signal(syscall.SIGQUIT)
	timer.Reset(5 * time.Second)
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, grace)
}

// WaitListening waits until the process has logged a listening line for
// each of its n servers and returns them. It fails when the process exits
// first (with ErrPortTaken when a port it was given had been taken) or ctx
// ends.
func (p *Process) WaitListening(ctx context.Context, n int) ([]Listener, error) {
	ls, err := p.Out.WaitListening(ctx, n, p.done)
	if err != nil {
		return nil, p.waitError(ctx, "a listening line for each of its "+strconv.Itoa(n)+" servers", err)
	}
	return ls, nil
}

// WaitLine waits until the process has written a line containing text,
// failing as WaitListening does.
func (p *Process) WaitLine(ctx context.Context, text string) error {
	_, err := p.Out.Wait(ctx, p.done, func(lines []string) bool {
		for _, l := range lines {
			if strings.Contains(l, text) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return p.waitError(ctx, fmt.Sprintf("a line with %q", text), err)
	}
	return nil
}

// Exited returns nil while the process runs; once it has exited, an error
// saying so with its exit status and the end of its output.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return &exitError{name: p.Name, status: p.err, out: p.Out.String()}
	default:
		return nil
	}
}

func (p *Process) waitError(ctx context.Context, what string, err error) error {
	if errors.Is(err, ErrEnded) {
		return p.Exited()
	}
	return fmt.Errorf("%s: no %s: %w\n%s", p.Name, what, ctx.Err(), tail(p.Out.String()))
}

// exitError is a process that exited while it was waited for.
type exitError struct {
	name   string
	status error
	out    string
}

func (e *exitError) Error() string {
	return fmt.Sprintf("%s exited (%v):\n%s", e.name, e.status, tail(e.out))
}

// Is makes an exit for a port in use ErrPortTaken. Both pushpull ("bind:
// address already in use") and redis-server ("Address already in use")
// say so.
func (e *exitError) Is(target error) bool {
	return target == ErrPortTaken && strings.Contains(strings.ToLower(e.out), "address already in use")
}

// tail is the end of a process's output for an error message.
func tail(out string) string {
	const max = 16 << 10
	out = strings.TrimSpace(out)
	if len(out) > max {
		out = "..." + out[len(out)-max:]
	}
	return out
}

// attempts bounds how often RetryPorts starts a program that lost a port.
const attempts = 5

// RetryPorts calls start until it returns nil or an error other than a
// lost port (ErrPortTaken, or EADDRINUSE from a listener in this process),
// at most five times, and returns its last error. start picks fresh ports
// (FreePorts) each time. It is for programs that cannot bind port 0 and
// report what they bound, as redis-server cannot.
func RetryPorts(start func() error) error {
	var err error
	for range attempts {
		err = start()
		if !errors.Is(err, ErrPortTaken) && !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
	return err
}

// Serve starts cmd, a pushpull server whose servers are configured on
// port 0, and waits until it has logged a listening line for each of its
// n servers, which say the ports it bound. One that fails, or does not
// listen before ctx ends, is stopped and its error, with the end of its
// output, returned.
func Serve(ctx context.Context, n int, name string, cmd *exec.Cmd) (*Process, []Listener, error) {
	p, err := Start(name, cmd)
	if err != nil {
		return nil, nil, err
	}
	ls, err := p.WaitListening(ctx, n)
	if err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, nil, err
	}
	return p, ls, nil
}

// FreePorts returns n loopback TCP ports that were free a moment ago, for
// a program that cannot bind port 0 and report what it bound: another
// process may take one first, which RetryPorts survives.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
