package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
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
	{flag: "trusted-proxies", usage: "`ADDR[,NET...]` of the reverse proxies whose X-Forwarded-For and X-Real-IP name the client (security.trustedProxies)",
		set: func(c *Config, v string) error {
			c.Security.TrustedProxies = nil
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.Security.TrustedProxies = append(c.Security.TrustedProxies, p)
				}
			}
			return nil
		}},
}

// sourceFlags are the flags that say where the configuration comes from;
// their variables stand for them when none is given.
var sourceFlags = []string{"config", "config-dir", "sysconfig", "per-file"}

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

// Parse builds the configuration of one `pushpull serve` process from its
// command-line arguments (without the command names) and the environment
// (getenv; nil means os.Getenv): ParseServe's, which it refuses when that
// is one process per file.
func Parse(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	s, err := ParseServe(args, getenv, out)
	if err != nil {
		return nil, err
	}
	if s.PerFile {
		return nil, errors.New("--per-file: one process per file, not one configuration")
	}
	return s.Processes[0].Config, nil
}

// ParseServe builds the configuration of `pushpull serve` from its
// command-line arguments (without the command names) and the environment
// (getenv; nil means os.Getenv). Precedence, lowest first: Default, the
// configuration's source, environment variables (PUSHPULL_*), flags. An
// empty environment variable counts as unset.
//
// The source is, in this order: the config files (--config, repeatable,
// and every push-server-{sub,pub}-PORT.json of --config-dir), merged into
// one process serving all their servers, or one process each with
// --per-file; else the appliance's sysconfig (--sysconfig); else the
// defaults. The official Docker image's variables (PUSH_SUB_MODE or
// PUSH_PUB_MODE, see applyDockerEnv) apply over the defaults or over the
// files PUSHPULL_CONFIG names (as the pushpull image names its config),
// never over what the command line names. When no source flag is given,
// PUSHPULL_CONFIG,
// PUSHPULL_CONFIG_DIR, PUSHPULL_SYSCONFIG and PUSHPULL_PER_FILE stand for
// them. A sysconfig given with files is checked against them: a key that
// differs is an error.
//
// Each process's configuration is validated and has its processUniqueId
// filled in. Usage and flag errors are printed to out (nil means
// os.Stderr); -h gives flag.ErrHelp. On an error the Setup returned, when
// not nil, holds the notes gathered so far.
func ParseServe(args []string, getenv func(string) string, out io.Writer) (*Setup, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if out == nil {
		out = os.Stderr
	}
	fs := flag.NewFlagSet("pushpull serve", flag.ContinueOnError)
	fs.SetOutput(out)
	var files []string
	fs.Func("config", "config `FILE` in the original push server's config.json shape; repeat it for several, served by one process (env "+envName("config")+")", func(v string) error {
		files = append(files, v)
		return nil
	})
	dir := fs.String("config-dir", "", "the appliance's config `DIR` (/etc/push-server): every push-server-{sub,pub}-PORT.json in it (env "+envName("config-dir")+")")
	sysconfig := fs.String("sysconfig", "", "the appliance's sysconfig `FILE` (/etc/sysconfig/push-server-multi): its processes' ports, key and Redis socket (env "+envName("sysconfig")+")")
	perFile := fs.Bool("per-file", false, "run one process per config file, as the appliance does, rather than one serving them all (env "+envName("per-file")+")")
	values := make([]*flagValue, len(overrides))
	for i, o := range overrides {
		values[i] = &flagValue{boolean: o.boolean()}
		fs.Var(values[i], o.flag, o.help())
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pushpull serve [flags]\n\nPrecedence: defaults < config files, sysconfig or Docker variables < environment < flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fromFlags := slices.ContainsFunc(sourceFlags, func(f string) bool { return given[f] })
	if !fromFlags {
		if v := getenv(envName("config")); v != "" {
			files = []string{v}
		}
		*dir = getenv(envName("config-dir"))
		*sysconfig = getenv(envName("sysconfig"))
		if v := getenv(envName("per-file")); v != "" {
			b, err := parseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", envName("per-file"), err)
			}
			*perFile = b
		}
	}

	applianceSource := *dir != "" || *sysconfig != ""
	setup, err := gather(files, *dir, *sysconfig, *perFile, getenv)
	if err != nil {
		return setup, err
	}
	if dockerEnvSet(getenv) {
		// The official image's variables, over what the environment
		// names (the pushpull image's PUSHPULL_CONFIG), not over what the
		// command line does.
		switch {
		case fromFlags:
			setup.Notes = append(setup.Notes, "PUSH_SUB_MODE, PUSH_PUB_MODE, ...: the Docker image's variables are not read when the command line names the configuration")
		case setup.PerFile:
			return setup, errors.New("PUSH_SUB_MODE, PUSH_PUB_MODE: the Docker image's variables configure one process, not --per-file's")
		default:
			_, notes, err := applyDockerEnv(setup.Processes[0].Config, getenv)
			setup.Notes = append(setup.Notes, notes...)
			if err != nil {
				return setup, err
			}
			setup.Processes[0].Files = nil
			setup.Sources = append(setup.Sources, "the Docker image's variables (PUSH_SUB_MODE, PUSH_PUB_MODE, PUSH_SECURITY_KEY, REDIS_HOST, ...) over it")
		}
	}
	for i, o := range overrides {
		if values[i].set {
			setup.ChildArgs = append(setup.ChildArgs, "--"+o.flag+"="+values[i].value)
		}
	}
	if setup.PerFile && (values[slices.IndexFunc(overrides, func(o override) bool { return o.flag == "process-id" })].set ||
		getenv(envName("process-id")) != "") {
		return setup, errors.New("--process-id: every process of --per-file needs its own id: set processUniqueId in each file")
	}

	var errs []error
	layoutGiven := values[slices.IndexFunc(overrides, func(o override) bool { return o.flag == "redis-layout" })].set ||
		getenv(envName("redis-layout")) != ""
	for pi := range setup.Processes {
		p := &setup.Processes[pi]
		c := p.Config
		if applianceSource && c.Storage.Type == "redis" && c.Storage.Layout == "" && !layoutGiven && pi == 0 {
			setup.Notes = append(setup.Notes, "storage.layout is not set: pushpull reads and writes Redis in the push server 1.0's layout; "+
				"the files of the push server 2.0 (BitrixVM 7.3 and later) need --redis-layout 2.0, or it sees neither their history nor their live messages (docs/migration-redis.md)")
		}
		var subListen, pubListen, keyBy string
		sourceKey := c.Security.Key
		apply := func(o override, name, v string) {
			switch o.flag {
			case "key":
				keyBy = name
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
		if keyBy != "" && sourceKey != "" && c.Security.Key != sourceKey && pi == 0 {
			// The package's /etc/default/pushpull makes up a PUSHPULL_KEY,
			// which would silently replace the installation's.
			setup.Notes = append(setup.Notes, fmt.Sprintf("security.key: %s (%s) replaces the key of %s (%s): the Bitrix module must have the one %s gives, or its messages silently stop",
				keyBy, KeyHint(c.Security.Key), strings.Join(setup.Sources, ", "), KeyHint(sourceKey), keyBy))
		}
		if (subListen != "" || pubListen != "") && setup.PerFile {
			errs = append(errs, errors.New("--sub-listen and --pub-listen name the servers of one process, not of --per-file's"))
			break
		}
		if err := c.listen(subListen, pubListen); err != nil {
			errs = append(errs, err)
			continue
		}
		c.UniqueID()
		if err := c.Validate(); err != nil {
			if len(p.Files) == 1 {
				err = prefix(p.Files[0], err)
			}
			errs = append(errs, err)
		}
	}
	return setup, errors.Join(errs...)
}

// gather reads the configuration's source (see ParseServe).
func gather(files []string, dir, sysconfig string, perFile bool, getenv func(string) string) (*Setup, error) {
	s := &Setup{PerFile: perFile}
	if dir != "" {
		found, skipped, err := DirFiles(dir)
		if err != nil {
			return s, err
		}
		for _, f := range skipped {
			s.Notes = append(s.Notes, f+": not read (not push-server-sub-PORT.json or push-server-pub-PORT.json)")
		}
		files = append(files, found...)
	}
	var vars map[string]string
	if sysconfig != "" {
		var err error
		if vars, err = LoadSysconfig(sysconfig); err != nil {
			return s, err
		}
	}
	switch {
	case len(files) > 0:
		s.Sources = append(s.Sources, "config files "+strings.Join(files, ", "))
		srcs, err := loadFiles(files)
		if err != nil {
			return s, err
		}
		s.Notes = append(s.Notes, fileNotes(srcs)...)
		if perFile {
			if err := crossCheck(srcs, true); err != nil {
				return s, err
			}
			for _, src := range srcs {
				s.Processes = append(s.Processes, Process{Files: []string{src.path}, Config: src.cfg})
			}
		} else {
			c, err := mergeFiles(srcs)
			if err != nil {
				return s, err
			}
			s.Processes = []Process{{Files: files, Config: c}}
		}
		if vars != nil {
			s.Sources = append(s.Sources, "checked against sysconfig "+sysconfig)
			notes, err := checkSysconfig(sysconfig, vars, srcs)
			s.Notes = append(s.Notes, notes...)
			if err != nil {
				return s, err
			}
		}
	case perFile:
		return s, errors.New("--per-file: no config files (--config or --config-dir)")
	case vars != nil:
		s.Sources = append(s.Sources, "sysconfig "+sysconfig)
		c, notes, err := FromSysconfig(vars)
		for _, n := range notes {
			s.Notes = append(s.Notes, sysconfig+": "+n)
		}
		if err != nil {
			return s, fmt.Errorf("%s: %w", sysconfig, err)
		}
		s.Processes = []Process{{Config: c}}
	default:
		s.Sources = append(s.Sources, "defaults")
		s.Processes = []Process{{Config: Default()}}
	}
	return s, nil
}

// checkSysconfig compares the config files with the sysconfig the
// appliance's init script writes them from: a security key that differs
// is an error (the next "push-server-multi configs" rewrites the files
// with the sysconfig's); ports and a Redis socket that differ are noted.
func checkSysconfig(path string, vars map[string]string, srcs []fileSource) (notes []string, err error) {
	var errs []error
	key := vars["SECURITY_KEY"]
	for _, s := range srcs {
		if s.cfg.Security.Key != key {
			errs = append(errs, fmt.Errorf("security.key: %s gives another key than SECURITY_KEY of %s (%s; %s): push-server-multi writes the sysconfig's key into the files (configs, reset), so one of them is stale, and the Bitrix module must have the one that runs", s.path, path, KeyHint(s.cfg.Security.Key), KeyHint(key)))
		}
		if sock := orDefault(vars["REDIS_SOCK"], "/tmp/redis.sock"); s.cfg.Storage.Socket != sock {
			notes = append(notes, fmt.Sprintf("%s: storage.socket %q, the sysconfig's REDIS_SOCK %q", s.path, s.cfg.Storage.Socket, sock))
		}
	}
	sub, pub, perr := SysconfigPorts(vars)
	if perr != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, perr))
	}
	want := map[int]bool{}
	for _, p := range slices.Concat(sub, pub) {
		want[p] = true
	}
	have := map[int]bool{}
	for _, s := range srcs {
		for _, sv := range s.cfg.Servers {
			have[sv.Port] = true
			if perr == nil && !want[sv.Port] {
				notes = append(notes, fmt.Sprintf("%s: port %d is not one of the sysconfig's (BASE_SUB, ID_SUB, BASE_PUB, ID_PUB)", s.path, sv.Port))
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if !have[p] {
			notes = append(notes, fmt.Sprintf("%s: port %d of the sysconfig is in no config file", path, p))
		}
	}
	return notes, errors.Join(errs...)
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
