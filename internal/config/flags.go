package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// override is one setting that both an environment variable and a flag
// can give. One that names a key sets it as the file's value would be
// read (keys.go), the others set does.
type override struct {
	flag, key, usage string
	set              func(c *Config, v string) error
}

// overrides in the order they apply: --redis comes before --storage so
// that an explicit storage type wins over the type --redis implies.
var overrides = []override{
	{flag: "key", key: "security.key", usage: "security `key` channel ids are signed with; prefer the env var, flags show in ps"},
	{flag: "backend-key", key: "security.backendKey", usage: "`key` callers of the backend API present as a Bearer token; prefer the env var"},
	{flag: "vapid-private-key", key: "webPush.vapidPrivateKey", usage: "Web Push VAPID private `key` (pushpull vapid makes one); prefer the env var"},
	{flag: "algo", key: "security.algo", usage: "signature algorithm: sha1, sha256, sha512 or md5"},
	{flag: "redis", usage: "Redis `ADDR[,ADDR...]`: host:port, a unix socket path, or several seeds/sentinels; implies --storage redis",
		set: setRedis},
	{flag: "storage", key: "storage.type", usage: "store: memory or redis"},
	{flag: "redis-password", key: "storage.password", usage: "Redis `password`"},
	{flag: "redis-db", key: "storage.db", usage: "Redis database `number`"},
	{flag: "redis-layout", key: "storage.layout", usage: "Redis key `layout`: 1.0 (the push server 1.0's) or 2.0 (the push server 2.0's)"},
	{flag: "sub-listen", usage: "`HOST:PORT` of the first server serving sub routes"},
	{flag: "pub-listen", usage: "`HOST:PORT` of the first server serving pub routes; the same as --sub-listen makes one server"},
	{flag: "message-ttl", key: "storage.messageTTL", usage: "`seconds` a message is kept"},
	{flag: "channel-ttl", key: "storage.channelTTL", usage: "`seconds` a channel's message list is kept"},
	{flag: "poll-timeout", key: "polling.timeout", usage: "`seconds` a long poll is held before 304"},
	{flag: "publish-mode", key: "publishMode", usage: "only publish, serve no subscribers"},
	{flag: "process-id", key: "processUniqueId", usage: "unique `id` of this process among those sharing a Redis"},
	{flag: "log-level", key: "log.level", usage: "log `level`: debug, info, warn or error"},
}

// envName is the environment variable of the flag: --redis-db is
// PUSHPULL_REDIS_DB.
func envName(flag string) string {
	return "PUSHPULL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// help is the flag's usage line, naming its key and variable.
func (o override) help() string {
	if o.key == "" {
		return o.usage + " (env " + envName(o.flag) + ")"
	}
	return o.usage + " (" + o.key + "; env " + envName(o.flag) + ")"
}

// boolean reports whether the key is true or false, so that the flag may
// stand alone (--publish-mode).
func (o override) boolean() bool {
	v, _, ok := fieldAt(&Config{}, o.key)
	return ok && v.Kind() == reflect.Bool
}

// apply sets the override's value v, given by name (a flag or a variable),
// in c.
func (o override) apply(c *Config, name, v string) error {
	if o.set != nil {
		if err := o.set(c, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	dst, f, ok := fieldAt(c, o.key)
	if !ok {
		panic("config: --" + o.flag + " names no key " + o.key)
	}
	d := &decoder{}
	d.value(dst, f, v, name)
	return errors.Join(d.errs...)
}

// Parse builds the configuration of `pushpull serve` from its command-line
// arguments (without the command names) and the environment (getenv; nil
// means os.Getenv). Precedence, lowest first: Default, the config file
// (--config or PUSHPULL_CONFIG), environment variables, flags. An empty
// environment variable counts as unset. The result is validated and has
// its processUniqueId filled in. Usage and flag errors are printed to out
// (nil means os.Stderr); -h gives flag.ErrHelp.
func Parse(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if out == nil {
		out = os.Stderr
	}
	fs := flag.NewFlagSet("pushpull serve", flag.ContinueOnError)
	fs.SetOutput(out)
	configPath := fs.String("config", "", "config `FILE` in the original push server's config.json shape (env "+envName("config")+")")
	values := make([]*flagValue, len(overrides))
	for i, o := range overrides {
		values[i] = &flagValue{boolean: o.boolean()}
		fs.Var(values[i], o.flag, o.help())
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pushpull serve [flags]\n\nPrecedence: defaults < config file < environment < flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	path := *configPath
	if path == "" {
		path = getenv(envName("config"))
	}
	c := Default()
	if path != "" {
		var err error
		if c, err = Load(path); err != nil {
			return nil, err
		}
	}

	var errs []error
	var subListen, pubListen string
	apply := func(o override, name, v string) {
		switch o.flag {
		case "sub-listen":
			subListen = v
			return
		case "pub-listen":
			pubListen = v
			return
		}
		if err := o.apply(c, name, v); err != nil {
			errs = append(errs, err)
		}
	}
	for _, o := range overrides {
		if v := getenv(envName(o.flag)); v != "" {
			apply(o, envName(o.flag), v)
		}
	}
	for i, o := range overrides {
		if values[i].set {
			apply(o, "--"+o.flag, values[i].value)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.listen(subListen, pubListen); err != nil {
		return nil, err
	}
	c.UniqueID()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// flagValue records the text of a flag and whether it was given, so that
// only given flags override the layers below.
type flagValue struct {
	value   string
	set     bool
	boolean bool
}

func (f *flagValue) String() string { return f.value }

func (f *flagValue) Set(v string) error {
	f.value, f.set = v, true
	return nil
}

// IsBoolFlag lets a boolean flag stand alone (--publish-mode).
func (f *flagValue) IsBoolFlag() bool { return f.boolean }

// setRedis points the store at one Redis (host:port, or a unix socket
// path), or at several seeds or sentinels (storage.addrs).
func setRedis(c *Config, v string) error {
	var addrs []string
	for a := range strings.SplitSeq(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	s := &c.Storage
	s.Type = "redis"
	s.Socket, s.Addrs = "", nil
	switch {
	case len(addrs) == 0:
		return errors.New("no address")
	case len(addrs) > 1:
		for i, a := range addrs {
			if !strings.Contains(a, ":") || strings.HasSuffix(a, "]") {
				addrs[i] = net.JoinHostPort(strings.Trim(a, "[]"), "6379")
			}
		}
		s.Addrs = addrs
	case strings.HasPrefix(addrs[0], "/"):
		s.Socket = addrs[0]
	default:
		host, port, err := splitHostPort(addrs[0], 6379, 1)
		if err != nil {
			return err
		}
		s.Host, s.Port = host, port
	}
	return nil
}

// splitHostPort splits "host:port" with a port of at least lowest; a bare
// host gets defaultPort, or is refused when defaultPort is 0.
func splitHostPort(addr string, defaultPort, lowest int) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if defaultPort == 0 || strings.Count(addr, ":") == 1 {
			return "", 0, fmt.Errorf("%q is not host:port", addr)
		}
		return strings.Trim(addr, "[]"), defaultPort, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < lowest || n > 65535 {
		return "", 0, fmt.Errorf("%q: %q is not a port (%d-65535)", addr, port, lowest)
	}
	return host, n, nil
}

// listen applies --sub-listen and --pub-listen: each replaces the address
// of the first server serving sub (pub) routes. When both name one address
// the two servers become one serving all their routes; when they name two
// addresses for a server serving both, it is split in two, the sub routes
// on one and the rest on the other. Port 0 is a free port for each server:
// two addresses on it are two listeners.
func (c *Config) listen(subAddr, pubAddr string) error {
	if subAddr == "" && pubAddr == "" {
		return nil
	}
	first := func(has func(Server) bool) int {
		return slices.IndexFunc(c.Servers, has)
	}
	si := first(func(s Server) bool { return len(s.Routes.Sub) > 0 })
	pi := first(func(s Server) bool { return len(s.Routes.Pub) > 0 })
	var sh, ph string
	var sp, pp int
	var err error
	if subAddr != "" {
		if si < 0 {
			return errors.New("--sub-listen: no server serves sub routes")
		}
		if sh, sp, err = splitHostPort(subAddr, 0, 0); err != nil {
			return fmt.Errorf("--sub-listen: %w", err)
		}
	}
	if pubAddr != "" {
		if pi < 0 {
			return errors.New("--pub-listen: no server serves pub routes")
		}
		if ph, pp, err = splitHostPort(pubAddr, 0, 0); err != nil {
			return fmt.Errorf("--pub-listen: %w", err)
		}
	}
	same := subAddr != "" && pubAddr != "" && normalHost(sh) == normalHost(ph) && sp == pp && sp != 0
	switch {
	case subAddr != "" && pubAddr != "" && si == pi && !same:
		// Split: the public routes (sub, rest for client publishes, the
		// demo page) stay with the server (and its name), the others move
		// to a copy of it.
		s := &c.Servers[si]
		pub := *s
		pub.Name = s.Name + "-pub"
		pub.Routes.Sub = nil
		pub.Routes.Rest = nil
		pub.Routes.Demo = nil
		s.Routes = Routes{Sub: s.Routes.Sub, Rest: s.Routes.Rest, Demo: s.Routes.Demo}
		s.Hostname, s.Port = sh, sp
		pub.Hostname, pub.Port = ph, pp
		c.Servers = slices.Insert(c.Servers, si+1, pub)
	case same && si != pi:
		s, p := &c.Servers[si], c.Servers[pi]
		if !sameSSL(s.SSL, p.SSL) {
			return fmt.Errorf("--sub-listen and --pub-listen name one address, but servers[%d] and servers[%d] differ in ssl", si, pi)
		}
		s.Hostname, s.Port = sh, sp
		r := &s.Routes
		r.Sub = slices.Concat(r.Sub, p.Routes.Sub)
		r.Pub = slices.Concat(r.Pub, p.Routes.Pub)
		r.Stat = slices.Concat(r.Stat, p.Routes.Stat)
		r.Rest = slices.Concat(r.Rest, p.Routes.Rest)
		r.API = slices.Concat(r.API, p.Routes.API)
		r.Health = slices.Concat(r.Health, p.Routes.Health)
		r.Ready = slices.Concat(r.Ready, p.Routes.Ready)
		r.Metrics = slices.Concat(r.Metrics, p.Routes.Metrics)
		r.Backend = slices.Concat(r.Backend, p.Routes.Backend)
		r.Demo = slices.Concat(r.Demo, p.Routes.Demo)
		c.Servers = slices.Delete(c.Servers, pi, pi+1)
	default:
		if subAddr != "" {
			c.Servers[si].Hostname, c.Servers[si].Port = sh, sp
		}
		if pubAddr != "" {
			c.Servers[pi].Hostname, c.Servers[pi].Port = ph, pp
		}
	}
	return nil
}

func sameSSL(a, b *SSL) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
