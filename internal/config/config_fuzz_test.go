package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// FuzzDecode feeds Decode arbitrary files. It must never panic; every
// error, of decoding or of validation, must name the line and column or
// the JSON path of a key at fault; and a file it accepts must print
// (encoding/json) and read back as the same configuration.
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
		`{"security": {"key": 5, "algo": "", "clients": {"a": 1, "b": {}}}, "limits": {"maxPayload": "-1"}}`,
		`{"servers": [null, {"ssl": true, "port": []}], "storage": {"onlineTLL": "x", "addrs": [1]}, "log": 5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decode(data)
		if err != nil {
			located(t, err)
			return
		}
		for _, s := range c.Servers {
			_ = s.Addr()
		}
		_ = c.Storage.RedisAddrs()
		// validate without reading files: the fuzzer invents paths.
		if err := c.validate(false); err != nil {
			located(t, err)
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
		c.Ignored, c.Aliased = nil, nil
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed\n%#v\nto\n%#v\nvia %s", c, back, out)
		}
		if err := back.validate(false); err != nil {
			t.Fatalf("printed config does not validate: %v", err)
		}
	})
}

// located fails t unless each of err's errors starts with a line and
// column or with the JSON path of a key.
func located(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	at := regexp.MustCompile(`^line [1-9][0-9]*, column [1-9][0-9]*: `)
	// The errors about the file as a whole have no place.
	whole := regexp.MustCompile(`^(no JSON object: the file is empty|want a JSON object at the top level, got .*)$`)
	for _, e := range errs {
		if msg := e.Error(); !at.MatchString(msg) && !namesKey(msg) && !whole.MatchString(msg) {
			t.Fatalf("error names no place: %q", msg)
		}
	}
}

// FuzzSysconfig feeds ParseSysconfig arbitrary files. It must never panic
// nor run anything; what it accepts it reads the same way twice, and
// FromSysconfig either refuses the variables or builds a configuration
// that has a server on every port it names.
func FuzzSysconfig(f *testing.F) {
	data, err := os.ReadFile(applianceSysconfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, s := range []string{
		"", "A=1\n", "export SECURITY_KEY='k' BASE_SUB=70\nID_SUB=9\n", `A="$B${C:-d}\"x"` + "\n",
		"A=$(id)\n", "if true; then A=1; fi\n", "A=${A/x/y} B=$((1+2)) C=~\n", "A='\nB=\"\\\n",
		"SECURITY_KEY=k BASE_PUB=6553 ID_PUB=6\n", "declare -A x\nA[1]=2\n", "A=\\$HOME\\ x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseSysconfig(data)
		if err != nil {
			return
		}
		again, err := ParseSysconfig(data)
		if err != nil || !reflect.DeepEqual(vars, again) {
			t.Fatalf("read twice: %v, %v then %v", err, vars, again)
		}
		c, _, err := FromSysconfig(vars)
		if err != nil {
			return
		}
		sub, pub, err := SysconfigPorts(vars)
		if err != nil || len(c.Servers) != len(sub)+len(pub) {
			t.Fatalf("%d servers for ports %v %v (%v)", len(c.Servers), sub, pub, err)
		}
		_ = c.validate(false)
	})
}
