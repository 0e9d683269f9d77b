package bench

import (
	"encoding/binary"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleStatus = `Name:	pushpull
Umask:	0022
State:	S (sleeping)
Tgid:	4242
VmPeak:	 1266488 kB
VmRSS:	   81236 kB
RssAnon:	   74000 kB
Threads:	9
SigQ:	0/95552
`

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte(sampleStatus))
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS != 81236*1024 || st.Threads != 9 {
		t.Fatalf("got %+v, want RSS %d and 9 threads", st, 81236*1024)
	}
}

func TestParseStatusErrors(t *testing.T) {
	for name, text := range map[string]string{
		"kernel thread": "Name:\tkthreadd\nThreads:\t1\n",
		"no threads":    "VmRSS:\t 10 kB\n",
		"bad unit":      "VmRSS:\t 10 MB\nThreads:\t1\n",
		"bad number":    "VmRSS:\t x kB\nThreads:\t1\n",
		"bad threads":   "VmRSS:\t 10 kB\nThreads:\tmany\n",
		"empty":         "",
	} {
		if st, err := parseStatus([]byte(text)); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, st)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses; fields are counted
	// from the last ')'.
	stat := "4242 (push) (pull x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0 0 20 0 9 0 123 1296891904 20309 18446744073709551615\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 731+269 {
		t.Fatalf("got %d ticks, want %d", got, 731+269)
	}
	for _, bad := range []string{"", "4242 pushpull S 1", "4242 (p) S 1 2 3", "4242 (p) S 1 4242 4242 0 -1 4194560 1500 0 0 0 x 269"} {
		if n, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
}

func TestReadSelf(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.Threads < 1 {
		t.Fatalf("own status %+v: want a positive RSS and at least one thread", st)
	}
	if _, err := ReadCPUTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStatus(-1); err == nil {
		t.Fatal("ReadStatus(-1) succeeded")
	}
}

func TestAuxvClockTicks(t *testing.T) {
	pair := func(k, v uint64) []byte {
		b := binary.NativeEndian.AppendUint64(nil, k)
		return binary.NativeEndian.AppendUint64(b, v)
	}
	var v []byte
	v = append(v, pair(6, 4096)...) // AT_PAGESZ
	v = append(v, pair(atClkTck, 250)...)
	v = append(v, pair(0, 0)...)
	if got := auxvClockTicks(v); got != 250 {
		t.Fatalf("got %d, want 250", got)
	}
	// Entries after AT_NULL do not count.
	late := append(pair(6, 4096), pair(0, 0)...)
	late = append(late, pair(atClkTck, 250)...)
	if got := auxvClockTicks(late); got != 0 {
		t.Fatalf("after AT_NULL: got %d, want 0", got)
	}
	if got := auxvClockTicks(v[:20]); got != 0 {
		t.Fatalf("truncated: got %d, want 0", got)
	}
	if clockTicks <= 0 {
		t.Fatalf("clockTicks = %d", clockTicks)
	}
}

func TestTicksToMillis(t *testing.T) {
	if got := TicksToMillis(clockTicks * 3); got != 3000 {
		t.Fatalf("3 s of ticks = %v ms", got)
	}
}

func TestParseSystemBusy(t *testing.T) {
	stat := "cpu  100 5 40 9000 7 2 3 1 0 0\ncpu0 50 2 20 4500 3 1 1 0 0 0\nintr 1\n"
	got, err := parseSystemBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(100 + 5 + 40 + 2 + 3 + 1); got != want {
		t.Fatalf("got %d, want %d (idle and iowait excluded)", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 x 3 4 5 6 7 8\n"} {
		if n, err := parseSystemBusy([]byte(bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
	if _, err := ReadSystemBusy(); err != nil {
		t.Fatal(err)
	}
}

func TestCPUMeter(t *testing.T) {
	m, err := startCPU(procs{root: os.Getpid()}, os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.stop()
	if err != nil {
		t.Fatal(err)
	}
	if u.Server < 0 || u.Bench < 0 || u.Helper < 0 || u.Others < 0 {
		t.Fatalf("got %+v", u)
	}
	if _, err := startCPU(procs{root: -1}, 0); err == nil {
		t.Fatal("started on pid -1")
	}
}

func TestModeURL(t *testing.T) {
	for _, tc := range []struct{ sub, mode, want string }{
		{"ws://h/bitrix/subws/", "", "ws://h/bitrix/subws/"},
		{"ws://h/bitrix/subws/", "text", "ws://h/bitrix/subws/"},
		{"ws://h/bitrix/subws/", "binary", "ws://h/bitrix/subws/?binaryMode=true"},
		{"ws://h/bitrix/subws/?x=1", "jsonrpc", "ws://h/bitrix/subws/?x=1&jsonRpc=true"},
	} {
		if got, err := modeURL(tc.sub, tc.mode); err != nil || got != tc.want {
			t.Errorf("modeURL(%q, %q) = %q, %v; want %q", tc.sub, tc.mode, got, err, tc.want)
		}
	}
	if _, err := modeURL("ws://h/", "protobuf"); err == nil {
		t.Error("an unknown mode was accepted")
	}
}

func TestParsePSS(t *testing.T) {
	rollup := "55b17ceb8000-7ffe5fe41000 ---p 00000000 00:00 0    [rollup]\nRss:                1776 kB\nPss:                 201 kB\nPss_Dirty:           116 kB\n"
	if n, err := parsePSS([]byte(rollup)); err != nil || n != 201*1024 {
		t.Fatalf("got %d, %v; want %d", n, err, 201*1024)
	}
	for _, bad := range []string{"", "Rss: 10 kB\n", "Pss: x kB\n", "Pss: 10 MB\n", "Pss: -1 kB\n", "Pss_Dirty: 1 kB\n"} {
		if n, err := parsePSS([]byte(bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
	if n, err := ReadPSS(os.Getpid()); err != nil || n <= 0 {
		t.Fatalf("own PSS %d, %v", n, err)
	}
}

func TestParseStatPPID(t *testing.T) {
	if ppid, err := parseStatPPID([]byte("4242 (nginx: worker (x)) S 4200 4200 4200 0 -1\n")); err != nil || ppid != 4200 {
		t.Fatalf("got %d, %v; want 4200", ppid, err)
	}
	for _, bad := range []string{"", "4242 nginx S 1", "4242 (n) S", "4242 (n) S x"} {
		if n, err := parseStatPPID([]byte(bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
}

// FuzzProcText feeds the /proc readers any text: no panic, and no
// negative PSS.
func FuzzProcText(f *testing.F) {
	f.Add([]byte(sampleStatus))
	f.Add([]byte("4242 (p) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0\n"))
	f.Add([]byte("Pss:   201 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStatus(b)
		parseStatCPU(b)
		parseStatPPID(b)
		if n, err := parsePSS(b); err == nil && n < 0 {
			t.Fatalf("negative PSS %d", n)
		}
	})
}

// A server's tree is the process and its descendants: nginx's master and
// workers, whose CPU and memory are summed.
func TestProcsTree(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to start: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	self := procs{root: os.Getpid(), tree: true}
	if pids := self.pids(); pids[0] != os.Getpid() || !slices.Contains(pids, cmd.Process.Pid) || self.workers() < 1 {
		t.Fatalf("tree %v lacks the child %d", pids, cmd.Process.Pid)
	}
	one, err := procs{root: os.Getpid()}.status()
	if err != nil {
		t.Fatal(err)
	}
	all, err := self.status()
	if err != nil {
		t.Fatal(err)
	}
	if all.RSS <= one.RSS || all.Threads <= one.Threads {
		t.Fatalf("tree %+v is not more than the process alone %+v", all, one)
	}
	if _, err := self.cpuTicks(); err != nil {
		t.Fatal(err)
	}
	if n, err := self.pss(); err != nil || n <= 0 {
		t.Fatalf("tree PSS %d, %v", n, err)
	}
	if _, err := (procs{root: -1, tree: true}).status(); err == nil {
		t.Fatal("a tree without its root was read")
	}
}

// PinSelf moves every thread of the process onto the CPU and gives the
// CPUs back after.
func TestPinSelf(t *testing.T) {
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	cpu := 0
	for !before.IsSet(cpu) {
		cpu++
	}
	restore, err := PinSelf(cpu)
	if err != nil {
		t.Fatal(err)
	}
	each := func(check func(tid int, set unix.CPUSet)) {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			tid, _ := strconv.Atoi(e.Name())
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err == nil {
				check(tid, set)
			}
		}
	}
	each(func(tid int, set unix.CPUSet) {
		if set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("thread %d may run on %d CPUs, want only CPU %d", tid, set.Count(), cpu)
		}
	})
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS %d while pinned", n)
	}
	restore()
	each(func(tid int, set unix.CPUSet) {
		if set != before {
			t.Errorf("thread %d may run on %d CPUs after the restore, want %d", tid, set.Count(), before.Count())
		}
	})
	if n := runtime.GOMAXPROCS(0); n != procs {
		t.Errorf("GOMAXPROCS %d after the restore, want %d", n, procs)
	}
}
