package redistest

import (
	"strconv"
	"strings"
	"testing"
)

// CommandStats returns how many times the node at addr ran each command
// since it started or its statistics were reset (ResetStats), from INFO
// commandstats: "spublish", "evalsha", "fcall"; subcommands are named
// as Redis names them, "cluster|nodes".
func (c *Cluster) CommandStats(t testing.TB, addr string) map[string]int64 {
	t.Helper()
	info, err := c.doString(addr, "INFO", "commandstats")
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", addr, err)
	}
	stats, err := parseCommandStats(info)
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", addr, err)
	}
	return stats
}

// parseCommandStats reads the calls of each command from INFO
// commandstats, whose lines are
//
//	cmdstat_<name>:calls=<n>,usec=<n>,...
func parseCommandStats(info string) (map[string]int64, error) {
	stats := map[string]int64{}
	for line := range strings.Lines(info) {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isStat := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isStat {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, err
				}
				stats[name] = n
			}
		}
	}
	return stats, nil
}

// ResetStats resets the statistics of every running node (CONFIG
// RESETSTAT), so that CommandStats counts from now.
func (c *Cluster) ResetStats(t testing.TB) {
	t.Helper()
	for _, s := range c.running() {
		if _, err := c.do(s.Addr(), "CONFIG", "RESETSTAT"); err != nil {
			t.Fatalf("CONFIG RESETSTAT on %s: %v", s.Addr(), err)
		}
	}
}
