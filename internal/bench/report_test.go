package bench

import (
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	rep := &Report{
		Idle:         &IdleResult{Storage: "memory", Connections: 19000, BytesPerConn: 1400},
		Unicast:      &DeliveryResult{Storage: "redis", Delivered: 100000, CPUPer1000: 22.5, OtherCPUShare: 0.4},
		Fanout:       &DeliveryResult{Storage: "redis", Subscribers: 1000, Expected: 500000, Delivered: 499999, Lost: 1, Latency: Latency{P50: 2.5, P99: 4.9}},
		FanoutMemory: &DeliveryResult{Storage: "memory", Delivered: 500000, Latency: Latency{P50: 1.2, P99: 3}},
		Errors:       map[string]string{},
	}
	rep.Checks = rep.check()
	want := []struct {
		prefix string
		pass   bool
		note   bool
	}{
		{"idle: server memory per WebSocket", true, false},
		{"unicast: server CPU per 1,000 deliveries", false, true},
		{"fanout: p99 latency", true, false},
		{"fanout: lost", false, false},
		{"fanout: p50 redis - p50 memory", false, false}, // 1.3 ms over
	}
	if len(rep.Checks) != len(want) {
		t.Fatalf("%d checks: %+v", len(rep.Checks), rep.Checks)
	}
	for i, w := range want {
		c := rep.Checks[i]
		if !strings.HasPrefix(c.Name, w.prefix) || c.Pass != w.pass || (c.Note != "") != w.note {
			t.Errorf("check %d: got %+v, want %q pass=%v note=%v", i, c, w.prefix, w.pass, w.note)
		}
	}

	// A scenario that dropped connections does not pass, whatever its memory.
	rep = &Report{Idle: &IdleResult{BytesPerConn: 100, Dropped: 3}}
	if c := rep.check(); c[0].Pass {
		t.Errorf("idle with drops passed: %+v", c[0])
	}

	rep.Errors = map[string]string{"unicast": "pushpull serve exited: storage.type: \"redis\" is not supported\nmore"}
	rep.Checks = rep.check()
	var b strings.Builder
	WriteSummary(&b, rep)
	out := b.String()
	for _, s := range []string{"CHECK", "MISSED", "unicast", `"redis" is not supported`} {
		if !strings.Contains(out, s) {
			t.Errorf("summary lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "more") {
		t.Errorf("summary shows more than an error's first line:\n%s", out)
	}
}
