package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RedisCPU returns the CPU time a Redis server has used (used_cpu_sys
// plus used_cpu_user of INFO cpu), in milliseconds. INFO counts in
// microseconds, where /proc counts in clock ticks of 10 ms: a fleet's few
// hundred publishes cost Redis a few milliseconds. It works for a Redis
// the bench did not start as well, and on each node of a cluster.
func RedisCPU(ctx context.Context, addr string) (float64, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", addr, err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, "*2\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n"); err != nil {
		return 0, fmt.Errorf("redis %s: INFO cpu: %w", addr, err)
	}
	body, err := readBulk(bufio.NewReader(nc))
	if err != nil {
		return 0, fmt.Errorf("redis %s: INFO cpu: %w", addr, err)
	}
	return parseInfoCPU(body)
}

// readBulk reads one RESP bulk string reply.
func readBulk(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 || line[0] != '$' {
		return nil, fmt.Errorf("reply %q, want a bulk string", line)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("bad bulk length %q", line)
	}
	b := make([]byte, n+2) // and its CRLF
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// parseInfoCPU sums used_cpu_sys and used_cpu_user (seconds) of an INFO
// text, in milliseconds.
func parseInfoCPU(b []byte) (float64, error) {
	var sum float64
	found := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, val, ok := bytes.Cut(bytes.TrimSpace(line), []byte{':'})
		if !ok || (string(key) != "used_cpu_sys" && string(key) != "used_cpu_user") {
			continue
		}
		s, err := strconv.ParseFloat(string(val), 64)
		if err != nil {
			return 0, fmt.Errorf("bad INFO line %q", line)
		}
		sum += s * 1000
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("INFO cpu has no used_cpu_sys and used_cpu_user")
	}
	return sum, nil
}

// redisCPUSum adds RedisCPU over addrs: the nodes of a cluster, or the one
// Redis.
func redisCPUSum(ctx context.Context, addrs []string) (float64, error) {
	var sum float64
	for _, a := range addrs {
		ms, err := RedisCPU(ctx, a)
		if err != nil {
			return 0, err
		}
		sum += ms
	}
	return sum, nil
}
