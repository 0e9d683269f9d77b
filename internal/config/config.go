// Package config reads the server's configuration: the original push
// server's config.json shape, with pushpull's own additions, overridden by
// environment variables and command-line flags.
package config

// Config is the whole configuration. JSON names follow the original
// config.json; fields marked "pushpull" are additions.
type Config struct {
	Servers         []Server `json:"servers"`
	Security        Security `json:"security"`
	Storage         Storage  `json:"storage"`
	PublishMode     bool     `json:"publishMode"` // this process only publishes: no subscribers
	ClusterMode     bool     `json:"clusterMode"`
	ProcessUniqueID string   `json:"processUniqueId"`

	Polling   Polling   `json:"polling"`   // pushpull
	WebSocket WebSocket `json:"websocket"` // pushpull
	Limits    Limits    `json:"limits"`    // pushpull
	// ShutdownTimeout is how long a graceful stop waits for clients and
	// in-flight publishes, in seconds (pushpull).
	ShutdownTimeout float64 `json:"shutdownTimeout"`
	Log             Log     `json:"log"` // pushpull
}

// Server is one listening socket and the routes it serves.
type Server struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
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
	// pushpull
	Health  []string `json:"health,omitempty"`  // liveness: 200 while the process serves
	Ready   []string `json:"ready,omitempty"`   // readiness: 200 only while the engine stores and delivers
	Metrics []string `json:"metrics,omitempty"` // Prometheus metrics
}

// Security holds the shared key channel ids are signed with.
type Security struct {
	Key  string `json:"key"`
	Algo string `json:"algo"` // sha1 (default), sha256, sha512, md5
	// SignedPublish makes the publish route require signed channel ids
	// (pushpull; the original trusts its caller).
	SignedPublish bool `json:"signedPublish,omitempty"`
}

// Storage selects and tunes the store. TTLs are in seconds.
type Storage struct {
	Type        string  `json:"type"` // memory (default) or redis
	MessageTTL  float64 `json:"messageTTL"`
	ChannelTTL  float64 `json:"channelTTL"`
	OnlineTTL   float64 `json:"onlineTTL"`
	OnlineDelta float64 `json:"onlineDelta"`

	// Redis connection (type redis).
	Host     string   `json:"host,omitempty"`
	Port     int      `json:"port,omitempty"`
	Socket   string   `json:"socket,omitempty"`
	Addrs    []string `json:"addrs,omitempty"`    // pushpull: several seeds (Cluster) or sentinels
	Master   string   `json:"master,omitempty"`   // pushpull: Sentinel master set name
	Cluster  bool     `json:"cluster,omitempty"`  // pushpull: Redis Cluster
	Username string   `json:"username,omitempty"` // pushpull
	Password string   `json:"password,omitempty"` // pushpull
	DB       int      `json:"db,omitempty"`       // pushpull
	TLS      bool     `json:"tls,omitempty"`      // pushpull
	Prefix   string   `json:"prefix,omitempty"`   // pushpull: key prefix, "" as the original
}

// Polling tunes long polling (pushpull).
type Polling struct {
	Timeout float64 `json:"timeout"` // seconds a request is held before 304 (default 40)
}

// WebSocket tunes WebSocket connections (pushpull).
type WebSocket struct {
	PingInterval  float64 `json:"pingInterval"`  // seconds between pings (default 30); a peer silent for two intervals is dropped
	MaxQueueBytes int     `json:"maxQueueBytes"` // outgoing bytes a slow client may have pending before it is disconnected (default 1 MiB)
	MaxFrameBytes int     `json:"maxFrameBytes"` // largest frame accepted from a client (default 64 KiB)
}

// Limits bound requests (pushpull).
type Limits struct {
	MaxPayload int `json:"maxPayload"` // largest publish body in bytes (default 1,000,000)
}

// Log selects logging (pushpull).
type Log struct {
	Level  string `json:"level"`  // debug, info (default), warn, error
	Format string `json:"format"` // text (default) or json
}
