//go:build unix

// Package packaging tests what pushpull is shipped as: the systemd unit,
// the static binary and the .deb that scripts/package builds, and the
// Dockerfile.
package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/internal/config"
)

// unitSettings reads a systemd unit file: each key's values in order, by
// "Section.Key".
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not Key=value", path, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// The unit runs the server as systemd's notify protocol expects it, with
// a watchdog, restarts, room for connections, and no privileges.
func TestUnitFile(t *testing.T) {
	u := unitSettings(t, "pushpull.service")
	want := map[string]string{
		"Service.Type":                  "notify",
		"Service.NotifyAccess":          "main",
		"Service.Restart":               "always",
		"Service.WatchdogSec":           "30s",
		"Service.LimitNOFILE":           "1048576",
		"Service.User":                  "pushpull",
		"Service.CapabilityBoundingSet": "",
		"Service.AmbientCapabilities":   "",
		"Service.NoNewPrivileges":       "yes",
		"Service.ProtectSystem":         "strict",
		"Service.ProtectHome":           "yes",
		"Service.PrivateTmp":            "yes",
		"Service.PrivateDevices":        "yes",
		"Service.ExecReload":            "/bin/kill -HUP $MAINPID",
		"Service.ExecStart":             "/usr/bin/pushpull serve --config /etc/pushpull/config.json",
	}
	for k, v := range want {
		if got := u[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The stop timeout leaves the graceful stop its time.
	stop := strings.TrimSuffix(u["Service.TimeoutStopSec"][0], "s")
	if n, err := strconv.Atoi(stop); err != nil || float64(n) <= config.Default().ShutdownTimeout {
		t.Errorf("TimeoutStopSec = %q: want more than shutdownTimeout (%v s)", stop, config.Default().ShutdownTimeout)
	}
}

// systemd-analyze finds nothing to say about the unit (unknown keys, bad
// values), and rates its exposure low. It needs no running systemd; the
// unit is checked with ExecStart pointing at a built binary, as
// systemd-analyze wants the program to exist.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	bin := buildStatic(t, dir)
	unit, err := os.ReadFile("pushpull.service")
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.ReplaceAll(unit, []byte("/usr/bin/pushpull"), []byte(bin))
	path := filepath.Join(dir, "pushpull.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Skipf("systemd-analyze security --offline (systemd 250 and later): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for pushpull.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f (0 is the least exposed, 10 the most)", level)
	if level > 2 {
		t.Errorf("exposure %.1f, want at most 2:\n%s", level, out)
	}
}

// buildStatic builds the binary into dir as scripts/package and the
// Dockerfile do.
func buildStatic(t *testing.T, dir string) string {
	t.Helper()
	return buildStaticTo(t, filepath.Join(dir, "pushpull"))
}

func buildStaticTo(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", bin, "../cmd/pushpull")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkStatic fails unless the ELF file at path is linked statically: no
// program interpreter, no shared libraries, so that it runs alone on a
// scratch image.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter (PT_INTERP): not static", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %q (%v)", path, libs, err)
	}
}

// The Dockerfile builds that static binary and ships it alone, as a
// user other than root.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms, users []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "FROM":
			froms = append(froms, fields[1])
		case "USER":
			users = append(users, fields[1])
		}
	}
	if len(froms) == 0 || froms[len(froms)-1] != "scratch" {
		t.Errorf("final stage FROM %q, want scratch", froms)
	}
	if len(users) != 1 || strings.HasPrefix(users[0], "0") || strings.HasPrefix(users[0], "root") {
		t.Errorf("USER %q, want one user other than root", users)
	}
	if !strings.Contains(string(raw), "CGO_ENABLED=0 go build") {
		t.Error("the Dockerfile does not build with CGO_ENABLED=0")
	}
	// The config it copies in is valid and listens beyond loopback.
	c, err := config.Load("container.json")
	if err != nil {
		t.Fatalf("container.json: %v", err)
	}
	for _, s := range c.Servers {
		if s.Hostname != "" {
			t.Errorf("container.json: server %s listens on %q, want every interface", s.Name, s.Hostname)
		}
	}
	checkStatic(t, buildStatic(t, t.TempDir()))
}

// TestDeb builds the .deb with scripts/package (twice: the same bytes),
// inspects it, and installs and purges it in a throwaway root: the
// maintainer scripts work on $DPKG_ROOT (dpkg --force-script-chrootless),
// so nothing of this machine changes, which the test checks too.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nfpm and the package")
	}
	for _, tool := range []string{"dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	const version = "1.0.0~test"
	build := func(out string) string {
		t.Helper()
		return buildDeb(t, out, version)
	}
	deb := build(t.TempDir())
	if again := build(t.TempDir()); fileHash(t, deb) != fileHash(t, again) {
		t.Error("two builds of the same tree gave different .deb files")
	}

	info := dpkgDeb(t, "-I", deb)
	for _, want := range []string{"Package: pushpull", "Version: " + version, "Architecture: "} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	if conffiles := dpkgDeb(t, "-I", deb, "conffiles"); strings.TrimSpace(conffiles) != "/etc/pushpull/config.json" {
		t.Errorf("conffiles = %q, want /etc/pushpull/config.json", conffiles)
	}
	contents := dpkgDeb(t, "-c", deb)
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/pushpull\n",
		"-rw-r--r-- root/root .* ./usr/lib/systemd/system/pushpull.service\n",
		"-rw-r----- root/root .* ./etc/pushpull/config.json\n",
		"./usr/lib/sysusers.d/pushpull.conf\n",
		"./usr/share/doc/pushpull/operations.md\n",
	} {
		if !regexp.MustCompile(want).MatchString(contents) {
			t.Errorf("dpkg-deb -c has no line matching %q:\n%s", want, contents)
		}
	}
	x := t.TempDir()
	dpkgDeb(t, "-x", deb, x)
	sameFile(t, filepath.Join(x, "usr/lib/systemd/system/pushpull.service"), "pushpull.service")
	if _, err := config.Load(filepath.Join(x, "etc/pushpull/config.json")); err != nil {
		t.Errorf("the packaged config: %v", err)
	}

	if os.Geteuid() != 0 {
		t.Skip("installing into a throwaway root needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed")
	}
	installInRoot(t, deb, buildDeb(t, t.TempDir(), "1.0.1~test"))
}

// buildDeb runs scripts/package for version into out and returns the
// .deb, after checking that the binary beside it is static.
func buildDeb(t *testing.T, out, version string) string {
	t.Helper()
	cmd := exec.Command("../scripts/package")
	cmd.Env = append(os.Environ(), "OUT="+out, "VERSION="+version, "SOURCE_DATE_EPOCH=1700000000")
	got, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/package: %v\n%s%s", err, got, stderr)
	}
	lines := strings.Fields(string(got))
	if len(lines) != 2 || !strings.HasSuffix(lines[1], ".deb") {
		t.Fatalf("scripts/package printed %q; want the binary and the .deb", got)
	}
	checkStatic(t, lines[0])
	return lines[1]
}

// installInRoot installs deb into a fresh root, upgrades it to upgrade,
// and purges it.
func installInRoot(t *testing.T, deb, upgrade string) {
	hostBefore := hostState()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "var/log"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dpkg("-i", deb)
	if status := dpkg("-s", "pushpull"); !strings.Contains(status, "Status: install ok installed") {
		t.Errorf("after dpkg -i: %s", status)
	}

	// The system user, from the sysusers.d file.
	passwd := readFile(t, filepath.Join(root, "etc/passwd"))
	user := regexp.MustCompile(`(?m)^pushpull:x:(\d+):(\d+):[^:]*:/var/lib/pushpull:/usr/sbin/nologin$`).FindStringSubmatch(passwd)
	if user == nil {
		t.Fatalf("no pushpull system user in passwd:\n%s", passwd)
	}
	if uid, _ := strconv.Atoi(user[1]); uid == 0 || uid >= 1000 {
		t.Errorf("pushpull has uid %d, want a system uid", uid)
	}
	// The key, made up at install, readable by root alone.
	env := filepath.Join(root, "etc/default/pushpull")
	if !regexp.MustCompile(`(?m)^PUSHPULL_KEY=[0-9a-f]{64}$`).MatchString(readFile(t, env)) {
		t.Errorf("%s has no generated key:\n%s", env, readFile(t, env))
	}
	if st, err := os.Stat(env); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600", env, st.Mode(), err)
	}
	// The config, readable by the service's group.
	conf := filepath.Join(root, "etc/pushpull/config.json")
	st, err := os.Stat(conf)
	if err != nil {
		t.Fatal(err)
	}
	if gid := statGID(st); st.Mode().Perm() != 0o640 || strconv.Itoa(gid) != user[2] {
		t.Errorf("%s: mode %v gid %d, want 0640 and pushpull's gid %s", conf, st.Mode().Perm(), gid, user[2])
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/pushpull"), "version").Output(); err != nil || !strings.Contains(string(out), "1.0.0~test") {
		t.Errorf("the installed binary: %q %v", out, err)
	}

	// An upgrade keeps the key and the admin's changes to the config.
	key := readFile(t, env)
	edited := strings.Replace(readFile(t, conf), `"level": "info"`, `"level": "warn"`, 1)
	if err := os.WriteFile(conf, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	dpkg("-i", upgrade)
	if status := dpkg("-s", "pushpull"); !strings.Contains(status, "Version: 1.0.1~test") {
		t.Errorf("after the upgrade: %s", status)
	}
	if readFile(t, env) != key {
		t.Error("the upgrade changed the key")
	}
	if readFile(t, conf) != edited {
		t.Error("the upgrade changed the edited config")
	}

	dpkg("--purge", "pushpull")
	for _, gone := range []string{"usr/bin/pushpull", "usr/lib/systemd/system/pushpull.service", "etc/pushpull/config.json", "etc/default/pushpull"} {
		if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the purge (%v)", gone, err)
		}
	}
	if after := hostState(); after != hostBefore {
		t.Errorf("this machine changed: %q before, %q after", hostBefore, after)
	}
}

// hostState is what a package install that missed $DPKG_ROOT would change
// on this machine.
func hostState() string {
	var s []string
	for _, p := range []string{"/etc/default/pushpull", "/etc/pushpull", "/usr/bin/pushpull", "/usr/lib/systemd/system/pushpull.service"} {
		_, err := os.Stat(p)
		s = append(s, p+"="+strconv.FormatBool(err == nil))
	}
	out, _ := exec.Command("getent", "passwd", "pushpull").Output()
	s = append(s, "user="+strings.TrimSpace(string(out)))
	slices.Sort(s)
	return strings.Join(s, " ")
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	if readFile(t, got) != readFile(t, want) {
		t.Errorf("%s differs from %s", got, want)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	return sha256.Sum256([]byte(readFile(t, path)))
}
