package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkconfig prints the effective configuration without its secrets,
// and fails, saying why, on files that cannot run together.
func TestCheckconfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file("push-server-sub-8010.json", `{"servers": [{"name": "sub-8010", "port": 8010, "hostname": "127.0.0.1", "routes": {"sub": "/bitrix/subws/"}}],
		"processUniqueId": "sub-8010", "storage": {"type": "redis", "socket": "/tmp/redis.sock", "messageTLL": 86400}, "security": {"key": "the-secret-key"}}`)
	file("push-server-pub-9010.json", `{"servers": [{"name": "pub-9010", "port": 9010, "hostname": "127.0.0.1", "routes": {"pub": "/bitrix/pub/"}}],
		"publishMode": true, "storage": {"type": "redis", "socket": "/tmp/redis.sock"}, "security": {"key": "the-secret-key"}}`)
	file("push-server-sub-__PORT__.json", `{"servers": [{"port": __PORT__}]}`)
	var out, errOut bytes.Buffer
	if err := checkconfig([]string{"--config-dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"processes: 1", "sub-8010", "127.0.0.1:9010", "pub /bitrix/pub/", "redis /tmp/redis.sock",
		"14 characters, sha256", "storage.messageTLL: read as storage.messageTTL", "__PORT__.json: not read", "\nOK\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "the-secret-key") {
		t.Errorf("the key printed:\n%s", text)
	}
	out.Reset()
	if err := checkconfig([]string{"--config-dir", dir, "--show-secrets"}, &out, &errOut); err != nil || !strings.Contains(out.String(), `"the-secret-key"`) {
		t.Errorf("--show-secrets: %v\n%s", err, out.String())
	}

	file("push-server-sub-8011.json", `{"servers": [{"name": "sub-8011", "port": 9010, "hostname": "127.0.0.1", "routes": {"sub": "/bitrix/subws/"}}],
		"storage": {"type": "redis", "socket": "/tmp/redis.sock"}, "security": {"key": "another-key"}}`)
	for _, args := range [][]string{{"--config-dir", dir}, {"--config-dir", dir, "--per-file"}} {
		out.Reset()
		err := checkconfig(args, &out, &errOut)
		if err == nil {
			t.Fatalf("%v: accepted\n%s", args, out.String())
		}
		for _, want := range []string{"errors:", "port 9010", "push-server-sub-8011.json"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	// Per file, the keys are compared too.
	file("push-server-sub-8011.json", `{"servers": [{"name": "sub-8011", "port": 8011, "hostname": "127.0.0.1", "routes": {"sub": "/bitrix/subws/"}}],
		"storage": {"type": "redis", "socket": "/tmp/redis.sock"}, "security": {"key": "another-key"}}`)
	out.Reset()
	if err := checkconfig([]string{"--config-dir", dir, "--per-file"}, &out, &errOut); err == nil || !strings.Contains(out.String(), "different keys") {
		t.Errorf("different keys per file: %v\n%s", err, out.String())
	}
}
