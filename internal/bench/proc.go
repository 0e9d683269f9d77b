package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// ProcStatus is what the bench reads about a process from /proc.
type ProcStatus struct {
	RSS     int64 // resident set size in bytes (VmRSS)
	Threads int   // OS threads
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (ProcStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStatus{}, err
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS (in kB) and Threads from a /proc/PID/status text.
func parseStatus(b []byte) (ProcStatus, error) {
	var st ProcStatus
	var haveRSS, haveThreads bool
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "VmRSS":
			num, unit, _ := bytes.Cut(val, []byte{' '})
			kb, err := strconv.ParseInt(string(num), 10, 64)
			if err != nil || string(bytes.TrimSpace(unit)) != "kB" {
				return st, fmt.Errorf("bad VmRSS line %q", line)
			}
			st.RSS, haveRSS = kb*1024, true
		case "Threads":
			n, err := strconv.Atoi(string(val))
			if err != nil {
				return st, fmt.Errorf("bad Threads line %q", line)
			}
			st.Threads, haveThreads = n, true
		}
	}
	if !haveRSS || !haveThreads {
		// Kernel threads and zombies have no VmRSS.
		return st, errors.New("no VmRSS or Threads in process status")
	}
	return st, nil
}

// ReadCPUTicks returns the user plus system CPU time of a process (all its
// threads) in clock ticks, from /proc/PID/stat.
func ReadCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU sums utime and stime, fields 14 and 15 of /proc/PID/stat.
// The command name (field 2) is in parentheses and may itself hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat: no command name")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field n is fields[n-3].
	if len(fields) < 13 {
		return 0, errors.New("bad /proc stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat: utime or stime is not a number")
	}
	return utime + stime, nil
}

// clockTicks is the kernel's USER_HZ, the unit of the CPU times in
// /proc/PID/stat: sysconf(_SC_CLK_TCK), which libc takes from the AT_CLKTCK
// entry of the auxiliary vector. It is 100 on every common Linux build.
var clockTicks = func() int64 {
	if b, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if hz := auxvClockTicks(b); hz > 0 {
			return hz
		}
	}
	return 100
}()

const atClkTck = 17 // AT_CLKTCK in <elf.h>

// auxvClockTicks finds AT_CLKTCK in an auxiliary vector of native-endian
// word pairs; 0 when absent.
func auxvClockTicks(b []byte) int64 {
	for ; len(b) >= 16; b = b[16:] {
		key := binary.NativeEndian.Uint64(b)
		val := binary.NativeEndian.Uint64(b[8:])
		if key == 0 {
			break
		}
		if key == atClkTck {
			return int64(val)
		}
	}
	return 0
}

// TicksToMillis converts clock ticks to milliseconds.
func TicksToMillis(ticks int64) float64 { return float64(ticks) * 1000 / float64(clockTicks) }

// ReadSystemBusy returns the CPU time all processes have spent running, in
// clock ticks summed over CPUs, from the first line of /proc/stat. The
// bench subtracts the server's and its own share to tell how much else ran
// on the machine during a measurement.
func ReadSystemBusy() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseSystemBusy(b)
}

// parseSystemBusy sums user, nice, system, irq, softirq and steal from the
// aggregate "cpu" line; idle and iowait are not busy.
func parseSystemBusy(b []byte) (int64, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, errors.New("bad /proc/stat: no cpu line")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad /proc/stat cpu line: %q", line)
		}
		busy += v
	}
	return busy, nil
}

// cpuMeter measures, over an interval, the CPU of the server, of the bench
// itself, and of everything else on the machine.
type cpuMeter struct {
	server                procs
	helper                int // a Redis the bench started, or 0
	cpu, self, all, extra int64
	start                 time.Time
}

func startCPU(server procs, helper int) (*cpuMeter, error) {
	m := &cpuMeter{server: server, helper: helper, start: time.Now()}
	var err error
	if m.cpu, err = server.cpuTicks(); err != nil {
		return nil, err
	}
	m.self, _ = ReadCPUTicks(os.Getpid())
	if helper > 0 {
		m.extra, _ = ReadCPUTicks(helper)
	}
	m.all, _ = ReadSystemBusy()
	return m, nil
}

// cpuUse is what a cpuMeter measured, in milliseconds.
type cpuUse struct {
	Server, Bench, Helper, Others float64
	// OthersShare is Others as a fraction of all the machine's CPU time
	// over the interval.
	OthersShare float64
}

func (m *cpuMeter) stop() (cpuUse, error) {
	server, err := m.server.cpuTicks()
	if err != nil {
		return cpuUse{}, err
	}
	self, _ := ReadCPUTicks(os.Getpid())
	all, _ := ReadSystemBusy()
	u := cpuUse{
		Server: TicksToMillis(server - m.cpu),
		Bench:  TicksToMillis(self - m.self),
	}
	if m.helper > 0 {
		if extra, err := ReadCPUTicks(m.helper); err == nil {
			u.Helper = TicksToMillis(extra - m.extra)
		}
	}
	if m.all > 0 && all > 0 {
		u.Others = max(0, TicksToMillis(all-m.all)-u.Server-u.Bench-u.Helper)
		if wall := time.Since(m.start); wall > 0 {
			u.OthersShare = u.Others / (float64(wall.Milliseconds()+1) * float64(runtime.NumCPU()))
		}
	}
	return u, nil
}

// parseStatPPID reads the parent pid, field 4 of /proc/PID/stat.
func parseStatPPID(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat: no command name")
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 {
		return 0, errors.New("bad /proc stat: too few fields")
	}
	return strconv.Atoi(string(fields[1]))
}

// treePIDs returns root and every process descended from it (an nginx
// master and its workers), found by the parent pids in /proc.
func treePIDs(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if ppid, err := parseStatPPID(b); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, children[pids[i]]...)
	}
	return pids
}

// procs is the server a measurement reads: one process, a process and
// its descendants, or a fleet's processes, whose CPU and memory are
// summed.
type procs struct {
	root int
	tree bool
	list []int // when set, these processes (root unused), each of which must be readable
}

func (p procs) pids() []int {
	if p.list != nil {
		return p.list
	}
	if !p.tree {
		return []int{p.root}
	}
	return treePIDs(p.root)
}

// cpuTicks sums the CPU time of the processes.
func (p procs) cpuTicks() (int64, error) { return p.sum(ReadCPUTicks) }

// sum adds read over the processes. The root must be readable; a
// descendant that exited meanwhile is left out.
func (p procs) sum(read func(pid int) (int64, error)) (int64, error) {
	var sum int64
	for i, pid := range p.pids() {
		n, err := read(pid)
		if err != nil {
			if i == 0 || p.list != nil {
				return 0, err
			}
			continue
		}
		sum += n
	}
	return sum, nil
}

// status sums the resident memory and threads of the processes. Pages
// that several of them map (nginx's shared memory zone, its code) count
// once for each process that has them resident, as VmRSS counts them.
func (p procs) status() (ProcStatus, error) {
	var sum ProcStatus
	for i, pid := range p.pids() {
		st, err := ReadStatus(pid)
		if err != nil {
			if i == 0 || p.list != nil {
				return sum, err
			}
			continue
		}
		sum.RSS += st.RSS
		sum.Threads += st.Threads
	}
	return sum, nil
}

// workers counts the processes below the root: nginx's workers (and its
// cache helpers, which this configuration does not start).
func (p procs) workers() int { return len(p.pids()) - 1 }

// ReadPSS returns a process's proportional set size in bytes, from
// /proc/PID/smaps_rollup: its resident memory with each page shared with
// other processes divided among them.
func ReadPSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	return parsePSS(b)
}

// parsePSS reads the Pss line (in kB) of a smaps_rollup text.
func parsePSS(b []byte) (int64, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		val, ok := bytes.CutPrefix(line, []byte("Pss:"))
		if !ok {
			continue
		}
		num, unit, _ := bytes.Cut(bytes.TrimSpace(val), []byte{' '})
		kb, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || kb < 0 || string(bytes.TrimSpace(unit)) != "kB" {
			return 0, fmt.Errorf("bad Pss line %q", line)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no Pss in smaps_rollup")
}

// pss sums the proportional set sizes of the processes: unlike their RSS,
// a page they share counts once in all.
func (p procs) pss() (int64, error) { return p.sum(ReadPSS) }
