package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pushpull bench chaos runs real servers through faults with subscribers
// that resume by mid and drop their connections; it exits non-zero when
// any run lost, repeated or reordered a message. A short run of the faults
// that keep history: a SIGTERM restart with a snapshot, a process killed
// and restarted on Redis, Redis itself killed (appendfsync always), and a
// process's pub/sub connection wedged (open, but silent).
func TestChaosScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "bench", "chaos", "--quiet", "--phase", "3s",
		"--faults", "memory/sigterm,redis/kill9,redis/redis-kill9,redis/wedged-pubsub").CombinedOutput()
	if err != nil {
		t.Fatalf("bench chaos: %v\n%s", err, out)
	}
	rows := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && strings.Contains(f[0], "/") {
			rows++
			if f[1] == "0" || f[3] != "0" || f[4] != "0" || f[5] != "0" {
				t.Errorf("chaos run %s: accepted %s, missing %s, duplicated %s, backwards %s", f[0], f[1], f[3], f[4], f[5])
			}
		}
	}
	if rows != 4 {
		t.Fatalf("want 4 rows in:\n%s", out)
	}
}
