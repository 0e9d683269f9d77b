//go:build linux

package packaging

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/spawn"
	"github.com/pushpull/pushpull/internal/testutil"
)

// imageFiles maps each file the Dockerfile copies into its final stage to
// where the test takes it from.
var imageFiles = map[string]string{
	"/etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt", // the builder's, Debian's
	"/pushpull":                          "",                                   // the static build
	"/etc/pushpull/config.json":          "container.json",
}

// TestImageRuns runs the container image without Docker: a root holding
// exactly the files the Dockerfile copies onto scratch, mounted read-only,
// entered with chroot as 65534:65534, with no_new_privs and no
// capability, and the image's environment and command. The server must
// start and serve from those files alone, as docker run --read-only
// --cap-drop ALL --security-opt no-new-privileges runs it.
func TestImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot and a private mount need root")
	}
	for _, tool := range []string{"unshare", "setpriv", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	final := df[strings.LastIndex(df, "\nFROM scratch"):]
	var copied []string
	for _, m := range regexp.MustCompile(`(?m)^COPY .* (\S+)$`).FindAllStringSubmatch(final, -1) {
		copied = append(copied, m[1])
	}
	want := make([]string, 0, len(imageFiles))
	for dst := range imageFiles {
		want = append(want, dst)
	}
	slices.Sort(copied)
	slices.Sort(want)
	if !slices.Equal(copied, want) {
		t.Fatalf("the final stage copies %q; the test builds %q", copied, want)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindStringSubmatch(final)
	env := regexp.MustCompile(`(?m)^ENV (\S+)=(\S+)$`).FindAllStringSubmatch(final, -1)
	if user == nil || len(env) != 1 {
		t.Fatalf("USER %q, ENV %q: want one of each", user, env)
	}

	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range imageFiles {
		path := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if src == "" {
			checkStatic(t, buildStaticTo(t, path))
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Free ports rather than the image's 8010 and 9010, which may be in
	// use here: variables override the image's config, as docker run -e does.
	chroot, _ := exec.LookPath("chroot")
	script := `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec setpriv --no-new-privs "$3" --userspec="$2" "$1" /pushpull serve`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", root, user[1], chroot)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), // for sh; pushpull has no use for it
		env[0][1] + "=" + env[0][2], "PUSHPULL_SUB_LISTEN=127.0.0.1:0", "PUSHPULL_PUB_LISTEN=127.0.0.1:0"}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	proc, ls, err := spawn.Serve(ctx, 2, "pushpull", cmd)
	if err != nil {
		if strings.Contains(err.Error(), "mount") || strings.Contains(err.Error(), "unshare") {
			t.Skipf("no private read-only mount here: %v", err)
		}
		t.Fatal(err)
	}
	defer func() {
		if err := proc.Stop(20 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("output:\n%s", proc.Out.String())
		}
	}()

	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := http.Get("http://" + ls[1].Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(proc.Pid()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^Uid:\s+65534\s+65534\s+65534\s+65534$`,
		`(?m)^Gid:\s+65534\s+65534\s+65534\s+65534$`,
		`(?m)^CapInh:\s+0+$`, `(?m)^CapPrm:\s+0+$`, `(?m)^CapEff:\s+0+$`, `(?m)^CapAmb:\s+0+$`,
		`(?m)^NoNewPrivs:\s+1$`,
	} {
		if !regexp.MustCompile(want).Match(status) {
			t.Errorf("/proc/<pid>/status has no line %s:\n%s", want, status)
		}
	}
}
