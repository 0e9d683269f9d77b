package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The appliance's sysconfig as it ships (with the SECURITY_KEY line its
// init script appends), and the templates its init script writes the
// per-process files from.
const (
	applianceSysconfig = "testdata/appliance/sysconfig-push-server-multi"
	applianceKey       = "Zx81appliancekey0123456789"
)

func TestParseSysconfigAppliance(t *testing.T) {
	vars, err := LoadSysconfig(applianceSysconfig)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"BASE_SUB": "801", "BASE_PUB": "901", "ID_SUB": "5", "ID_PUB": "1",
		"IP_LIST": `"127.0.0.1", "10.0.0.0/24"`, "SUBWSPATH": "/bitrix/subws/",
		"SECURITY_KEY": applianceKey, "TMPL_SUB": "push-server-sub-__PORT__.json",
	} {
		if vars[k] != want {
			t.Errorf("%s = %q, want %q", k, vars[k], want)
		}
	}
}

// The file is read as a shell that sources it would read it, and never
// run: anything but assignments is refused with its line.
func TestParseSysconfigShell(t *testing.T) {
	vars, err := ParseSysconfig([]byte(`# comment
A=plain   # trailing comment
B='single $A "quoted"'
C="double $A ${A}x"
export D=exported
E=one\ two
F=
A=again
G=$A$UNSET
H="multi
line"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "again", "B": `single $A "quoted"`, "C": "double plain plainx", "D": "exported",
		"E": "one two", "F": "", "G": "again", "H": "multi\nline"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	for _, bad := range []string{
		"A=1\nrm -rf /\n", "A=$(id)\n", "if true; then A=1; fi\n", "A=1 cmd\n", "A=(1 2)\n",
		"A+=1\n", "A=1 > /tmp/x\n", "local A=1\n", "A=`id`\n", "A='unterminated\n",
	} {
		if _, err := ParseSysconfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "line") && !strings.Contains(err.Error(), ":") {
			t.Errorf("%q: error %q names no line", bad, err)
		}
	}
}

// One process serves every port of the appliance's sysconfig, with the
// templates' routes, its key and its Redis socket.
func TestFromSysconfig(t *testing.T) {
	c, err := Parse([]string{"--sysconfig", applianceSysconfig}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var subs, pubs []int
	for _, s := range c.Servers {
		if s.Hostname != "127.0.0.1" || s.Backlog != 1024 {
			t.Errorf("%s on %q backlog %d", s.Name, s.Hostname, s.Backlog)
		}
		switch {
		case slices.Equal(s.Routes.Sub, []string{"/bitrix/subws/", "/bitrix/sub/"}) && s.Name == "sub-"+strconv.Itoa(s.Port):
			subs = append(subs, s.Port)
		case slices.Equal(s.Routes.Pub, []string{"/bitrix/pub/"}) && slices.Equal(s.Routes.Rest, []string{"/bitrix/rest/"}) &&
			slices.Equal(s.Routes.Stat, []string{"/server-stat/"}) && s.Name == "pub-"+strconv.Itoa(s.Port):
			pubs = append(pubs, s.Port)
		default:
			t.Errorf("unexpected server %+v", s)
		}
	}
	if !slices.Equal(subs, []int{8010, 8011, 8012, 8013, 8014, 8015}) || !slices.Equal(pubs, []int{9010, 9011}) {
		t.Errorf("sub ports %v, pub ports %v", subs, pubs)
	}
	if c.Security.Key != applianceKey || c.Storage.Type != "redis" || c.Storage.Socket != "/tmp/redis.sock" || c.PublishMode {
		t.Errorf("key %q storage %s %s publishMode %v", c.Security.Key, c.Storage.Type, c.Storage.Socket, c.PublishMode)
	}

	// The init script's defaults for what the file leaves out.
	c2, _, err := FromSysconfig(map[string]string{"SECURITY_KEY": "k", "REDIS_SOCK": "/run/r.sock", "WS_HOST": "0.0.0.0", "BASE_SUB": "701"})
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, s := range c2.Servers {
		ports = append(ports, s.Port)
	}
	if !slices.Equal(ports, []int{7010, 7011, 7012, 9010, 9011}) || c2.Storage.Socket != "/run/r.sock" || c2.Servers[0].Hostname != "0.0.0.0" {
		t.Errorf("ports %v socket %s host %s", ports, c2.Storage.Socket, c2.Servers[0].Hostname)
	}
	for _, bad := range []map[string]string{
		{},                                   // no key: the init script would make one up
		{"SECURITY_KEY": "k", "ID_SUB": "x"}, // not a number
		{"SECURITY_KEY": "k", "BASE_SUB": "99999"},
	} {
		if _, _, err := FromSysconfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// renderAppliance writes the appliance's per-process config files into a
// folder, as "push-server-multi configs" does from the sysconfig and the
// templates (which stay in the folder, as on the appliance), and returns
// the folder. edit, when not nil, changes a file's text.
func renderAppliance(t *testing.T, vars map[string]string, edit func(name, text string) string) string {
	t.Helper()
	dir := t.TempDir()
	sub, pub, err := SysconfigPorts(vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range []string{"push-server-sub-__PORT__.json", "push-server-pub-__PORT__.json"} {
		text, err := os.ReadFile(filepath.Join("testdata", "appliance", tmpl))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, tmpl), string(text))
		ports := sub
		if strings.Contains(tmpl, "-pub-") {
			ports = pub
		}
		for _, p := range ports {
			r := strings.NewReplacer("__PORT__", strconv.Itoa(p), "__SECURITY_KEY__", vars["SECURITY_KEY"],
				"__WS_HOST__", orDefault(vars["WS_HOST"], "127.0.0.1"), "__PUBPATH__", vars["PUBPATH"],
				"__SUBPATH__", vars["SUBPATH"], "__RESTPATH__", vars["RESTPATH"], "__SUBWSPATH__", vars["SUBWSPATH"],
				"__REDIS_SOCK__", orDefault(vars["REDIS_SOCK"], "/tmp/redis.sock"), "__IP_LIST__", vars["IP_LIST"])
			name := strings.ReplaceAll(tmpl, "__PORT__", strconv.Itoa(p))
			out := r.Replace(string(text))
			if edit != nil {
				out = edit(name, out)
			}
			writeFile(t, filepath.Join(dir, name), out)
		}
	}
	return dir
}

func applianceVars(t *testing.T) map[string]string {
	t.Helper()
	vars, err := LoadSysconfig(applianceSysconfig)
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

// The appliance's folder, read whole: one process serving all eight
// ports, the templates left alone, the TLL spellings noted.
func TestConfigDirMerged(t *testing.T) {
	// Keys pushpull does not read may differ: debug.ip, as IP_LIST
	// changed between two runs of the init script.
	dir := renderAppliance(t, applianceVars(t), func(name, text string) string {
		if name == "push-server-sub-8012.json" {
			return strings.Replace(text, `"ip": [`, `"ip": ["192.0.2.1", `, 1)
		}
		return text
	})
	s, err := ParseServe([]string{"--config-dir", dir, "--sysconfig", applianceSysconfig}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Processes) != 1 || s.PerFile {
		t.Fatalf("%d processes", len(s.Processes))
	}
	c := s.Processes[0].Config
	var ports []int
	for _, sv := range c.Servers {
		ports = append(ports, sv.Port)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []int{8010, 8011, 8012, 8013, 8014, 8015, 9010, 9011}) {
		t.Errorf("ports %v", ports)
	}
	if c.PublishMode || c.Security.Key != applianceKey || c.Storage.Socket != "/tmp/redis.sock" || c.Limits.MaxPayload != 1048576 {
		t.Errorf("publishMode %v key %q socket %q maxPayload %d", c.PublishMode, c.Security.Key, c.Storage.Socket, c.Limits.MaxPayload)
	}
	if c.ProcessUniqueID != "sub-8010" {
		t.Errorf("processUniqueId %q, want the first subscribe file's", c.ProcessUniqueID)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"push-server-sub-__PORT__.json: not read", "storage.layout is not set", "--redis-layout 2.0", "storage.messageTLL: read as storage.messageTTL (86400 s); the original push server does not read this spelling and keeps its default, which is the same (86400 s): nothing changes",
		"push-server-pub-9011.json: limits.maxRequestsPerSecond: not a key pushpull knows"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// One process per file, as the appliance runs them.
func TestConfigDirPerFile(t *testing.T) {
	dir := renderAppliance(t, applianceVars(t), nil)
	s, err := ParseServe([]string{"--config-dir", dir, "--per-file", "--log-level", "debug"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !s.PerFile || len(s.Processes) != 8 {
		t.Fatalf("per-file %v, %d processes", s.PerFile, len(s.Processes))
	}
	for _, p := range s.Processes {
		c := p.Config
		pub := strings.Contains(p.Files[0], "-pub-")
		if len(c.Servers) != 1 || c.PublishMode != pub || c.ProcessUniqueID != c.Servers[0].Name || c.Log.Level != "debug" {
			t.Errorf("%s: %d servers, publishMode %v, id %q, log %s", p.Files[0], len(c.Servers), c.PublishMode, c.ProcessUniqueID, c.Log.Level)
		}
	}
	if !slices.Equal(s.ChildArgs, []string{"--log-level=debug"}) {
		t.Errorf("child args %q", s.ChildArgs)
	}
	if _, err := ParseServe([]string{"--config-dir", dir, "--per-file", "--process-id", "x"}, env(nil), io.Discard); err == nil {
		t.Error("one --process-id for every process accepted")
	}
}

// Files that cannot run together are refused, saying plainly why.
func TestConfigDirDisagreements(t *testing.T) {
	vars := applianceVars(t)
	for _, tc := range []struct {
		name  string
		edit  func(name, text string) string
		args  []string
		wants []string
	}{
		{"different keys", func(name, text string) string {
			if name == "push-server-sub-8013.json" {
				return strings.ReplaceAll(text, applianceKey, "another-key")
			}
			return text
		}, nil, []string{"security.key", "push-server-sub-8013.json", "different keys", "messages silently stop"}},
		{"different keys, per file", func(name, text string) string {
			if name == "push-server-pub-9011.json" {
				return strings.ReplaceAll(text, applianceKey, "another-key")
			}
			return text
		}, []string{"--per-file"}, []string{"security.key", "push-server-pub-9011.json", "different keys"}},
		{"a port twice", func(name, text string) string {
			if name == "push-server-sub-8012.json" {
				return strings.Replace(text, `"port": 8012`, `"port": 8011`, 1)
			}
			return text
		}, []string{"--per-file"}, []string{"port 8011", "push-server-sub-8011.json", "push-server-sub-8012.json"}},
		{"other settings differ", func(name, text string) string {
			if name == "push-server-sub-8010.json" {
				return strings.Replace(text, `"onlineDelta": 10`, `"onlineDelta": 20`, 1)
			}
			return text
		}, nil, []string{"storage.onlineDelta", "push-server-sub-8010.json gives 20", "--per-file"}},
		{"a broken file", func(name, text string) string {
			if name == "push-server-sub-8014.json" {
				return strings.Replace(text, `"port": 8014`, `"port": "eighty"`, 1)
			}
			return text
		}, nil, []string{"push-server-sub-8014.json: servers[0].port"}},
		{"sysconfig's key differs", func(name, text string) string {
			return strings.ReplaceAll(text, applianceKey, "rotten-key")
		}, []string{"--sysconfig", applianceSysconfig}, []string{"SECURITY_KEY", "rotten-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := renderAppliance(t, vars, tc.edit)
			s, err := ParseServe(append([]string{"--config-dir", dir}, tc.args...), env(nil), io.Discard)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			for _, want := range tc.wants {
				if want == "rotten-key" {
					if strings.Contains(err.Error(), want) {
						t.Errorf("the key itself printed: %v", err)
					}
					continue
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), applianceKey) || strings.Contains(err.Error(), "another-key") {
				t.Errorf("a key printed: %v", err)
			}
		})
	}
}

// Misspelt keys are noted with the key they likely mean.
func TestMisspeltKeyNoted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "push.json")
	writeFile(t, path, `{"storage": {"mesageTTL": 60, "messageTLL": 70}, "secirity": {"key": "k"}, "limits": {"maxPayLoad": 5}}`)
	s, err := ParseServe([]string{"--config", path}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{
		"storage.mesageTTL: not a key pushpull knows, ignored; did you mean storage.messageTTL?",
		"secirity: not a key pushpull knows", "did you mean security?", "did you mean limits.maxPayload?",
		"storage.messageTLL: read as storage.messageTTL (70 s); the original push server does not read this spelling: it kept its default (86400 s), pushpull uses the file's value",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if c := s.Processes[0].Config; c.Storage.MessageTTL != 70 {
		t.Errorf("messageTTL %v", c.Storage.MessageTTL)
	}
}

// Several --config files are one process, and a file leaving a key out
// takes the others'.
func TestConfigFilesMerged(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	writeFile(t, a, `{"servers": [{"port": 0, "routes": {"sub": "/bitrix/sub/"}}], "security": {"key": "k"}, "storage": {"type": "redis", "messageTTL": "600"}}`)
	writeFile(t, b, `{"servers": {"port": 0, "routes": {"pub": "/bitrix/pub/"}}, "storage": {"type": "Redis", "messageTTL": 600, "channelTTL": 700}, "publishMode": true}`)
	c, err := Parse([]string{"--config", a, "--config", b}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 2 || c.Security.Key != "k" || c.Storage.MessageTTL != 600 || c.Storage.ChannelTTL != 700 || c.PublishMode {
		t.Errorf("servers %d key %q storage %+v publishMode %v", len(c.Servers), c.Security.Key, c.Storage, c.PublishMode)
	}
	if _, err := Parse([]string{"--config", a, "--per-file"}, env(nil), io.Discard); err == nil {
		t.Error("Parse of a per-file setup accepted")
	}
	if _, err := ParseServe([]string{"--per-file"}, env(nil), io.Discard); err == nil {
		t.Error("--per-file without files accepted")
	}
	if _, err := ParseServe([]string{"--config-dir", dir}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "no push-server-sub-PORT.json") {
		t.Errorf("a folder without appliance files: %v", err)
	}
	var errHelp error = flag.ErrHelp
	if _, err := ParseServe([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, errHelp) {
		t.Errorf("-h: %v", err)
	}
}

// The official image's variables configure the container's one server as
// its entrypoint's templates do.
func TestFromDockerEnv(t *testing.T) {
	base := map[string]string{"PUSH_SECURITY_KEY": "dk", "REDIS_HOST": "redis", "REDIS_PORT": "6380"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Parse(nil, env(with("PUSH_SUB_MODE", "sub", "PUSH_SUB_PORT", "8010")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Servers[0]
	if len(c.Servers) != 1 || s.Port != 8010 || s.Hostname != "0.0.0.0" || !slices.Equal(s.Routes.Sub, []string{"/bitrix/subws/", "/bitrix/sub/"}) ||
		c.PublishMode || c.ProcessUniqueID != "sub-8010" || c.Security.Key != "dk" ||
		c.Storage.Type != "redis" || c.Storage.Host != "redis" || c.Storage.Port != 6380 || c.Storage.Layout != "2.0" {
		t.Errorf("sub: %+v", c)
	}
	c, err = Parse(nil, env(with("PUSH_PUB_MODE", "pub", "PUSH_PUB_PORT", "9010", "PUB_URI", "/p/", "RUN_DIR", "/tmp/push-server")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s = c.Servers[0]
	if s.Port != 9010 || !slices.Equal(s.Routes.Pub, []string{"/p/"}) || !slices.Equal(s.Routes.Rest, []string{"/bitrix/rest/"}) ||
		!slices.Equal(s.Routes.Stat, []string{"/server-stat/"}) || !c.PublishMode || c.ProcessUniqueID != "pub-9010" {
		t.Errorf("pub: %+v", c)
	}
	// PUSHPULL_* variables still override.
	c, err = Parse(nil, env(with("PUSH_SUB_MODE", "sub", "PUSHPULL_LOG_LEVEL", "debug", "SUB_URI", "/s/")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" || !slices.Equal(c.Servers[0].Routes.Sub, []string{"/s/"}) {
		t.Errorf("log %s routes %v", c.Log.Level, c.Servers[0].Routes.Sub)
	}
	s2, err := ParseServe(nil, env(with("PUSH_SUB_MODE", "sub", "PUSH_SECURITY_KEY", dockerKeyPlaceholder)), io.Discard)
	if err != nil || !strings.Contains(strings.Join(s2.Notes, "\n"), "placeholder") {
		t.Errorf("placeholder key: %v, notes %q", err, s2.Notes)
	}
	for _, bad := range []map[string]string{
		with("PUSH_SUB_MODE", "subscribe"),
		with("PUSH_PUB_MODE", "publish"),
		with("PUSH_SUB_MODE", "sub", "PUSH_SUB_PORT", "80x"),
		with("PUSH_SUB_MODE", "sub", "PUSH_SECURITY_KEY", ""),
	} {
		if _, err := Parse(nil, env(bad), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// A config file the command line names wins over the image's
	// variables; one PUSHPULL_CONFIG names, as the pushpull image's
	// container.json, lies under them.
	path := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, path, `{"security": {"key": "file"}}`)
	if c, err := Parse([]string{"--config", path}, env(with("PUSH_SUB_MODE", "sub")), io.Discard); err != nil || c.Security.Key != "file" {
		t.Errorf("file under Docker variables: %v", err)
	}
	c, err = Parse(nil, env(with("PUSH_PUB_MODE", "pub", "PUSHPULL_CONFIG", "../../packaging/container.json")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 1 || c.Servers[0].Port != 9010 || !c.PublishMode || c.Security.Key != "dk" ||
		c.Storage.Type != "redis" || c.Storage.Host != "redis" || c.Security.KeyGracePeriod != 3600 {
		t.Errorf("Docker variables over the image's config: %+v", c)
	}
	if _, err := ParseServe([]string{"--config", path, "--per-file"}, env(with("PUSH_SUB_MODE", "sub")), io.Discard); err != nil {
		t.Errorf("--per-file with Docker variables the command line overrides: %v", err)
	}
}

func TestTrustedProxiesOverride(t *testing.T) {
	c, err := Parse([]string{"--trusted-proxies", "127.0.0.1, 10.0.0.0/8,"}, env(nil), io.Discard)
	if err != nil || !slices.Equal(c.Security.TrustedProxies, []string{"127.0.0.1", "10.0.0.0/8"}) {
		t.Errorf("--trusted-proxies: %v %v", err, c)
	}
	c, err = Parse(nil, env(map[string]string{"PUSHPULL_TRUSTED_PROXIES": "::1"}), io.Discard)
	if err != nil || !slices.Equal(c.Security.TrustedProxies, []string{"::1"}) {
		t.Errorf("PUSHPULL_TRUSTED_PROXIES: %v %v", err, c)
	}
	if _, err := Parse([]string{"--trusted-proxies", "10.0.0.0/40"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "security.trustedProxies[0]") {
		t.Errorf("a bad network: %v", err)
	}
}

// A PUSHPULL_KEY that replaces the installation's key is said plainly.
func TestKeyOverrideNoted(t *testing.T) {
	s, err := ParseServe([]string{"--sysconfig", applianceSysconfig}, env(map[string]string{"PUSHPULL_KEY": "generated"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(s.Notes, "\n")
	if !strings.Contains(notes, "security.key: PUSHPULL_KEY (9 characters") || !strings.Contains(notes, "silently stop") || strings.Contains(notes, applianceKey) {
		t.Errorf("notes: %s", notes)
	}
	s, _ = ParseServe([]string{"--sysconfig", applianceSysconfig}, env(map[string]string{"PUSHPULL_KEY": applianceKey}), io.Discard)
	if strings.Contains(strings.Join(s.Notes, "\n"), "security.key:") {
		t.Errorf("the same key noted: %q", s.Notes)
	}
}
