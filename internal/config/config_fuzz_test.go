package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecode feeds Decode arbitrary files. It must never panic, and a file
// it accepts must print (encoding/json) and read back as the same
// configuration.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{}`,
		`{"servers": {"port": "1", "routes": {"sub": "/s/"}, "ssl": false}}`,
		`{"storage": {"messageTLL": "1h", "port": 0, "host": ""}, "publishMode": "yes"}`,
		`{"servers": [{"port": 1e3, "hostname": "::", "routes": {"pub": ["/p/", "/q/"]}}], "log": {"level": "WARN"}}`,
		`{"security": {"key": 5, "algo": ""}, "limits": {"maxPayload": "-1"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decode(data)
		if err != nil {
			return
		}
		for _, s := range c.Servers {
			_ = s.Addr()
		}
		_ = c.Storage.RedisAddrs()
		// validate without reading files: the fuzzer invents paths.
		if c.validate(false) != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := decode(out)
		if err != nil {
			t.Fatalf("printed config does not decode: %v\n%s", err, out)
		}
		c.Ignored = nil
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed\n%#v\nto\n%#v\nvia %s", c, back, out)
		}
		if err := back.validate(false); err != nil {
			t.Fatalf("printed config does not validate: %v", err)
		}
	})
}
