// Package config reads the server's configuration: the original push
// server's config.json shape, with pushpull's own additions, overridden by
// environment variables and command-line flags.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration. JSON names follow the original
// config.json; fields marked "pushpull" are additions. The json and config
// tags of Config and the types in it are the one list of the file's keys
// (see keys.go).
type Config struct {
	Servers         []Server `json:"servers"`
	Security        Security `json:"security"`
	Storage         Storage  `json:"storage"`
	PublishMode     bool     `json:"publishMode"` // this process only publishes: no subscribers
	ClusterMode     bool     `json:"clusterMode"`
	ProcessUniqueID string   `json:"processUniqueId"`

	Polling   Polling   `json:"polling"`   // pushpull
	WebSocket WebSocket `json:"websocket"` // pushpull
	Limits    Limits    `json:"limits"`
	// ShutdownTimeout is how long a graceful stop waits for clients and
	// in-flight publishes, in seconds (pushpull).
	ShutdownTimeout float64 `json:"shutdownTimeout"`
	Log             Log     `json:"log"`     // pushpull
	Backend         Backend `json:"backend"` // pushpull
	WebPush         WebPush `json:"webPush"` // pushpull

	// idGenerated: UniqueID made processUniqueId up, none was configured.
	idGenerated bool

	// Ignored lists the keys of the file Decode did not know and skipped,
	// as JSON paths, so the server can log them: a misspelt key is
	// otherwise silently without effect. Keys the original server used
	// and pushpull does not (duplicatePub, debug, ...) are not listed.
	Ignored []string `json:"-"`
	// Aliased lists the keys of the file read under another spelling
	// (storage.messageTLL as messageTTL), which the original server did
	// not read: with it, such a setting had no effect.
	Aliased []string `json:"-"`
}

// Server is one listening socket and the routes it serves.
type Server struct {
	Name     string `json:"name"`
	Port     int    `json:"port" config:"required"` // 0: any free port
	Hostname string `json:"hostname"`
	Backlog  int    `json:"backlog"`
	SSL      *SSL   `json:"ssl,omitempty"`
	Routes   Routes `json:"routes"`
}

// SSL makes a server serve TLS.
type SSL struct {
	Key              string `json:"key"`
	Cert             string `json:"cert"`
	Ciphers          string `json:"ciphers,omitempty"`
	HonorCipherOrder bool   `json:"honorCipherOrder,omitempty"`
	DHParam          string `json:"dhparam,omitempty"`
}

// Routes are path prefixes; each may be given as a string or a list.
type Routes struct {
	Sub  []string `json:"sub,omitempty"`  // long polling and WebSocket
	Pub  []string `json:"pub,omitempty"`  // backend publish and channel online stats
	Stat []string `json:"stat,omitempty"` // process statistics
	Rest []string `json:"rest,omitempty"` // client publish over HTTP (original v4)
	API  []string `json:"api,omitempty"`  // backend JSON-RPC over HTTP (protocol 5)
	// pushpull
	Health  []string `json:"health,omitempty"`  // liveness: 200 while the process serves
	Ready   []string `json:"ready,omitempty"`   // readiness: 200 only while the engine stores and delivers
	Metrics []string `json:"metrics,omitempty"` // Prometheus metrics
	Backend []string `json:"backend,omitempty"` // the backend API: configs, publish to users and tags, online status
	Demo    []string `json:"demo,omitempty"`    // a demo page with the browser client
}

// Security holds the shared key channel ids are signed with.
type Security struct {
	Key  string `json:"key"`
	Algo string `json:"algo" config:"lower,nonzero"` // sha1 (default), sha256, sha512, md5
	// PreviousKey is a key that verifies beside Key for KeyGracePeriod
	// seconds from the start, or from the reload (SIGHUP) that set it
	// (pushpull). A reload that changes Key makes the key it replaces the
	// previous one by itself; this key is for a change by restart.
	PreviousKey string `json:"previousKey,omitempty"`
	// KeyGracePeriod is how long, in seconds, the previous key still
	// verifies after Key changed (pushpull; 0: not at all).
	KeyGracePeriod float64 `json:"keyGracePeriod"`
	// SignedPublish makes the publish route require signed channel ids
	// (pushpull; the original trusts its caller).
	SignedPublish bool `json:"signedPublish,omitempty"`
	// Clients turns on the shared ("cloud") mode (pushpull): clientId ->
	// that client's signature key. Every connection and publish must then
	// name a known clientId, is checked with its key instead of key, and
	// sees only the channels and users of its clientId.
	Clients map[string]string `json:"clients,omitempty"`
	// BackendKey authenticates callers of the backend API (pushpull):
	// they send "Authorization: Bearer <backendKey>". Empty disables the
	// API, whose routes then answer 404.
	BackendKey string `json:"backendKey,omitempty"`
	// TrustedOrigins are the browser origins ("https://admin.example",
	// or "*") allowed on the trusted routes: publish, api, stat, health,
	// ready, metrics and backend (pushpull). Those routes refuse other
	// requests a browser sends on a page's behalf; the pages of this
	// process's own demo route are always allowed.
	TrustedOrigins []string `json:"trustedOrigins,omitempty"`
	// TrustedProxies are the addresses ("10.0.0.5") and networks
	// ("10.0.0.0/24") of the reverse proxies in front of this process
	// (pushpull). A request from one of them is taken to come from the
	// client its X-Forwarded-For (the rightmost address that is not a
	// trusted proxy) or X-Real-IP names; from any other peer those headers
	// are ignored. The client address is what limits.maxConnPerIP counts
	// and what client rate limits fall back to.
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

// Storage selects and tunes the store. TTLs are in seconds.
type Storage struct {
	Type        string  `json:"type" config:"lower"` // memory (default) or redis
	MessageTTL  float64 `json:"messageTTL" config:"alias=messageTLL"`
	ChannelTTL  float64 `json:"channelTTL" config:"alias=channelTLL"`
	OnlineTTL   float64 `json:"onlineTTL" config:"alias=onlineTLL"`
	OnlineDelta float64 `json:"onlineDelta"`
	// DefaultExpiry is the life in seconds of a message published without
	// an expiry (no Message-Expiry, or expiry 0); 0 (the default, as the
	// original 2.0) delivers it to the clients connected and stores
	// nothing (pushpull).
	DefaultExpiry float64 `json:"defaultExpiry"`

	// Redis connection (type redis).
	Host     string   `json:"host,omitempty" config:"nonzero"`
	Port     int      `json:"port,omitempty" config:"nonzero"`
	Socket   string   `json:"socket,omitempty"`
	Addrs    []string `json:"addrs,omitempty"`    // pushpull: several seeds (Cluster) or sentinels
	Master   string   `json:"master,omitempty"`   // pushpull: Sentinel master set name
	Cluster  bool     `json:"cluster,omitempty"`  // pushpull: Redis Cluster
	Username string   `json:"username,omitempty"` // pushpull
	Password string   `json:"password,omitempty"` // pushpull
	DB       int      `json:"db,omitempty"`       // pushpull
	TLS      bool     `json:"tls,omitempty"`      // pushpull
	Prefix   string   `json:"prefix,omitempty"`   // pushpull: key prefix, "" as the original
	// Layout is whose Redis keys and values are used (pushpull): "1.0"
	// (the default) the push server 1.0's, "2.0" the push server 2.0's,
	// so that processes of either can share the Redis during a move.
	Layout string `json:"layout,omitempty"`
	// Tags is how Redis keys are grouped into hash slots (pushpull):
	// "single" (the default) keeps everything under one tag, so that a
	// Redis Cluster serves all from one master; "installation" gives each
	// shared-mode client (security.clients) keys, an id counter and a
	// pub/sub channel of its own under the tag {<clientId>}, spreading
	// installations over the masters (layout 1.0 only).
	Tags string `json:"tags,omitempty"`
	// WaitReplicas, above 0, answers a publish only once that many
	// replicas have it (Redis WAIT), so a failover loses nothing that was
	// answered (pushpull; default 0).
	WaitReplicas int `json:"waitReplicas,omitempty"`

	// Snapshot is a file the memory store is written to at a graceful stop
	// and read from at start, so a restart keeps history (pushpull; memory
	// storage only; "" = off).
	Snapshot string `json:"snapshot,omitempty"`

	// Bounds of the memory store (pushpull; 0 = unbounded): a channel past
	// its bounds loses its oldest messages, the store past its budget the
	// oldest of all.
	MaxChannelMessages int `json:"maxChannelMessages"`
	MaxChannelBytes    int `json:"maxChannelBytes"`
	MaxBytes           int `json:"maxBytes"`
}

// Polling tunes long polling (pushpull).
type Polling struct {
	Timeout float64 `json:"timeout"` // seconds a request is held before 304 (default 40)
}

// WebSocket tunes WebSocket connections (pushpull).
type WebSocket struct {
	PingInterval  float64 `json:"pingInterval"`  // seconds between pings (default 30); a peer silent for two intervals is dropped
	MaxQueueBytes int     `json:"maxQueueBytes"` // outgoing bytes a slow client may have pending before it is disconnected (default 1 MiB)
	MaxFrameBytes int     `json:"maxFrameBytes"` // largest message accepted from a client (default 1 MiB, the original's maxPayload)
}

// Limits bound requests.
type Limits struct {
	MaxPayload int `json:"maxPayload"` // largest publish body in bytes (default 1,000,000)
	// ClientMessages is how many messages per second one client (a
	// connection, or a sender's public channel on the REST route) may
	// publish, with bursts of up to ClientBurst (pushpull).
	ClientMessages int `json:"clientMessagesPerSecond"`
	ClientBurst    int `json:"clientBurst"`
	// RequestTimeout is how long, in seconds, a request body or a client's
	// WebSocket message may take to arrive whole once begun (pushpull).
	RequestTimeout float64 `json:"requestTimeout"`
	// MaxConnPerChannel is how many connections one private channel with
	// a public id may have on this process; a connection past it closes
	// the channel's oldest (0 = unlimited).
	MaxConnPerChannel int `json:"maxConnPerChannel"`
	// MaxConnPerIP is how many subscriber connections (WebSockets and
	// held long polls) one client address may have on this process; one
	// past it is refused with 429 (pushpull; 0 = unlimited). Behind a
	// proxy it counts the addresses security.trustedProxies lets the
	// proxy name.
	MaxConnPerIP int `json:"maxConnPerIP"`
	// MaxMessagesPerRequest and MaxChannelsPerRequest bound a protobuf
	// request (a client's or the backend's): its messages, and the
	// receivers of one message or the channels asked about (0 =
	// unlimited).
	MaxMessagesPerRequest int `json:"maxMessagesPerRequest"`
	MaxChannelsPerRequest int `json:"maxChannelsPerRequest"`
}

// Backend tunes the backend API (pushpull): the configs it hands out and
// the channels it issues.
type Backend struct {
	// PublicURL is the base URL clients reach the subscribe server at
	// ("https://push.example.com"); "" means http://<host:port> of the
	// first server serving sub routes.
	PublicURL string `json:"publicURL,omitempty"`
	// Version is server.version in the configs: 3 (text), 4 (protobuf)
	// or 5 (JSON-RPC, with a JWT).
	Version int `json:"version"`
	// ChannelWriteTTL is how long a channel is published to before a new
	// one replaces it; ChannelStorageTTL how long it stays readable, in
	// seconds.
	ChannelWriteTTL   float64 `json:"channelWriteTTL"`
	ChannelStorageTTL float64 `json:"channelStorageTTL"`
	// WatchTTL is how long a watch tag lasts when the caller names no
	// TTL, in seconds.
	WatchTTL float64 `json:"watchTTL"`
}

// WebPush configures notifications to users who are not connected,
// through the browsers' push services (pushpull). Without a VAPID private
// key it is off.
type WebPush struct {
	// VAPIDPrivateKey and VAPIDPublicKey are the application server's
	// key pair (pushpull vapid generates one), base64url; the public key
	// may be left out. Subject is the contact push services may use, a
	// mailto: or https: URI.
	VAPIDPrivateKey string `json:"vapidPrivateKey,omitempty"`
	VAPIDPublicKey  string `json:"vapidPublicKey,omitempty"`
	Subject         string `json:"subject,omitempty"`
	// DeferDelay is how long, in seconds, a deferred notification waits
	// before it is sent (if its user has not come back meanwhile).
	DeferDelay float64 `json:"deferDelay"`
	// MaxQueue bounds the notifications waiting to be sent.
	MaxQueue int `json:"maxQueue"`
	// MaxAttempts is how many times a notification is tried before it is
	// given up.
	MaxAttempts int `json:"maxAttempts"`
	// MessagesPerSecond bounds what this process sends;
	// UserMessagesPerMinute the notifications one user gets.
	MessagesPerSecond     float64 `json:"messagesPerSecond"`
	UserMessagesPerMinute float64 `json:"userMessagesPerMinute"`
	// AllowPrivateEndpoints lets subscriptions name push services on
	// addresses that are not public (loopback, private networks): off,
	// an endpoint a browser handed over cannot make the server post into
	// its own network.
	AllowPrivateEndpoints bool `json:"allowPrivateEndpoints,omitempty"`
}

// DefaultLifetime is storage.defaultExpiry as store.TTLs.Default takes
// it: -1 (transient) for 0.
func (s Storage) DefaultLifetime() time.Duration {
	if s.DefaultExpiry <= 0 {
		return -1
	}
	return Seconds(s.DefaultExpiry)
}

// Log selects logging (pushpull).
type Log struct {
	Level  string `json:"level" config:"lower"`  // debug, info (default), warn, error
	Format string `json:"format" config:"lower"` // text (default) or json
}

// Default returns the configuration used when no file is given: the
// original appliance's layout of one subscribe server (8010) and one
// publish server (9010), both on loopback so that a server started without
// a config file exposes nothing to the network.
func Default() *Config {
	return &Config{
		Servers: []Server{
			{
				Name:     "sub",
				Port:     8010,
				Hostname: "127.0.0.1",
				Routes: Routes{
					Sub:  []string{"/bitrix/sub/", "/bitrix/subws/"},
					Rest: []string{"/bitrix/rest/", "/bitrix/pubweb/"},
					Demo: []string{"/demo/"},
				},
			},
			{
				Name:     "pub",
				Port:     9010,
				Hostname: "127.0.0.1",
				Routes: Routes{
					Pub:     []string{"/bitrix/pub/"},
					API:     []string{"/bitrix/api/"},
					Stat:    []string{"/server-stat/"},
					Health:  []string{"/healthz"},
					Ready:   []string{"/readyz"},
					Metrics: []string{"/metrics"},
					Backend: []string{"/pushpull/"},
				},
			},
		},
		Security: Security{Algo: "sha1", KeyGracePeriod: 3600},
		Storage: Storage{
			Type:        "memory",
			MessageTTL:  86400,
			ChannelTTL:  86400,
			OnlineTTL:   120,
			OnlineDelta: 10,
			Host:        "127.0.0.1",
			Port:        6379,

			MaxChannelMessages: 10000,
			MaxChannelBytes:    16 << 20,
			MaxBytes:           512 << 20,
		},
		Polling: Polling{Timeout: 40},
		WebSocket: WebSocket{
			PingInterval:  30,
			MaxQueueBytes: 1 << 20,
			MaxFrameBytes: 1 << 20,
		},
		Limits: Limits{
			MaxPayload: 1000000, ClientMessages: 20, ClientBurst: 100, RequestTimeout: 30,
			MaxConnPerChannel: 100, MaxMessagesPerRequest: 100, MaxChannelsPerRequest: 100,
		},
		ShutdownTimeout: 10,
		Log:             Log{Level: "info", Format: "text"},
		Backend: Backend{
			Version:           3,
			ChannelWriteTTL:   43205,
			ChannelStorageTTL: 86400,
			WatchTTL:          3600,
		},
		WebPush: WebPush{
			DeferDelay:            300,
			MaxQueue:              100000,
			MaxAttempts:           10,
			MessagesPerSecond:     100,
			UserMessagesPerMinute: 30,
		},
	}
}

// UniqueID returns processUniqueId. When none is configured it generates
// one (16 random bytes in hex) and stores it in the Config, so every later
// call answers the same; call it once at startup, before the Config is
// shared between goroutines. The id names this process in the shared
// Redis "stats" hash and on the pushserver:<id> fan-out channel, so two
// processes must never share one.
func (c *Config) UniqueID() string {
	if c.ProcessUniqueID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		c.ProcessUniqueID = hex.EncodeToString(b[:])
		c.idGenerated = true
	}
	return c.ProcessUniqueID
}

// UniqueIDGenerated reports whether UniqueID made processUniqueId up
// because none was configured.
func (c *Config) UniqueIDGenerated() bool { return c.idGenerated }

// Addr is the address the server listens on, for net.Listen. An empty
// hostname means all interfaces.
func (s Server) Addr() string {
	host := strings.TrimSuffix(strings.TrimPrefix(s.Hostname, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// RedisAddrs returns the Redis addresses to connect to: the unix socket
// when one is set, else addrs when set, else host:port.
func (s Storage) RedisAddrs() []string {
	switch {
	case s.Socket != "":
		return []string{s.Socket}
	case len(s.Addrs) > 0:
		return s.Addrs
	}
	port := s.Port
	if port == 0 {
		port = 6379
	}
	return []string{net.JoinHostPort(s.Host, strconv.Itoa(port))}
}

// Seconds converts a configured number of seconds to a Duration. Values
// beyond the range of a Duration saturate; NaN gives 0.
func Seconds(f float64) time.Duration {
	d := f * float64(time.Second)
	switch {
	case math.IsNaN(d):
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	case d <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(math.Round(d))
}
