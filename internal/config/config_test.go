package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default does not validate: %v", err)
	}
	if len(c.Servers) != 2 {
		t.Fatalf("servers = %d, want 2", len(c.Servers))
	}
	sub, pub := c.Servers[0], c.Servers[1]
	if sub.Name != "sub" || sub.Addr() != "127.0.0.1:8010" ||
		!slices.Equal(sub.Routes.Sub, []string{"/bitrix/sub/", "/bitrix/subws/"}) ||
		!slices.Equal(sub.Routes.Demo, []string{"/demo/"}) {
		t.Errorf("sub server = %+v", sub)
	}
	want := Routes{
		Pub: []string{"/bitrix/pub/"}, API: []string{"/bitrix/api/"}, Stat: []string{"/server-stat/"},
		Health: []string{"/healthz"}, Ready: []string{"/readyz"}, Metrics: []string{"/metrics"},
		Backend: []string{"/pushpull/"},
	}
	if pub.Name != "pub" || pub.Addr() != "127.0.0.1:9010" || !reflect.DeepEqual(pub.Routes, want) {
		t.Errorf("pub server = %+v", pub)
	}
	if !reflect.DeepEqual(c.Security, Security{Algo: "sha1", KeyGracePeriod: 3600}) {
		t.Errorf("security = %+v", c.Security)
	}
	s := c.Storage
	if s.Type != "memory" || s.MessageTTL != 86400 || s.ChannelTTL != 86400 || s.OnlineTTL != 120 ||
		s.OnlineDelta != 10 || s.Host != "127.0.0.1" || s.Port != 6379 {
		t.Errorf("storage = %+v", s)
	}
	if c.Polling.Timeout != 40 || c.WebSocket != (WebSocket{30, 1 << 20, 1 << 20}) ||
		c.Limits != (Limits{MaxPayload: 1000000, ClientMessages: 20, ClientBurst: 100, RequestTimeout: 30,
			MaxConnPerChannel: 100, MaxMessagesPerRequest: 100, MaxChannelsPerRequest: 100}) ||
		c.ShutdownTimeout != 10 || c.Log != (Log{"info", "text"}) {
		t.Errorf("tuning = %+v %+v %+v %v %+v", c.Polling, c.WebSocket, c.Limits, c.ShutdownTimeout, c.Log)
	}
	if c.ProcessUniqueID != "" || c.PublishMode || c.ClusterMode {
		t.Errorf("modes = %q %v %v", c.ProcessUniqueID, c.PublishMode, c.ClusterMode)
	}
	// Each call gives a fresh value: callers may modify it.
	c.Servers[0].Routes.Sub[0] = "/changed/"
	if Default().Servers[0].Routes.Sub[0] != "/bitrix/sub/" {
		t.Error("Default shares its slices between calls")
	}
}

func TestUniqueID(t *testing.T) {
	c := Default()
	id := c.UniqueID()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("generated id %q is not 32 hex digits", id)
	}
	if c.UniqueID() != id || c.ProcessUniqueID != id {
		t.Error("UniqueID is not stable")
	}
	if Default().UniqueID() == id {
		t.Error("two processes got the same id")
	}
	c = &Config{ProcessUniqueID: "sub-8010"}
	if c.UniqueID() != "sub-8010" {
		t.Errorf("configured id replaced: %q", c.UniqueID())
	}
}

func TestLoadApplianceV3(t *testing.T) {
	c, err := Load("testdata/appliance-v3.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 8 {
		t.Fatalf("servers = %d, want 8", len(c.Servers))
	}
	for i, port := range []int{8010, 8011, 8012, 8013, 8014, 8015} {
		s := c.Servers[i]
		if s.Port != port || s.Hostname != "127.0.0.1" || s.Backlog != 1024 || s.SSL != nil ||
			!reflect.DeepEqual(s.Routes, Routes{Sub: []string{"/bitrix/subws/"}}) {
			t.Errorf("servers[%d] = %+v", i, s)
		}
	}
	for i, port := range []int{9010, 9011} {
		s := c.Servers[6+i]
		want := Routes{Pub: []string{"/bitrix/pub/"}, Stat: []string{"/server-stat/"}}
		if s.Port != port || !reflect.DeepEqual(s.Routes, want) {
			t.Errorf("servers[%d] = %+v", 6+i, s)
		}
	}
	if c.Storage.Type != "redis" || c.Storage.Host != "127.0.0.1" || c.Storage.Port != 6379 ||
		!slices.Equal(c.Storage.RedisAddrs(), []string{"127.0.0.1:6379"}) {
		t.Errorf("storage = %+v", c.Storage)
	}
	if len(c.Security.Key) != 128 || c.Security.Algo != "sha1" {
		t.Errorf("security = %+v", c.Security)
	}
	if !c.ClusterMode || c.PublishMode || c.ProcessUniqueID != "push-appliance-1" {
		t.Errorf("modes: cluster %v publish %v id %q", c.ClusterMode, c.PublishMode, c.ProcessUniqueID)
	}
	// Keys of the original that pushpull does not use are not "unknown".
	if len(c.Ignored) != 0 {
		t.Errorf("ignored = %q", c.Ignored)
	}
	// What the file does not give keeps its default.
	if c.Polling.Timeout != 40 || c.Limits.MaxPayload != 1000000 || c.Log.Level != "info" {
		t.Errorf("defaults lost: %+v %+v %+v", c.Polling, c.Limits, c.Log)
	}
}

func TestLoadMemorySample(t *testing.T) {
	c, err := Load("testdata/memory.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 1 {
		t.Fatalf("servers = %+v", c.Servers)
	}
	s := c.Servers[0]
	want := Routes{Sub: []string{"/sub/"}, Pub: []string{"/pub/"}, Stat: []string{"/server-stat/"}}
	if s.Name != "Http Server" || s.Addr() != ":1337" || s.Backlog != 20000 || !reflect.DeepEqual(s.Routes, want) {
		t.Errorf("server = %+v", s)
	}
	if c.Storage.Type != "memory" || c.Security.Key != "" {
		t.Errorf("storage %+v security %+v", c.Storage, c.Security)
	}
}

func TestLoadApplianceTemplate(t *testing.T) {
	// The appliance's per-process file: one server, a Redis socket and the
	// misspelt TTL keys of its templates.
	data, err := os.ReadFile("testdata/sub-8011.json")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte(`"messageTLL": 86400`), []byte(`"messageTLL": 600`))
	c, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.MessageTTL != 600 || c.Storage.ChannelTTL != 86400 || c.Storage.OnlineTTL != 120 {
		t.Errorf("TTLs = %+v", c.Storage)
	}
	if !slices.Equal(c.Storage.RedisAddrs(), []string{"/tmp/redis.sock"}) {
		t.Errorf("redis addrs = %q", c.Storage.RedisAddrs())
	}
	if c.ProcessUniqueID != "sub-8011" || c.Servers[0].Addr() != "127.0.0.1:8011" {
		t.Errorf("config = %+v", c)
	}

	// The right spelling wins over the misspelt one.
	c, err = Decode([]byte(`{"storage": {"messageTLL": 5, "messageTTL": 7, "onlineTLL": 9}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.MessageTTL != 7 || c.Storage.OnlineTTL != 9 {
		t.Errorf("storage = %+v", c.Storage)
	}
}

func TestDecodeStringTypedValues(t *testing.T) {
	c, err := Load("testdata/strings.json")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Servers[0]
	if s.Port != 9010 || s.Backlog != 1024 || s.SSL != nil ||
		!reflect.DeepEqual(s.Routes, Routes{Pub: []string{"/bitrix/pub/"}, Stat: []string{"/server-stat/"}}) {
		t.Errorf("server = %+v", s)
	}
	if !c.PublishMode || !c.ClusterMode {
		t.Errorf("publishMode %v clusterMode %v", c.PublishMode, c.ClusterMode)
	}
	st := c.Storage
	if st.Type != "redis" || st.Host != "10.0.0.5" || st.Port != 6380 || st.MessageTTL != 3600 ||
		st.ChannelTTL != 7200 || st.OnlineTTL != 120 || st.OnlineDelta != 10 {
		t.Errorf("storage = %+v", st)
	}
	if c.Security.Algo != "sha256" || c.Limits.MaxPayload != 1048576 || c.Limits.MaxConnPerChannel != 100 {
		t.Errorf("security %+v limits %+v", c.Security, c.Limits)
	}
}

func TestDecodeTolerance(t *testing.T) {
	for _, tc := range []struct {
		in    string
		check func(*Config) bool
	}{
		{`{"publishMode": "false"}`, func(c *Config) bool { return !c.PublishMode }},
		{`{"clusterMode": 1}`, func(c *Config) bool { return c.ClusterMode }},
		{`{"processUniqueId": 42}`, func(c *Config) bool { return c.ProcessUniqueID == "42" }},
		{`{"storage": {"port": "6380 "}}`, func(c *Config) bool { return c.Storage.Port == 6380 }},
		{`{"storage": {"port": 6.38e3}}`, func(c *Config) bool { return c.Storage.Port == 6380 }},
		{`{"storage": {"host": "", "port": 0}}`, func(c *Config) bool {
			return c.Storage.Host == "127.0.0.1" && c.Storage.Port == 6379
		}},
		{`{"storage": {"messageTTL": 0.5}}`, func(c *Config) bool { return c.Storage.MessageTTL == 0.5 }},
		{`{"storage": {"layout": "2.0"}}`, func(c *Config) bool { return c.Storage.Layout == "2.0" }},
		{`{"storage": null, "security": null, "servers": null}`, func(c *Config) bool {
			return reflect.DeepEqual(c, Default())
		}},
		{`{"servers": [{"port": 1, "ssl": false, "routes": {"sub": ["/a/", "/b/"]}}]}`, func(c *Config) bool {
			return c.Servers[0].SSL == nil && slices.Equal(c.Servers[0].Routes.Sub, []string{"/a/", "/b/"})
		}},
		{`{"servers": {"port": 1, "routes": {"sub": "/s/"}}}`, func(c *Config) bool {
			return len(c.Servers) == 1 && c.Servers[0].Port == 1
		}},
		// Port 0 is any free port, for each server that names it.
		{`{"servers": [{"port": 0, "routes": {"sub": "/s/"}}, {"port": "0", "hostname": "127.0.0.1", "routes": {"pub": "/p/"}}]}`, func(c *Config) bool {
			return len(c.Servers) == 2 && c.Servers[0].Addr() == ":0" && c.Servers[1].Addr() == "127.0.0.1:0"
		}},
		{"\xef\xbb\xbf{\"security\": {\"key\": \"k\", \"algo\": \"\"}}", func(c *Config) bool {
			return c.Security.Key == "k" && c.Security.Algo == "sha1"
		}},
		{`{"log": {"level": "DEBUG", "format": "JSON"}, "shutdownTimeout": "0"}`, func(c *Config) bool {
			return c.Log == Log{"debug", "json"} && c.ShutdownTimeout == 0
		}},
		{`{"websocket": {"pingInterval": "1m", "maxQueueBytes": "4096"}, "polling": {"timeout": 25}}`, func(c *Config) bool {
			return c.WebSocket.PingInterval == 60 && c.WebSocket.MaxQueueBytes == 4096 &&
				c.WebSocket.MaxFrameBytes == 1<<20 && c.Polling.Timeout == 25
		}},
		{`{"security": {"key": "k", "signedPublish": "on"}, "storage": {"type": "redis", "addrs": ["s1:26379", "s2:26379"],
			"master": "mymaster", "username": "u", "password": "p", "db": "2", "tls": true, "prefix": "pp:"}}`, func(c *Config) bool {
			s := c.Storage
			return c.Security.SignedPublish && s.Master == "mymaster" && s.Username == "u" && s.Password == "p" &&
				s.DB == 2 && s.TLS && s.Prefix == "pp:" && !s.Cluster &&
				slices.Equal(s.RedisAddrs(), []string{"s1:26379", "s2:26379"})
		}},
	} {
		c, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !tc.check(c) {
			t.Errorf("%s: decoded as %+v", tc.in, c)
		}
	}
}

func TestDecodeServersReplaceDefaults(t *testing.T) {
	c, err := Decode([]byte(`{"servers": [{"port": 1337, "routes": {"pub": "/pub/"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// The new server does not inherit anything from the default servers.
	want := []Server{{Port: 1337, Routes: Routes{Pub: []string{"/pub/"}}}}
	if !reflect.DeepEqual(c.Servers, want) {
		t.Errorf("servers = %+v", c.Servers)
	}
}

func TestDecodeIgnored(t *testing.T) {
	c, err := Decode([]byte(`{
		"duplicatePub": {"hostname": "x", "port": 1},
		"debug": {"ip": []},
		"limits": {"maxPayload": 10, "burst": 1},
		"storage": {"messgeTTL": 5},
		"servers": [{"port": 1, "maxPayload": 5, "tcpNoDelay": true, "ssl": null,
			"routes": {"sub": "/s/", "apis": "/api/"}}],
		"zzz": 1
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"limits.burst", "servers[0].routes.apis", "servers[0].tcpNoDelay", "storage.messgeTTL", "zzz"}
	if !slices.Equal(c.Ignored, want) {
		t.Errorf("ignored = %q, want %q", c.Ignored, want)
	}

	// A key that is only a retired key or an alias elsewhere is unknown,
	// and so is the empty key; a misspelt key beside its right spelling
	// is known and not read, even when it would not read.
	c, err = decode([]byte(`{"": 1, "maxPayload": 2, "storage": {"": 3, "debug": 4, "messageTLL": "x", "messageTTL": 5},
		"security": {"messageTLL": 6}, "servers": [{"port": 1, "routes": {"sub": "/s/"}, "ssl": {"": 7, "cert": "c", "key": "k"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"", "maxPayload", "security.messageTLL", "servers[0].ssl.", "storage.", "storage.debug"}
	if !slices.Equal(c.Ignored, want) || c.Storage.MessageTTL != 5 {
		t.Errorf("ignored = %q, want %q; messageTTL %v", c.Ignored, want, c.Storage.MessageTTL)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "no JSON object: the file is empty"},
		{"{\n  \"servers\": [\n    {\"port\": 1,}\n  ]\n}", "line 3, column 16: invalid character '}' looking for beginning of object key string"},
		{"{\"servers\": [", "line 1, column 14: unexpected end of JSON input"},
		{`{} {}`, "line 1, column 4: unexpected data after the top-level object"},
		{`[]`, "want a JSON object at the top level, got a list"},
		{`{"servers": [{"port": true}]}`, "servers[0].port: want a number, got true"},
		{`{"servers": [{"port": "http"}]}`, `servers[0].port: "http" is not a number`},
		{`{"servers": [{"port": 80.5}]}`, "servers[0].port: 80.5 is not a whole number in range"},
		{`{"servers": [{"port": 1e300}]}`, "servers[0].port: 1e300 is not a whole number in range"},
		{`{"servers": [1]}`, "servers[0]: want an object, got a number"},
		{`{"servers": "x"}`, "servers: want a list of servers, got a string"},
		{`{"servers": [{"routes": {"sub": ["/a/", 2]}}]}`, "servers[0].routes.sub[1]: want a string, got a number"},
		{`{"servers": [{"routes": {"pub": {}}}]}`, "servers[0].routes.pub: want a string or a list of strings, got an object"},
		{`{"servers": [{"ssl": "yes"}]}`, "servers[0].ssl: want an object, got a string"},
		{`{"publishMode": "maybe"}`, `publishMode: "maybe" is not true or false`},
		{`{"clusterMode": []}`, "clusterMode: want true or false, got a list"},
		{`{"storage": {"messageTTL": "NaN"}}`, `storage.messageTTL: "NaN" is not a finite number`},
		{`{"storage": {"channelTTL": "a day"}}`, `storage.channelTTL: "a day" is not a number of seconds or a duration`},
		{`{"storage": {"onlineTTL": {}}}`, "storage.onlineTTL: want a number of seconds, got an object"},
		{`{"storage": 5}`, "storage: want an object, got a number"},
		{`{"security": {"key": {}}}`, "security.key: want a string, got an object"},
		{`{"log": []}`, "log: want an object, got a list"},
		{`{"log": {"level": []}}`, "log.level: want a string, got a list"},
		{`{"servers": [null]}`, "servers[0]: want an object, got null"},
		{`{"servers": [{"ssl": true}]}`, "servers[0].ssl: want an object, got true"},
		{`{"servers": [{"ssl": {"cert": false}}]}`, "servers[0].ssl.cert: want a string, got false"},
		{`{"servers": [{"routes": []}]}`, "servers[0].routes: want an object, got a list"},
		{`{"servers": [{"routes": {"sub": "/s/"}}]}`, "servers[0].port: missing"},
		{`{"servers": [{"port": 1, "routes": {"sub": "/s/"}}, {"port": null, "routes": {"pub": "/p/"}}]}`, "servers[1].port: missing"},
		{`{"security": {"clients": ["a"]}}`, "security.clients: want an object of clientId: key, got a list"},
		{`{"security": {"clients": {"c1": {}}}}`, "security.clients.c1: want a string, got an object"},
		{`{"security": {"signedPublish": "sure"}}`, `security.signedPublish: "sure" is not true or false`},
		{`{"storage": {"messageTLL": "soon"}}`, `storage.messageTLL: "soon" is not a number of seconds or a duration`},
		{`{"storage": {"addrs": 6379}}`, "storage.addrs: want a string or a list of strings, got a number"},
		{`{"storage": {"port": null, "db": "x"}}`, `storage.db: "x" is not a number`},
		{`{"websocket": {"maxFrameBytes": "64k"}}`, `websocket.maxFrameBytes: "64k" is not a number`},
		{`{"backend": {"watchTTL": true}}`, "backend.watchTTL: want a number of seconds, got true"},
		{`{"polling": 40}`, "polling: want an object, got a number"},
		{`{"shutdownTimeout": []}`, "shutdownTimeout: want a number of seconds, got a list"},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.in, tc.want)
			continue
		}
		if !slices.Contains(strings.Split(err.Error(), "\n"), tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, err, tc.want)
		}
	}
}

func TestDecodeReportsEveryError(t *testing.T) {
	_, err := Decode([]byte(`{"servers": [{"port": "x"}, {"port": []}], "storage": {"type": 1.5e999}}`))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "servers[0].port:") || !strings.HasPrefix(lines[1], "servers[1].port:") {
		t.Errorf("errors = %q", lines)
	}

	// Errors at every depth, in the order of the keys (then the required
	// keys an object lacks), a bad value leaving the rest of its object to
	// be read.
	_, err = Decode([]byte(`{
		"storage": {"type": [], "port": "x", "messageTLL": "y", "host": "h"},
		"servers": [{"name": {}, "routes": {"sub": 1}, "ssl": {"key": false}}, 3],
		"security": {"clients": {"b": [], "c": null, "a": {}}},
		"log": {"format": true}, "websocket": null, "publishMode": "perhaps", "zzz": {}
	}`))
	want := []string{
		"log.format: want a string, got true",
		`publishMode: "perhaps" is not true or false`,
		"security.clients.a: want a string, got an object",
		"security.clients.b: want a string, got a list",
		"servers[0].name: want a string, got an object",
		"servers[0].routes.sub: want a string or a list of strings, got a number",
		"servers[0].ssl.key: want a string, got false",
		"servers[0].port: missing",
		"servers[1]: want an object, got a number",
		`storage.messageTLL: "y" is not a number of seconds or a duration`,
		`storage.port: "x" is not a number`,
		"storage.type: want a string, got a list",
	}
	if err == nil || !slices.Equal(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("got  %q\nwant %q", err, want)
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Servers = nil }, "servers: no servers"},
		{func(c *Config) { c.Servers[1].Port = 70000 }, "servers[1].port: 70000 is not a port (0-65535)"},
		{func(c *Config) { c.Servers[0].Port = -1 }, "servers[0].port: -1 is not a port (0-65535)"},
		{func(c *Config) { c.Servers[0].Backlog = -1 }, "servers[0].backlog: must be >= 0"},
		{func(c *Config) { c.Servers[0].Routes = Routes{} }, "servers[0].routes: no routes"},
		{func(c *Config) { c.Servers[1].Routes.Stat = []string{"server-stat/"} },
			`servers[1].routes.stat[0]: "server-stat/" does not start with /`},
		{func(c *Config) { c.Servers[1].Routes.Metrics = []string{"/bitrix/pub/"} },
			`servers[1].routes.metrics[0]: "/bitrix/pub/" is also servers[1].routes.pub[0]`},
		{func(c *Config) { c.Servers[1].Port = 8010 },
			"servers[1]: listen address 127.0.0.1:8010 is also servers[0]'s (127.0.0.1:8010)"},
		{func(c *Config) { c.Servers[1].Port, c.Servers[1].Hostname = 8010, "" },
			"servers[1]: listen address :8010 is also servers[0]'s (127.0.0.1:8010)"},
		{func(c *Config) { c.Servers[1].SSL = &SSL{Key: "k.pem"} }, "servers[1].ssl.cert: missing"},
		{func(c *Config) { c.Servers[1].SSL = &SSL{Cert: "c.pem"} }, "servers[1].ssl.key: missing"},
		{func(c *Config) { c.Servers[0].SSL = &SSL{Cert: "/nonexistent/c.pem", Key: "/dev/null"} },
			"servers[0].ssl.cert: open /nonexistent/c.pem: no such file or directory"},
		{func(c *Config) { c.Security.Algo = "sha3" }, `security.algo: "sha3" is not sha1, sha256, sha512 or md5`},
		{func(c *Config) { c.Security.SignedPublish = true }, "security.signedPublish: needs security.key"},
		{func(c *Config) { c.Storage.Type = "mongo" }, `storage.type: "mongo" is not memory or redis`},
		{func(c *Config) { c.PublishMode = true }, "publishMode: needs storage.type redis"},
		{func(c *Config) { c.Storage.Type, c.Storage.Host = "redis", "" }, "storage.host: missing"},
		{func(c *Config) { c.Storage.MessageTTL = 0 }, "storage.messageTTL: must be > 0"},
		{func(c *Config) { c.Storage.ChannelTTL = -1 }, "storage.channelTTL: must be > 0"},
		{func(c *Config) { c.Storage.OnlineTTL = math.NaN() }, "storage.onlineTTL: must be > 0"},
		{func(c *Config) { c.Storage.MessageTTL = 1e10 }, "storage.messageTTL: must be at most 2147483648 seconds"},
		{func(c *Config) { c.Storage.OnlineDelta = -1 }, "storage.onlineDelta: must be between 0 and 2147483648"},
		{func(c *Config) { c.Storage.Port = 65536 }, "storage.port: 65536 is not a port (1-65535)"},
		{func(c *Config) { c.Storage.Addrs = []string{"a:1", "b"} }, `storage.addrs[1]: "b" is not host:port`},
		{func(c *Config) { c.Storage.Addrs = []string{"a:0"} }, `storage.addrs[0]: "0" is not a port (1-65535)`},
		{func(c *Config) { c.Storage.Cluster, c.Storage.Master = true, "mymaster" },
			"storage.master: a Sentinel master set and storage.cluster exclude each other"},
		{func(c *Config) { c.Storage.DB = -1 }, "storage.db: must be >= 0"},
		{func(c *Config) { c.Storage.Layout = "3.0" }, `storage.layout: "3.0" is not 1.0 or 2.0`},
		{func(c *Config) { c.Storage.Layout, c.Security.Clients = "2.0", map[string]string{"c": "k"} },
			"storage.layout: the 2.0 layout has no clientId namespace: the shared mode (security.clients) needs layout 1.0"},
		{func(c *Config) { c.Storage.Cluster, c.Storage.DB = true, 2 }, "storage.db: Redis Cluster has only database 0"},
		{func(c *Config) { c.Storage.Tags = "slot" }, `storage.tags: "slot" is not single or installation`},
		{func(c *Config) { c.Storage.Tags, c.Storage.Layout = "installation", "2.0" },
			"storage.tags: installation tags need layout 1.0: the 2.0 layout's keys are the original's"},
		{func(c *Config) { c.Storage.Tags, c.Storage.Prefix = "installation", "{x}" },
			`storage.prefix: "{x}" holds a brace: with installation tags each installation's keys take the hash tag {<clientId>}`},
		{func(c *Config) { c.Storage.Tags, c.Security.Clients = "installation", map[string]string{"a}b": "k"} },
			`security.clients: installation id "a}b": only letters, digits and - _ . : make a hash tag (found '}')`},
		{func(c *Config) { c.Storage.WaitReplicas = -1 }, "storage.waitReplicas: must be between 0 and 16"},
		{func(c *Config) { c.Polling.Timeout = 0 }, "polling.timeout: must be > 0"},
		{func(c *Config) { c.WebSocket.PingInterval = -5 }, "websocket.pingInterval: must be > 0"},
		{func(c *Config) { c.WebSocket.MaxQueueBytes = 0 }, "websocket.maxQueueBytes: must be > 0"},
		{func(c *Config) { c.WebSocket.MaxFrameBytes = -1 }, "websocket.maxFrameBytes: must be > 0"},
		{func(c *Config) { c.Limits.MaxPayload = 0 }, "limits.maxPayload: must be > 0"},
		{func(c *Config) { c.Limits.MaxConnPerChannel = -1 }, "limits.maxConnPerChannel: must be >= 0 (0: unbounded)"},
		{func(c *Config) { c.Limits.MaxMessagesPerRequest = -1 }, "limits.maxMessagesPerRequest: must be >= 0 (0: unbounded)"},
		{func(c *Config) { c.Limits.MaxChannelsPerRequest = -1 }, "limits.maxChannelsPerRequest: must be >= 0 (0: unbounded)"},
		{func(c *Config) { c.ShutdownTimeout = -1 }, "shutdownTimeout: must be between 0 and 2147483648"},
		{func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not debug, info, warn or error`},
		{func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not text or json`},
		{func(c *Config) { c.WebPush.VAPIDPublicKey = testVAPIDPublic }, "webPush.vapidPublicKey: given without webPush.vapidPrivateKey"},
		{func(c *Config) { c.WebPush.VAPIDPrivateKey, c.WebPush.Subject = "AAAA", "mailto:a@b" },
			"webPush.vapidPrivateKey: VAPID private key: not a P-256 private key (want the 32-byte scalar, base64url)"},
		{func(c *Config) { c.WebPush.VAPIDPrivateKey = testVAPIDPrivate },
			`webPush.subject: VAPID subject "": want a mailto: or https: URI`},
		{func(c *Config) {
			c.WebPush.VAPIDPrivateKey, c.WebPush.VAPIDPublicKey, c.WebPush.Subject = testVAPIDPrivate, testVAPIDPublic[:20]+"AAAA", "mailto:a@b"
		}, "webPush.vapidPublicKey: VAPID public key: not the private key's (leave it out, or give the one generated with it)"},
		{func(c *Config) { c.WebPush.MaxQueue = 0 }, "webPush.maxQueue: must be > 0"},
		{func(c *Config) { c.WebPush.DeferDelay = -1 }, "webPush.deferDelay: must be > 0"},
	} {
		c := Default()
		tc.change(c)
		err := c.Validate()
		if err == nil {
			t.Errorf("no error, want %q", tc.want)
			continue
		}
		if lines := strings.Split(err.Error(), "\n"); len(lines) != 1 || lines[0] != tc.want {
			t.Errorf("got  %q\nwant %q", err, tc.want)
		}
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	c := Default()
	c.Servers[1].Port = 70000
	c.Storage.Type = "mongo"
	c.Log.Format = "xml"
	err := c.Validate()
	want := "servers[1].port: 70000 is not a port (0-65535)\n" +
		`storage.type: "mongo" is not memory or redis` + "\n" +
		`log.format: "xml" is not text or json`
	if err == nil || err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

func TestDuplicateAddressesByWildcard(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		ok   bool
	}{
		{"127.0.0.1", "127.0.0.2", true},
		{"0.0.0.0", "127.0.0.1", false},
		{"127.0.0.1", "::", false},
		{"[::1]", "::1", false},
		{"LOCALHOST", "localhost", false},
		{"127.0.0.1", "127.0.0.1", false},
	} {
		c := Default()
		c.Servers[0].Hostname, c.Servers[1].Hostname = tc.a, tc.b
		c.Servers[1].Port = c.Servers[0].Port
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s and %s on one port: err = %v", tc.a, tc.b, err)
		}
		// Port 0 gives each server a free port of its own.
		c.Servers[0].Port, c.Servers[1].Port = 0, 0
		if err := c.Validate(); err != nil {
			t.Errorf("%s and %s on port 0: %v", tc.a, tc.b, err)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	_, err := Load("testdata/nonexistent.json")
	if err == nil || !strings.Contains(err.Error(), "testdata/nonexistent.json") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	writeFile(t, path, `{"servers": [{"port": -1, "routes": {}}], "storage": {"type": "mongo"}}`)
	_, err = Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		path + ": servers[0].port: -1 is not a port (0-65535)",
		path + ": servers[0].routes: no routes",
		path + `: storage.type: "mongo" is not memory or redis`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	writeFile(t, path, "{\n\"servers\": 1,\n")
	if _, err = Load(path); err == nil || err.Error() != path+": line 3, column 1: unexpected end of JSON input" {
		t.Errorf("syntax error: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	// What pushpull prints as JSON reads back as the same configuration.
	for _, name := range []string{"appliance-v3.json", "memory.json", "sub-8011.json", "strings.json"} {
		c, err := Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, data)
		}
		c.Aliased = nil // the printed config spells every key as pushpull does
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: round trip changed\n%+v\nto\n%+v", name, c, back)
		}
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ProcessUniqueID = c.ProcessUniqueID
	want.idGenerated = true
	if c.ProcessUniqueID == "" || !c.UniqueIDGenerated() || !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v", c)
	}
}

func TestParsePrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.json")
	writeFile(t, path, `{"security": {"key": "file"}, "storage": {"messageTTL": 100, "channelTTL": 200}, "polling": {"timeout": 30}}`)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, ""},
		{"file", []string{"--config", path}, nil, "file"},
		{"env file", nil, map[string]string{"PUSHPULL_CONFIG": path}, "file"},
		{"env over file", []string{"-config=" + path}, map[string]string{"PUSHPULL_KEY": "env"}, "env"},
		{"flag over env", []string{"--config", path, "--key", "flag"}, map[string]string{"PUSHPULL_KEY": "env"}, "flag"},
		{"flag without file", []string{"-key=flag"}, map[string]string{"PUSHPULL_KEY": "env"}, "flag"},
	} {
		c, err := Parse(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Security.Key != tc.want {
			t.Errorf("%s: key = %q, want %q", tc.name, c.Security.Key, tc.want)
		}
	}

	// Layers mix field by field.
	c, err := Parse([]string{"--config", path, "--message-ttl", "60"},
		env(map[string]string{"PUSHPULL_MESSAGE_TTL": "50", "PUSHPULL_CHANNEL_TTL": "90"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.MessageTTL != 60 || c.Storage.ChannelTTL != 90 || c.Polling.Timeout != 30 || c.Storage.OnlineTTL != 120 {
		t.Errorf("storage %+v polling %+v", c.Storage, c.Polling)
	}

	// A --config flag wins over PUSHPULL_CONFIG.
	other := filepath.Join(t.TempDir(), "other.json")
	writeFile(t, other, `{"security": {"key": "other"}}`)
	c, err = Parse([]string{"--config", other}, env(map[string]string{"PUSHPULL_CONFIG": path}), io.Discard)
	if err != nil || c.Security.Key != "other" {
		t.Errorf("key = %q, err = %v", c.Security.Key, err)
	}
}

func TestParseEachOverride(t *testing.T) {
	for _, tc := range []struct {
		flag, env, value string
		check            func(*Config) bool
	}{
		{"key", "PUSHPULL_KEY", "s3cret", func(c *Config) bool { return c.Security.Key == "s3cret" }},
		{"algo", "PUSHPULL_ALGO", "SHA512", func(c *Config) bool { return c.Security.Algo == "sha512" }},
		{"storage", "PUSHPULL_STORAGE", "redis", func(c *Config) bool { return c.Storage.Type == "redis" }},
		{"redis", "PUSHPULL_REDIS", "10.1.1.1:6390", func(c *Config) bool {
			return c.Storage.Type == "redis" && c.Storage.Host == "10.1.1.1" && c.Storage.Port == 6390
		}},
		{"redis-password", "PUSHPULL_REDIS_PASSWORD", "pw", func(c *Config) bool { return c.Storage.Password == "pw" }},
		{"redis-db", "PUSHPULL_REDIS_DB", "3", func(c *Config) bool { return c.Storage.DB == 3 }},
		{"redis-layout", "PUSHPULL_REDIS_LAYOUT", "2.0", func(c *Config) bool { return c.Storage.Layout == "2.0" }},
		{"sub-listen", "PUSHPULL_SUB_LISTEN", "0.0.0.0:8080", func(c *Config) bool { return c.Servers[0].Addr() == "0.0.0.0:8080" }},
		{"pub-listen", "PUSHPULL_PUB_LISTEN", "127.0.0.1:9999", func(c *Config) bool { return c.Servers[1].Addr() == "127.0.0.1:9999" }},
		{"message-ttl", "PUSHPULL_MESSAGE_TTL", "3600", func(c *Config) bool { return c.Storage.MessageTTL == 3600 }},
		{"channel-ttl", "PUSHPULL_CHANNEL_TTL", "12h", func(c *Config) bool { return c.Storage.ChannelTTL == 43200 }},
		{"poll-timeout", "PUSHPULL_POLL_TIMEOUT", "25.5", func(c *Config) bool { return c.Polling.Timeout == 25.5 }},
		{"publish-mode", "PUSHPULL_PUBLISH_MODE", "true", func(c *Config) bool { return c.PublishMode }},
		{"process-id", "PUSHPULL_PROCESS_ID", "pub-9010", func(c *Config) bool { return c.ProcessUniqueID == "pub-9010" }},
		{"log-level", "PUSHPULL_LOG_LEVEL", "Warn", func(c *Config) bool { return c.Log.Level == "warn" }},
	} {
		// publishMode needs Redis.
		base := map[string]string{}
		if tc.flag == "publish-mode" {
			base["PUSHPULL_STORAGE"] = "redis"
		}
		c, err := Parse([]string{"--" + tc.flag + "=" + tc.value}, env(base), io.Discard)
		if err != nil || !tc.check(c) {
			t.Errorf("--%s=%s: err %v, config %+v", tc.flag, tc.value, err, c)
		}
		base[tc.env] = tc.value
		c, err = Parse(nil, env(base), io.Discard)
		if err != nil || !tc.check(c) {
			t.Errorf("%s=%s: err %v, config %+v", tc.env, tc.value, err, c)
		}
	}
}

func TestParseReadsLikeTheFile(t *testing.T) {
	// A flag or variable that names a key is read as the file's value.
	c, err := Parse([]string{"--algo", " SHA256 ", "--redis-db", "1e1", "--poll-timeout", "1m", "--publish-mode=yes"},
		env(map[string]string{"PUSHPULL_STORAGE": " Redis", "PUSHPULL_PROCESS_ID": "7", "PUSHPULL_LOG_LEVEL": "DEBUG "}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Security.Algo != "sha256" || c.Storage.DB != 10 || c.Polling.Timeout != 60 || !c.PublishMode ||
		c.Storage.Type != "redis" || c.ProcessUniqueID != "7" || c.Log.Level != "debug" {
		t.Errorf("config = %+v", c)
	}
	// Every problem at once, each naming its flag or variable.
	_, err = Parse([]string{"--redis-db", "1.5", "--message-ttl", "NaN"}, env(map[string]string{"PUSHPULL_POLL_TIMEOUT": "x"}), io.Discard)
	want := `PUSHPULL_POLL_TIMEOUT: "x" is not a number of seconds or a duration` + "\n" +
		"--redis-db: 1.5 is not a whole number in range\n" + `--message-ttl: "NaN" is not a finite number`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestParseBoolFlagAlone(t *testing.T) {
	c, err := Parse([]string{"--publish-mode", "--storage", "redis"}, env(nil), io.Discard)
	if err != nil || !c.PublishMode {
		t.Fatalf("err %v, publishMode %v", err, c != nil && c.PublishMode)
	}
	// A flag false overrides an env true.
	c, err = Parse([]string{"--publish-mode=false"}, env(map[string]string{"PUSHPULL_PUBLISH_MODE": "1"}), io.Discard)
	if err != nil || c.PublishMode {
		t.Fatalf("err %v, publishMode %v", err, c != nil && c.PublishMode)
	}
}

func TestParseRedis(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Storage
	}{
		{[]string{"--redis", "redis.local"}, Storage{Type: "redis", Host: "redis.local", Port: 6379}},
		{[]string{"--redis", "[::1]:7000"}, Storage{Type: "redis", Host: "::1", Port: 7000}},
		{[]string{"--redis", "/run/redis.sock"}, Storage{Type: "redis", Host: "127.0.0.1", Port: 6379, Socket: "/run/redis.sock"}},
		{[]string{"--redis", "a:7000, b:7001,c"}, Storage{Type: "redis", Host: "127.0.0.1", Port: 6379,
			Addrs: []string{"a:7000", "b:7001", "c:6379"}}},
		// An explicit type wins over the one --redis implies.
		{[]string{"--storage", "memory", "--redis", "a:1"}, Storage{Type: "memory", Host: "a", Port: 1}},
	} {
		c, err := Parse(tc.args, env(nil), io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		got := c.Storage
		got.MessageTTL, got.ChannelTTL, got.OnlineTTL, got.OnlineDelta = 0, 0, 0, 0
		got.MaxChannelMessages, got.MaxChannelBytes, got.MaxBytes = 0, 0, 0
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: storage = %+v, want %+v", tc.args, got, tc.want)
		}
	}

	// A flag's address replaces a file's socket.
	path := filepath.Join(t.TempDir(), "push.json")
	writeFile(t, path, `{"storage": {"type": "redis", "socket": "/tmp/redis.sock"}}`)
	c, err := Parse([]string{"--config", path, "--redis", "10.0.0.1:6379"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Storage.RedisAddrs(); !slices.Equal(got, []string{"10.0.0.1:6379"}) {
		t.Errorf("redis addrs = %q", got)
	}
}

func TestParseListen(t *testing.T) {
	names := func(c *Config) (out []string) {
		for _, s := range c.Servers {
			out = append(out, s.Name+"@"+s.Addr())
		}
		return out
	}

	// One address for both: one server with every route.
	c, err := Parse([]string{"--sub-listen", ":8080", "--pub-listen", ":8080"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 1 {
		t.Fatalf("servers = %q", names(c))
	}
	want := Default().Servers[1].Routes
	want.Sub = Default().Servers[0].Routes.Sub
	want.Rest = Default().Servers[0].Routes.Rest
	want.Demo = Default().Servers[0].Routes.Demo
	if c.Servers[0].Addr() != ":8080" || !reflect.DeepEqual(c.Servers[0].Routes, want) {
		t.Errorf("server = %+v", c.Servers[0])
	}

	// The env gives one, the flag the other.
	c, err = Parse([]string{"--pub-listen", "127.0.0.1:8080"},
		env(map[string]string{"PUSHPULL_SUB_LISTEN": "127.0.0.1:8080", "PUSHPULL_PUB_LISTEN": "127.0.0.1:1"}), io.Discard)
	if err != nil || len(c.Servers) != 1 {
		t.Fatalf("err %v servers %+v", err, c)
	}

	// Servers that differ in TLS cannot become one.
	tlsPath := filepath.Join(t.TempDir(), "tls.json")
	certFile, keyFile, _ := testutil.SelfSigned(t, t.TempDir(), "s")
	writeFile(t, tlsPath, `{"servers": [{"port": 1, "routes": {"sub": "/s/"}, "ssl": {"cert": "`+certFile+`", "key": "`+keyFile+`"}},
		{"port": 2, "routes": {"pub": "/p/"}}]}`)
	_, err = Parse([]string{"--config", tlsPath, "--sub-listen", ":3", "--pub-listen", ":3"}, env(nil), io.Discard)
	if err == nil || err.Error() != "--sub-listen and --pub-listen name one address, but servers[0] and servers[1] differ in ssl" {
		t.Errorf("merging TLS and plain: %v", err)
	}

	// A server serving both kinds is split by two addresses.
	path := filepath.Join(t.TempDir(), "push.json")
	writeFile(t, path, `{"servers": [{"name": "all", "port": 1337,
		"routes": {"sub": "/sub/", "pub": "/pub/", "stat": "/server-stat/"}}]}`)
	c, err = Parse([]string{"--config", path, "--sub-listen", ":80", "--pub-listen", "127.0.0.1:81"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(c); !slices.Equal(got, []string{"all@:80", "all-pub@127.0.0.1:81"}) {
		t.Fatalf("servers = %q", got)
	}
	if !reflect.DeepEqual(c.Servers[0].Routes, Routes{Sub: []string{"/sub/"}}) ||
		!reflect.DeepEqual(c.Servers[1].Routes, Routes{Pub: []string{"/pub/"}, Stat: []string{"/server-stat/"}}) {
		t.Errorf("routes = %+v / %+v", c.Servers[0].Routes, c.Servers[1].Routes)
	}

	// One flag alone moves the whole server.
	c, err = Parse([]string{"--config", path, "--pub-listen", ":81"}, env(nil), io.Discard)
	if err != nil || !slices.Equal(names(c), []string{"all@:81"}) {
		t.Errorf("err %v servers %+v", err, c)
	}

	// Port 0 is a free port for each: two listeners, whether the two
	// servers were one or two.
	for _, file := range []string{"", path} {
		args := []string{"--sub-listen", "127.0.0.1:0", "--pub-listen", "127.0.0.1:0"}
		if file != "" {
			args = append(args, "--config", file)
		}
		c, err = Parse(args, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(c); len(got) != 2 || c.Servers[0].Addr() != "127.0.0.1:0" || c.Servers[1].Addr() != "127.0.0.1:0" {
			t.Errorf("--config %q, both flags on port 0: servers = %q", file, got)
		}
	}

	// Only the first server of a kind moves.
	c, err = Parse([]string{"--config", "testdata/appliance-v3.json", "--sub-listen", "127.0.0.1:7010"}, env(nil), io.Discard)
	if err != nil || c.Servers[0].Port != 7010 || c.Servers[1].Port != 8011 {
		t.Errorf("err %v servers %+v", err, c)
	}
}

func TestParseErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pub.json")
	writeFile(t, path, `{"servers": [{"port": 9010, "routes": {"pub": "/pub/"}}]}`)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--redis-db", "one"}, nil, `--redis-db: "one" is not a number`},
		{nil, map[string]string{"PUSHPULL_MESSAGE_TTL": "soon"}, `PUSHPULL_MESSAGE_TTL: "soon" is not a number of seconds or a duration`},
		{[]string{"--publish-mode=perhaps"}, nil, `--publish-mode: "perhaps" is not true or false`},
		{[]string{"--redis", ","}, nil, "--redis: no address"},
		{[]string{"--redis", "host:port"}, nil, `--redis: "host:port": "port" is not a port (1-65535)`},
		{[]string{"--sub-listen", "8080"}, nil, `--sub-listen: "8080" is not host:port`},
		{[]string{"--pub-listen", ":99999"}, nil, `--pub-listen: ":99999": "99999" is not a port (0-65535)`},
		{[]string{"--sub-listen", ":-1"}, nil, `--sub-listen: ":-1": "-1" is not a port (0-65535)`},
		{[]string{"--redis", "host:0"}, nil, `--redis: "host:0": "0" is not a port (1-65535)`},
		{[]string{"--config", path, "--sub-listen", ":80"}, nil, "--sub-listen: no server serves sub routes"},
		{[]string{"serve"}, nil, `unexpected argument "serve"`},
		{[]string{"--algo", "crc32"}, nil, `security.algo: "crc32" is not sha1, sha256, sha512 or md5`},
		{[]string{"--config", "testdata/none.json"}, nil, "open testdata/none.json: no such file or directory"},
		{nil, map[string]string{"PUSHPULL_LOG_LEVEL": "loud"}, `log.level: "loud" is not debug, info, warn or error`},
	} {
		_, err := Parse(tc.args, env(tc.env), io.Discard)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q %v:\n got %v\nwant %s", tc.args, tc.env, err, tc.want)
		}
	}

	// Listen addresses that collide with another server.
	_, err := Parse([]string{"--pub-listen", "127.0.0.1:8010", "--sub-listen", "127.0.0.1:8011"},
		env(nil), io.Discard)
	if err != nil {
		t.Errorf("swapping ports: %v", err)
	}
	_, err = Parse([]string{"--pub-listen", "127.0.0.1:8010"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen address 127.0.0.1:8010 is also servers[0]'s") {
		t.Errorf("colliding address: %v", err)
	}
}

func TestParseHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, s := range []string{"Usage: pushpull serve", "-config FILE", "PUSHPULL_CONFIG", "-sub-listen HOST:PORT", "(storage.db; env PUSHPULL_REDIS_DB)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("usage lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	if _, err := Parse([]string{"--no-such-flag"}, env(nil), &out); err == nil || !strings.Contains(out.String(), "no-such-flag") {
		t.Errorf("unknown flag: err %v, output %q", err, out.String())
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testutil.SelfSigned(t, dir, "server")
	cfgFile := filepath.Join(dir, "push.json")
	writeFile(t, cfgFile, `{"servers": [{"port": 8894, "routes": {"sub": "/bitrix/sub/"}, "ssl": {
		"cert": "`+certFile+`", "key": "`+keyFile+`", "dhparam": "/nonexistent/dhparam.pem", "honorCipherOrder": "true",
		"ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384:RC4-SHA:kEDH+AESGCM:ECDHE-ECDSA-AES128-GCM-SHA256:AES:!aNULL:ecdhe-ecdsa-aes256-gcm-sha384"}}]}`)
	c, err := Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ssl := c.Servers[0].SSL
	if ssl == nil || !ssl.HonorCipherOrder || ssl.DHParam != "/nonexistent/dhparam.pem" {
		t.Fatalf("ssl = %+v", ssl)
	}
	conf, err := ssl.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	wantSuites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if !slices.Equal(conf.CipherSuites, wantSuites) || conf.MinVersion != tls.VersionTLS12 {
		t.Errorf("suites %x, min version %x", conf.CipherSuites, conf.MinVersion)
	}

	// The configuration serves the certificate over a real handshake.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	pemCert, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got := conn.ConnectionState().CipherSuite; !slices.Contains(wantSuites, got) {
		t.Errorf("negotiated suite %x", got)
	}
	conn.Close()

	// No usable suite: Go's defaults.
	ssl.Ciphers = "AES:!aNULL:DES-CBC3-SHA"
	if conf, err := ssl.TLSConfig(); err != nil || conf.CipherSuites != nil {
		t.Errorf("suites %v, err %v", conf.CipherSuites, err)
	}

	// A key that is not the certificate's.
	_, otherKey, _ := testutil.SelfSigned(t, dir, "other")
	c.Servers[0].SSL = &SSL{Cert: certFile, Key: otherKey}
	err = c.Validate()
	want := "servers[0].ssl: " + certFile + " and " + otherKey + ": tls: private key does not match public key"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if _, err := c.Servers[0].SSL.TLSConfig(); err == nil {
		t.Error("TLSConfig accepted a mismatched key")
	}
	// Garbage in the key file.
	writeFile(t, otherKey, "not a key")
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "servers[0].ssl: ") {
		t.Errorf("bad key file: %v", err)
	}
	c.Servers[0].SSL = &SSL{Cert: certFile, Key: filepath.Join(dir, "missing.key")}
	if err := c.Validate(); err == nil || err.Error() != "servers[0].ssl.key: open "+filepath.Join(dir, "missing.key")+": no such file or directory" {
		t.Errorf("missing key: %v", err)
	}
}

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		s    Server
		want string
	}{
		{Server{Port: 8010}, ":8010"},
		{Server{Hostname: "127.0.0.1", Port: 9010}, "127.0.0.1:9010"},
		{Server{Hostname: "::1", Port: 1}, "[::1]:1"},
		{Server{Hostname: "[::1]", Port: 1}, "[::1]:1"},
		{Server{Hostname: "push.example", Port: 443}, "push.example:443"},
	} {
		if got := tc.s.Addr(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestRedisAddrs(t *testing.T) {
	for _, tc := range []struct {
		s    Storage
		want []string
	}{
		{Storage{Host: "r", Port: 6380}, []string{"r:6380"}},
		{Storage{Host: "r"}, []string{"r:6379"}},
		{Storage{Host: "r", Port: 1, Socket: "/s"}, []string{"/s"}},
		{Storage{Host: "r", Port: 1, Addrs: []string{"a:1", "b:2"}}, []string{"a:1", "b:2"}},
	} {
		if got := tc.s.RedisAddrs(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want time.Duration
	}{
		{40, 40 * time.Second},
		{0.25, 250 * time.Millisecond},
		{0, 0},
		{-1, -time.Second},
		{1e300, math.MaxInt64},
		{-1e300, math.MinInt64},
		{math.NaN(), 0},
	} {
		if got := Seconds(tc.f); got != tc.want {
			t.Errorf("Seconds(%v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDocExamples(t *testing.T) {
	// The JSON examples of the config reference decode and validate (the
	// TLS files they name do not exist here, so those are not read).
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d JSON examples", len(blocks))
	}
	for i, b := range blocks {
		c, err := decode(b[1])
		if err == nil {
			err = c.validate(false)
		}
		if err != nil {
			t.Errorf("example %d: %v", i, err)
		} else if len(c.Ignored) > 0 {
			t.Errorf("example %d has unknown keys %q", i, c.Ignored)
		}
	}
}

// A key pair of pushpull vapid.
const (
	testVAPIDPrivate = "T_qGVCqSJb7-8INSSAoHJsAo_4g_Ka2jxt4TgCOztfE"
	testVAPIDPublic  = "BDzj4af0sT4BLgNfXExLBREVMNDZ-FGXq1lBwc7eUcybb4BTuq9cjT_vfntW6VjQ-RqtI-J2whUPmX1jDSKTOpQ"
)

// The VAPID private key comes from the environment or a flag like the
// other secrets.
func TestParseVAPIDKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"webPush": {"subject": "mailto:ops@example.com"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]string{"--config", file}, env(map[string]string{"PUSHPULL_VAPID_PRIVATE_KEY": testVAPIDPrivate}), io.Discard)
	if err != nil || c.WebPush.VAPIDPrivateKey != testVAPIDPrivate {
		t.Fatalf("PUSHPULL_VAPID_PRIVATE_KEY: %v %+v", err, c)
	}
	c, err = Parse([]string{"--config", file, "--vapid-private-key", testVAPIDPrivate}, env(nil), io.Discard)
	if err != nil || c.WebPush.VAPIDPrivateKey != testVAPIDPrivate {
		t.Fatalf("--vapid-private-key: %v %+v", err, c)
	}
}
