package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Load reads and decodes the config file at path, then validates it. Every
// error names the file.
func Load(path string) (*Config, error) {
	c, err := load(path)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, prefix(path, err)
	}
	return c, nil
}

func load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	c, err := decode(data)
	if err != nil {
		return nil, prefix(path, err)
	}
	return c, nil
}

// Decode parses a config file in the original push server's config.json
// shape, fills what it does not give from Default, and validates the
// result. A file's servers list replaces the default servers entirely.
//
// It reads files the way the original's users wrote them: numbers may be
// JSON strings ("6379"), booleans may be "true"/"false" strings, a route
// may be one string or a list of strings, ssl may be absent or null. Keys
// it does not know are skipped and listed in Config.Ignored.
func Decode(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode is Decode without validation.
func decode(data []byte) (*Config, error) {
	// Files saved by Windows editors start with a byte order mark, which
	// Node's JSON.parse accepted as whitespace in practice (require strips it).
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, syntaxError(data, err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("%s: unexpected data after the top-level object", position(data, int64(len(data)-len(rest))))
	}
	m, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object at the top level, got %s", describe(root))
	}
	c := Default()
	d := &decoder{}
	d.config(c, m)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.Ignored = d.ignored
	return c, nil
}

func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, the bad one included.
		return fmt.Errorf("%s: %s", position(data, se.Offset-1), se.Error())
	case errors.Is(err, io.EOF):
		return errors.New("no JSON object: the file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: unexpected end of JSON input", position(data, int64(len(data))))
	}
	return err
}

// position turns a byte offset into "line L, column C" (both from 1).
func position(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// prefix puts name before every one of err's lines, which errors.Join
// would otherwise give only to the first.
func prefix(name string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = fmt.Errorf("%s: %w", name, e)
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// decoder walks the generic JSON tree into a Config, collecting every
// error (each naming its JSON path) rather than stopping at the first, so
// one run shows all that is wrong with a file.
type decoder struct {
	errs    []error
	ignored []string
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// fields calls set for each key of m in sorted order (so errors come in a
// stable order) and records the keys set does not know. Keys in unused
// belong to the original server and are skipped without notice.
func (d *decoder) fields(m map[string]any, path string, unused []string, set func(key string, v any, path string) bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := join(path, k)
		if set(k, m[k], p) || slices.Contains(unused, k) {
			continue
		}
		d.ignored = append(d.ignored, p)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) config(c *Config, m map[string]any) {
	d.fields(m, "", []string{"duplicatePub", "debug"}, func(k string, v any, p string) bool {
		switch k {
		case "servers":
			d.servers(c, v, p)
		case "security":
			d.security(&c.Security, v, p)
		case "storage":
			d.storage(&c.Storage, v, p)
		case "publishMode":
			d.boolean(&c.PublishMode, v, p)
		case "clusterMode":
			d.boolean(&c.ClusterMode, v, p)
		case "processUniqueId":
			d.str(&c.ProcessUniqueID, v, p)
		case "polling":
			d.object(v, p, nil, func(k string, v any, p string) bool {
				return k == "timeout" && d.seconds(&c.Polling.Timeout, v, p)
			})
		case "websocket":
			d.object(v, p, nil, func(k string, v any, p string) bool {
				switch k {
				case "pingInterval":
					return d.seconds(&c.WebSocket.PingInterval, v, p)
				case "maxQueueBytes":
					return d.integer(&c.WebSocket.MaxQueueBytes, v, p)
				case "maxFrameBytes":
					return d.integer(&c.WebSocket.MaxFrameBytes, v, p)
				}
				return false
			})
		case "limits":
			// The other limits of the original v4 are fixed in pushpull.
			unused := []string{"maxConnPerChannel", "maxMessagesPerRequest", "maxChannelsPerRequest"}
			d.object(v, p, unused, func(k string, v any, p string) bool {
				return k == "maxPayload" && d.integer(&c.Limits.MaxPayload, v, p)
			})
		case "shutdownTimeout":
			d.seconds(&c.ShutdownTimeout, v, p)
		case "backend":
			d.backend(&c.Backend, v, p)
		case "log":
			d.object(v, p, nil, func(k string, v any, p string) bool {
				switch k {
				case "level":
					return d.lower(&c.Log.Level, v, p)
				case "format":
					return d.lower(&c.Log.Format, v, p)
				}
				return false
			})
		default:
			return false
		}
		return true
	})
}

func (d *decoder) servers(c *Config, v any, path string) {
	var list []any
	switch v := v.(type) {
	case nil:
		return
	case []any:
		list = v
	case map[string]any:
		// One server written without the list around it.
		list = []any{v}
	default:
		d.fail(path, "want a list of servers, got %s", describe(v))
		return
	}
	servers := make([]Server, len(list))
	for i, e := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		m, ok := e.(map[string]any)
		if !ok {
			d.fail(p, "want an object, got %s", describe(e))
			continue
		}
		d.server(&servers[i], m, p)
	}
	c.Servers = servers
}

func (d *decoder) server(s *Server, m map[string]any, path string) {
	// maxPayload per server (original v4) is global in pushpull: limits.maxPayload.
	d.fields(m, path, []string{"maxPayload"}, func(k string, v any, p string) bool {
		switch k {
		case "name":
			d.str(&s.Name, v, p)
		case "port":
			d.integer(&s.Port, v, p)
		case "hostname":
			d.str(&s.Hostname, v, p)
		case "backlog":
			d.integer(&s.Backlog, v, p)
		case "ssl":
			d.ssl(s, v, p)
		case "routes":
			d.routes(&s.Routes, v, p)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) ssl(s *Server, v any, path string) {
	// null, false or "false": plain HTTP.
	switch v := v.(type) {
	case nil:
		s.SSL = nil
		return
	case bool:
		if !v {
			s.SSL = nil
			return
		}
	case string:
		if b, err := parseBool(v); err == nil && !b {
			s.SSL = nil
			return
		}
	}
	ssl := &SSL{}
	if d.object(v, path, []string{"passphrase", "ca"}, func(k string, v any, p string) bool {
		switch k {
		case "key":
			return d.str(&ssl.Key, v, p)
		case "cert":
			return d.str(&ssl.Cert, v, p)
		case "ciphers":
			return d.str(&ssl.Ciphers, v, p)
		case "honorCipherOrder":
			return d.boolean(&ssl.HonorCipherOrder, v, p)
		case "dhparam":
			return d.str(&ssl.DHParam, v, p)
		}
		return false
	}) {
		s.SSL = ssl
	}
}

func (d *decoder) routes(r *Routes, v any, path string) {
	d.object(v, path, nil, func(k string, v any, p string) bool {
		switch k {
		case "sub":
			return d.list(&r.Sub, v, p)
		case "pub":
			return d.list(&r.Pub, v, p)
		case "stat":
			return d.list(&r.Stat, v, p)
		case "rest":
			return d.list(&r.Rest, v, p)
		case "api":
			return d.list(&r.API, v, p)
		case "health":
			return d.list(&r.Health, v, p)
		case "ready":
			return d.list(&r.Ready, v, p)
		case "metrics":
			return d.list(&r.Metrics, v, p)
		case "backend":
			return d.list(&r.Backend, v, p)
		case "demo":
			return d.list(&r.Demo, v, p)
		}
		return false
	})
}

func (d *decoder) security(s *Security, v any, path string) {
	d.object(v, path, nil, func(k string, v any, p string) bool {
		switch k {
		case "key":
			return d.str(&s.Key, v, p)
		case "algo":
			d.lower(&s.Algo, v, p)
			if s.Algo == "" {
				s.Algo = "sha1"
			}
			return true
		case "signedPublish":
			return d.boolean(&s.SignedPublish, v, p)
		case "clients":
			return d.clients(&s.Clients, v, p)
		case "backendKey":
			return d.str(&s.BackendKey, v, p)
		}
		return false
	})
}

func (d *decoder) backend(b *Backend, v any, path string) {
	d.object(v, path, nil, func(k string, v any, p string) bool {
		switch k {
		case "publicURL":
			return d.str(&b.PublicURL, v, p)
		case "version":
			return d.integer(&b.Version, v, p)
		case "channelWriteTTL":
			return d.seconds(&b.ChannelWriteTTL, v, p)
		case "channelStorageTTL":
			return d.seconds(&b.ChannelStorageTTL, v, p)
		case "watchTTL":
			return d.seconds(&b.WatchTTL, v, p)
		}
		return false
	})
}

func (d *decoder) storage(s *Storage, v any, path string) {
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		d.fail(path, "want an object, got %s", describe(v))
		return
	}
	// The appliance's own config templates spell the TTL keys "messageTLL",
	// "channelTLL", "onlineTLL"; accept them unless the right spelling is
	// also present.
	alias := func(k string, v any, p string, dst *float64) bool {
		if _, both := m[strings.Replace(k, "TLL", "TTL", 1)]; !both {
			d.seconds(dst, v, p)
		}
		return true
	}
	d.object(v, path, nil, func(k string, v any, p string) bool {
		switch k {
		case "type":
			return d.lower(&s.Type, v, p)
		case "messageTTL":
			return d.seconds(&s.MessageTTL, v, p)
		case "channelTTL":
			return d.seconds(&s.ChannelTTL, v, p)
		case "onlineTTL":
			return d.seconds(&s.OnlineTTL, v, p)
		case "onlineDelta":
			return d.seconds(&s.OnlineDelta, v, p)
		case "messageTLL":
			return alias(k, v, p, &s.MessageTTL)
		case "channelTLL":
			return alias(k, v, p, &s.ChannelTTL)
		case "onlineTLL":
			return alias(k, v, p, &s.OnlineTTL)
		case "host":
			// An empty host means the default, as with the original's
			// Redis client.
			d.str(&s.Host, v, p)
			if s.Host == "" {
				s.Host = "127.0.0.1"
			}
			return true
		case "port":
			d.integer(&s.Port, v, p)
			if s.Port == 0 {
				s.Port = 6379
			}
			return true
		case "socket":
			return d.str(&s.Socket, v, p)
		case "addrs":
			return d.list(&s.Addrs, v, p)
		case "master":
			return d.str(&s.Master, v, p)
		case "cluster":
			return d.boolean(&s.Cluster, v, p)
		case "username":
			return d.str(&s.Username, v, p)
		case "password":
			return d.str(&s.Password, v, p)
		case "db":
			return d.integer(&s.DB, v, p)
		case "tls":
			return d.boolean(&s.TLS, v, p)
		case "prefix":
			return d.str(&s.Prefix, v, p)
		case "snapshot":
			return d.str(&s.Snapshot, v, p)
		}
		return false
	})
}

// object walks v's keys with set; null is "not given". It reports whether
// v was an object.
func (d *decoder) object(v any, path string, unused []string, set func(k string, v any, p string) bool) bool {
	switch v := v.(type) {
	case nil:
		return false
	case map[string]any:
		d.fields(v, path, unused, set)
		return true
	}
	d.fail(path, "want an object, got %s", describe(v))
	return false
}

// The setters below leave *dst alone when v is null (not given) or wrong,
// and always return true: the key was known.

func (d *decoder) str(dst *string, v any, path string) bool {
	switch v := v.(type) {
	case nil:
	case string:
		*dst = v
	case json.Number:
		// A key or an id written as a bare number.
		*dst = v.String()
	default:
		d.fail(path, "want a string, got %s", describe(v))
	}
	return true
}

func (d *decoder) lower(dst *string, v any, path string) bool {
	d.str(dst, v, path)
	*dst = strings.ToLower(strings.TrimSpace(*dst))
	return true
}

// clients reads security.clients: an object of clientId -> key.
func (d *decoder) clients(dst *map[string]string, v any, path string) bool {
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		d.fail(path, "want an object of clientId: key, got %s", describe(v))
		return true
	}
	out := make(map[string]string, len(m))
	for id, key := range m {
		var k string
		d.str(&k, key, join(path, id))
		out[id] = k
	}
	if len(out) > 0 {
		*dst = out
	}
	return true
}

func (d *decoder) list(dst *[]string, v any, path string) bool {
	var out []string
	switch v := v.(type) {
	case nil:
		return true
	case string:
		out = []string{v}
	case []any:
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				d.fail(fmt.Sprintf("%s[%d]", path, i), "want a string, got %s", describe(e))
				return true
			}
			out = append(out, s)
		}
	default:
		d.fail(path, "want a string or a list of strings, got %s", describe(v))
		return true
	}
	*dst = out // an empty list stays nil: "none"
	return true
}

// numberText returns the text of a number given as a JSON number or a
// string; ok is false for null and for anything else (reported as want).
func (d *decoder) numberText(v any, path, want string) (text string, ok bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case json.Number:
		return v.String(), true
	case string:
		return v, true
	}
	d.fail(path, "want %s, got %s", want, describe(v))
	return "", false
}

func (d *decoder) integer(dst *int, v any, path string) bool {
	text, ok := d.numberText(v, path, "a number")
	if !ok {
		return true
	}
	n, err := parseInt(text)
	if err != nil {
		d.fail(path, "%s", err)
		return true
	}
	*dst = n
	return true
}

func (d *decoder) seconds(dst *float64, v any, path string) bool {
	text, ok := d.numberText(v, path, "a number of seconds")
	if !ok {
		return true
	}
	f, err := parseSeconds(text)
	if err != nil {
		d.fail(path, "%s", err)
		return true
	}
	*dst = f
	return true
}

func (d *decoder) boolean(dst *bool, v any, path string) bool {
	switch v := v.(type) {
	case nil:
	case bool:
		*dst = v
	case string, json.Number:
		b, err := parseBool(fmt.Sprint(v))
		if err != nil {
			d.fail(path, "%s", err)
			break
		}
		*dst = b
	default:
		d.fail(path, "want true or false, got %s", describe(v))
	}
	return true
}

// parseInt reads a whole number, also written as a float ("1e6", "8010.0").
func parseInt(text string) (int, error) {
	s := strings.TrimSpace(text)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int(n), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", text)
	}
	if f != math.Trunc(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, fmt.Errorf("%s is not a whole number in range", text)
	}
	return int(f), nil
}

// parseSeconds reads a number of seconds ("90", "1.5") or a Go duration
// ("90s", "24h").
func parseSeconds(text string) (float64, error) {
	s := strings.TrimSpace(text)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return 0, fmt.Errorf("%q is not a number of seconds or a duration", text)
		}
		return d.Seconds(), nil
	}
	// ParseFloat accepts "NaN" and "Inf", which no setting means.
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a finite number", text)
	}
	return f, nil
}

func parseBool(text string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", text)
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
