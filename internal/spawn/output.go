// Package spawn starts the programs the tests and the load tool run beside
// themselves (pushpull serve, redis-server), learns the addresses a server
// bound from the "listening" lines it logs, and stops them.
//
// A pushpull server is configured on port 0 and reports the ports it
// bound, so no port is chosen for it that another process could take
// first. redis-server cannot report a port 0 one: it is given free ports
// (FreePorts) and started again on others when it lost one (RetryPorts).
package spawn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Listener is one server a pushpull process reported listening: the line
// `pushpull serve` logs for each configured server once it has bound it.
type Listener struct {
	Server string // the configured server's name
	Addr   string // the address it bound, host:port
	TLS    bool
}

// Port returns the port of l.Addr, 0 if it has none.
func (l Listener) Port() int {
	_, p, _ := net.SplitHostPort(l.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// ErrEnded is returned by Output.Wait when the writer's source ended before
// the awaited lines came.
var ErrEnded = errors.New("the output ended")

// Output collects what a process writes to stdout and stderr (it is safe
// for concurrent writes) and lets callers wait for lines in it. It keeps
// everything: the programs it serves log a few lines at start and stop.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed (and replaced) by every write
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written != nil {
		close(o.written)
		o.written = nil
	}
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lines returns the complete lines written so far, and a channel closed by
// the next write.
func (o *Output) lines() ([]string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written == nil {
		o.written = make(chan struct{})
	}
	text := o.buf.String()
	text = text[:strings.LastIndexByte(text, '\n')+1]
	return strings.SplitAfter(text, "\n")[:strings.Count(text, "\n")], o.written
}

// Wait returns the complete lines written so far once have reports true of
// them. It gives up with ctx's error when ctx ends, and with ErrEnded when
// ended is closed (after a last look: a process's output is all written by
// the time it counts as exited).
func (o *Output) Wait(ctx context.Context, ended <-chan struct{}, have func(lines []string) bool) ([]string, error) {
	for {
		lines, written := o.lines()
		if have(lines) {
			return lines, nil
		}
		select {
		case <-written:
		case <-ended:
			if lines, _ := o.lines(); have(lines) {
				return lines, nil
			}
			return nil, ErrEnded
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// WaitListening returns the first n listeners the output reports, once it
// has reported that many; see Wait for when it gives up.
func (o *Output) WaitListening(ctx context.Context, n int, ended <-chan struct{}) ([]Listener, error) {
	lines, err := o.Wait(ctx, ended, func(lines []string) bool { return len(Listening(lines)) >= n })
	if err != nil {
		return nil, err
	}
	return Listening(lines)[:n], nil
}

// Listening returns the listeners that lines report, in order. It reads
// both log formats of `pushpull serve`: slog's text (key=value) and JSON.
func Listening(lines []string) []Listener {
	var out []Listener
	for _, line := range lines {
		if l, ok := parseListening(strings.TrimSpace(line)); ok {
			out = append(out, l)
		}
	}
	return out
}

func parseListening(line string) (Listener, bool) {
	var rec struct {
		Msg    string `json:"msg"`
		Server string `json:"server"`
		Addr   string `json:"addr"`
		TLS    bool   `json:"tls"`
	}
	if strings.HasPrefix(line, "{") {
		if json.Unmarshal([]byte(line), &rec) != nil {
			return Listener{}, false
		}
	} else {
		attrs := textAttrs(line)
		rec.Msg, rec.Server, rec.Addr = attrs["msg"], attrs["server"], attrs["addr"]
		rec.TLS = attrs["tls"] == "true"
	}
	if rec.Msg != "listening" || rec.Addr == "" {
		return Listener{}, false
	}
	return Listener{Server: rec.Server, Addr: rec.Addr, TLS: rec.TLS}, true
}

// textAttrs splits a line of slog's text format into its key=value pairs;
// a value slog quoted is unquoted. Anything else ends the line's reading.
func textAttrs(line string) map[string]string {
	attrs := map[string]string{}
	for line != "" {
		key, rest, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			break
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		attrs[key] = val
		line = strings.TrimLeft(rest, " ")
	}
	return attrs
}
