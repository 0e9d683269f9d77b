package redisengine

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
)

func TestCodecRoundTrip(t *testing.T) {
	ttl := store.TTLs{Message: time.Hour, Channel: time.Hour}
	m := &protocol.Message{
		MID: protocol.FormatMID(1700000000, 42), ID: 42, Channels: []string{chA, chB},
		Body: []byte(`{"a":"<é>\"\\"}`), Expiry: 60, Created: time.UnixMilli(1700000000123),
	}
	got, err := decode([]byte(encode(m)), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if got.MID != m.MID || got.ID != 42 || string(got.Body) != string(m.Body) || !slices.Equal(got.Channels, m.Channels) ||
		got.Expiry != 60 || !got.Created.Equal(m.Created) || !got.Expires.Equal(m.Created.Add(time.Minute)) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestCodecSenderAndExtras(t *testing.T) {
	m := &protocol.Message{
		MID: protocol.FormatMID(1700000000, 7), ID: 7, Channels: []string{chA}, Body: []byte(`{"module_id":"m"}`),
		Created: time.UnixMilli(1700000000000), Sender: protocol.Sender{Type: protocol.SenderClient, ID: chB},
		UserParams: map[string]json.RawMessage{"5": json.RawMessage(`{"x":1}`)}, Dictionary: json.RawMessage(`{"d":2}`),
	}
	got, err := decode([]byte(encode(m)), store.DefaultTTLs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Sender != m.Sender || string(got.UserParams["5"]) != `{"x":1}` || string(got.Dictionary) != `{"d":2}` {
		t.Fatalf("decoded %+v", got)
	}
	// The original's JSON, without them, reads as a backend message.
	old, err := decode([]byte(`{"id":"17000000000000000000000001","text":"{}","expiry":0,"channels":[],"dateCreated":1}`), store.DefaultTTLs)
	if err != nil || old.Sender != (protocol.Sender{}) || old.EffectiveSender().Type != protocol.SenderBackend || old.UserParams != nil {
		t.Fatalf("original message decoded as %+v, %v", old, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		``, `[]`, `{"id":"1","text":"1"}`,
		`{"id":"17000000000000000000000001","text":"not json"}`,
		`{"id":"17000000000000000000000001","text":""}`,
		`{"id":"17000000000000000000000001"}`,
		`{"id":"1700000000000000000000000x","text":"1"}`,
	} {
		if m, err := decode([]byte(s), store.DefaultTTLs); err == nil {
			t.Errorf("decode(%q) = %+v", s, m)
		}
	}
	// The text may also be embedded JSON rather than a string.
	m, err := decode([]byte(`{"id":"17000000000000000000000001","text":{"a":1},"expiry":-5,"dateCreated":1e300}`), store.DefaultTTLs)
	if err != nil || string(m.Body) != `{"a":1}` || m.Expiry != 0 || !m.Created.IsZero() || m.Expired(time.Now()) {
		t.Fatalf("decode = %+v, %v", m, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(encode(&protocol.Message{MID: protocol.FormatMID(1700000000, 1), Channels: []string{chA}, Body: []byte(`{"x":1}`), Created: time.Now()})))
	f.Add([]byte(`{"id":"17000000000000000000000001","text":{"a":1},"expiry":1e20,"channels":null,"dateCreated":-1}`))
	f.Add([]byte(`{"id":"17000000000000000000000001","text":"\ud800","channels":[1]}`))
	f.Add([]byte(`{"id":"17000000000000000000000001","text":{},"sender":{"type":1,"id":"ab"},"userParams":{"1":{"a":1},"2":3},"dictionary":{"d":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data, store.DefaultTTLs)
		if err != nil {
			return
		}
		if !protocol.ValidMID(m.MID) {
			t.Fatalf("accepted id %q", m.MID)
		}
		if !utf8.Valid(m.Body) || !utf8.Valid(m.Dictionary) {
			t.Fatalf("decoded a message that is not UTF-8: %q %q", m.Body, m.Dictionary)
		}
		// What decodes encodes back to the same message.
		again, err := decode([]byte(encode(m)), store.DefaultTTLs)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if again.MID != m.MID || string(again.Body) != string(m.Body) || !slices.Equal(again.Channels, m.Channels) ||
			again.Expiry != m.Expiry || again.Created.UnixMilli() != m.Created.UnixMilli() ||
			again.Sender != m.Sender || len(again.UserParams) != len(m.UserParams) || string(again.Dictionary) != string(m.Dictionary) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

func TestLayout(t *testing.T) {
	l := newLayout("", false, false, false)
	if l.message("1") != "message:1" || l.channel("c") != "channel:c:messages" || l.online("c") != "online:c" ||
		l.counter() != "server:messagecounter" || l.startDate() != "server:startdate" || l.stats() != "stats" ||
		l.publishChannel("u") != "pushserver:u" || l.subscription() != "pushserver:*" || l.publishCommand() != "PUBLISH" {
		t.Fatalf("original layout differs: %+v", l)
	}
	if l := newLayout("a*[b]:", false, false, false); l.subscription() != `a\*\[b\]:pushserver:*` || l.message("1") != "a*[b]:message:1" {
		t.Fatalf("prefix not escaped in the pattern: %q", l.subscription())
	}
	for prefix, want := range map[string]string{
		"": "{pushpull}", "pp:": "pp:{pushpull}", "{pp}:": "{pp}:", "{}x": "{}x{pushpull}", "}{a}": "}{a}",
	} {
		if got := newLayout(prefix, true, false, false).prefix; got != want {
			t.Errorf("cluster prefix of %q = %q, want %q", prefix, got, want)
		}
	}
	if l := newLayout("", true, false, false); l.publishChannel("u") != "{pushpull}pushserver" || l.subscription() != "{pushpull}pushserver" || l.publishCommand() != "SPUBLISH" {
		t.Fatalf("cluster pub/sub: %+v", l)
	}
}

func TestOptionsFromConfig(t *testing.T) {
	c := &config.Config{ProcessUniqueID: "p", PublishMode: true, Storage: config.Storage{
		Type: "redis", MessageTTL: 10, ChannelTTL: 20, OnlineTTL: 30, OnlineDelta: 1.5,
		Host: "redis", Port: 7000, Password: "pw", Username: "u", DB: 2, TLS: true, Prefix: "x:",
	}}
	o := OptionsFromConfig(c)
	if !slices.Equal(o.Client.InitAddress, []string{"redis:7000"}) || o.Client.Password != "pw" || o.Client.Username != "u" ||
		o.Client.SelectDB != 2 || o.Client.TLSConfig == nil || o.Prefix != "x:" || !o.PublishMode || o.ProcessUniqueID != "p" ||
		o.TTLs != (store.TTLs{Message: 10 * time.Second, Channel: 20 * time.Second, Default: store.Transient}) || o.OnlineTTL != 30*time.Second ||
		o.OnlineDelta != 1500*time.Millisecond || o.Client.Sentinel.MasterSet != "" {
		t.Fatalf("options %+v", o)
	}
	c.Storage = config.Storage{Socket: "/run/redis.sock"}
	if o := OptionsFromConfig(c); !slices.Equal(o.Client.InitAddress, []string{"/run/redis.sock"}) {
		t.Fatalf("socket: %v", o.Client.InitAddress)
	}
	c.Storage = config.Storage{}
	if o := OptionsFromConfig(c); !slices.Equal(o.Client.InitAddress, []string{"127.0.0.1:6379"}) {
		t.Fatalf("default: %v", o.Client.InitAddress)
	}
	c.Storage = config.Storage{Addrs: []string{"s1:26379", "s2:26379"}, Master: "mymaster", Password: "pw"}
	if o := OptionsFromConfig(c); !slices.Equal(o.Client.InitAddress, c.Storage.Addrs) || o.Client.Sentinel.MasterSet != "mymaster" {
		t.Fatalf("sentinel: %+v", o.Client)
	}
}
