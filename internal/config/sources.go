package config

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Setup is the configuration of `pushpull serve` gathered from all its
// sources: one process serving every server they name, or, per file, one
// process for each config file.
type Setup struct {
	Processes []Process
	PerFile   bool
	// Sources says, for people, where the configuration was read from.
	Sources []string
	// Notes are what an admin should know that does not stop the server:
	// keys ignored, keys the original server did not read, placeholders.
	Notes []string
	// ChildArgs are the flags given that override the files, for the
	// processes of a per-file setup.
	ChildArgs []string
}

// Process is the configuration of one process.
type Process struct {
	Files  []string // the config files it was read from; none for defaults, sysconfig, environment
	Config *Config
}

// applianceFile is the name of the appliance's per-process config files.
// Its templates (push-server-sub-__PORT__.json) live in the same folder.
var applianceFile = regexp.MustCompile(`^push-server-(sub|pub)-[0-9]+\.json$`)

// DirFiles lists the appliance's config files in dir: every
// push-server-sub-PORT.json and push-server-pub-PORT.json, sorted by
// name. skipped lists the other .json files, which it does not read (the
// templates among them).
func DirFiles(dir string) (files, skipped []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() || !strings.HasSuffix(name, ".json"):
		case applianceFile.MatchString(name):
			files = append(files, filepath.Join(dir, name))
		default:
			skipped = append(skipped, filepath.Join(dir, name))
		}
	}
	if len(files) == 0 {
		return nil, skipped, fmt.Errorf("%s: no push-server-sub-PORT.json or push-server-pub-PORT.json in it", dir)
	}
	return files, skipped, nil
}

// fileSource is one config file read for a merge.
type fileSource struct {
	path string
	raw  map[string]any // its object, with the keys as Config spells them
	cfg  *Config        // the file alone, decoded and validated
}

// loadFiles reads and validates every file on its own, so that each
// error names its file, and reports them all at once.
func loadFiles(paths []string) ([]fileSource, error) {
	var errs []error
	var out []fileSource
	for _, p := range paths {
		c, err := Load(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		raw, err := parseObject(data)
		if err != nil {
			errs = append(errs, prefix(p, err))
			continue
		}
		canonicalize(reflect.TypeFor[Config](), raw)
		out = append(out, fileSource{path: p, raw: raw, cfg: c})
	}
	return out, errors.Join(errs...)
}

// originalDefaults are the original 2.0 server's defaults of the keys
// the appliance's templates misspell.
var originalDefaults = map[string]float64{"storage.messageTTL": 86400, "storage.channelTTL": 86400, "storage.onlineTTL": 120}

// fileNotes are what the files' keys tell an admin, one note per key and
// value with the files that give it: the keys ignored, and the ones read
// under a spelling the original did not read.
func fileNotes(srcs []fileSource) []string {
	type group struct {
		note  string
		files []string
	}
	var groups []*group
	add := func(note, file string) {
		for _, g := range groups {
			if g.note == note {
				g.files = append(g.files, file)
				return
			}
		}
		groups = append(groups, &group{note, []string{file}})
	}
	for _, s := range srcs {
		for _, k := range s.cfg.Ignored {
			n := k + ": not a key pushpull knows, ignored"
			if alt := suggest(k); alt != "" {
				n += "; did you mean " + alt + "?"
			}
			add(n, s.path)
		}
		for _, k := range s.cfg.Aliased {
			key, _ := lookupPath(k)
			v, _, _ := fieldAt(s.cfg, key)
			n := fmt.Sprintf("%s: read as %s (%v s); the original push server does not read this spelling", k, key, v.Interface())
			if def, ok := originalDefaults[key]; ok {
				if v.Kind() == reflect.Float64 && v.Float() == def {
					n += fmt.Sprintf(" and keeps its default, which is the same (%v s): nothing changes", def)
				} else {
					n += fmt.Sprintf(": it kept its default (%v s), pushpull uses the file's value", def)
				}
			}
			add(n, s.path)
		}
	}
	notes := make([]string, len(groups))
	for i, g := range groups {
		files := strings.Join(g.files, ", ")
		if len(g.files) == len(srcs) && len(srcs) > 2 {
			files = fmt.Sprintf("all %d files", len(srcs))
		}
		notes[i] = files + ": " + g.note
	}
	return notes
}

// canonicalize renames in m, the object of the struct type t, each key
// given by its alias to the key itself (the decoder reads an alias only
// when the key is absent), through nested objects.
func canonicalize(t reflect.Type, m map[string]any) {
	fs := fields(t)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f, ok := lookup(fs, k)
		if !ok {
			continue
		}
		v := m[k]
		if k == f.alias {
			delete(m, k)
			if _, both := m[f.key]; both {
				continue
			}
			m[f.key] = v
		}
		ft := t.Field(f.index).Type
		if ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			canonicalize(ft, v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					canonicalize(ft, em)
				}
			}
		}
	}
}

// mergeFiles merges the files into the configuration of one process
// serving every server they list. Every other key must have one value
// across the files that give it; a file that leaves a key out takes the
// others', and servers are the default ones when no file lists any.
// publishMode is the process's only if every file is publish-only;
// processUniqueId is the first subscribe file's (else the first file's).
func mergeFiles(srcs []fileSource) (*Config, error) {
	if len(srcs) == 1 {
		return srcs[0].cfg, nil
	}
	if err := crossCheck(srcs, false); err != nil {
		return nil, err
	}
	out := map[string]any{}
	from := map[string]string{}
	var servers []any
	var errs []error
	for _, s := range srcs {
		for _, k := range slices.Sorted(maps.Keys(s.raw)) {
			switch v := s.raw[k]; k {
			case "servers":
				switch v := v.(type) {
				case []any:
					servers = append(servers, v...)
				case map[string]any:
					servers = append(servers, v)
				}
			case "processUniqueId", "publishMode":
			default:
				mergeValue(out, k, v, k, s.path, from, &errs)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if servers != nil {
		out["servers"] = servers
	}
	c, err := decodeMap(out)
	if err != nil {
		return nil, err
	}
	c.Ignored, c.Aliased = nil, nil // reported per file
	c.PublishMode = true
	for _, s := range srcs {
		c.PublishMode = c.PublishMode && s.cfg.PublishMode
	}
	// The first subscribe file's id, as a sysconfig setup names its one
	// process (sub-8010).
	c.ProcessUniqueID = srcs[0].cfg.ProcessUniqueID
	for _, s := range srcs {
		if !s.cfg.PublishMode {
			c.ProcessUniqueID = s.cfg.ProcessUniqueID
			break
		}
	}
	return c, nil
}

func mergeValue(dst map[string]any, k string, v any, path, file string, from map[string]string, errs *[]error) {
	if _, _, known := fieldAt(&Config{}, path); !known {
		// A key pushpull does not read (debug, a misspelling): noted per
		// file, never a disagreement.
		return
	}
	old, ok := dst[k]
	if !ok || old == nil {
		dst[k] = v
		givenBy(from, path, v, file)
		return
	}
	if v == nil {
		return
	}
	om, ok1 := old.(map[string]any)
	nm, ok2 := v.(map[string]any)
	if ok1 && ok2 && !strings.HasSuffix(path, "security.clients") {
		for _, kk := range slices.Sorted(maps.Keys(nm)) {
			mergeValue(om, kk, nm[kk], path+"."+kk, file, from, errs)
		}
		return
	}
	if sameValue(path, old, v) {
		return
	}
	*errs = append(*errs, disagree(path, from[path], file, old, v))
}

// givenBy records file as the one that gave path and everything in it.
func givenBy(from map[string]string, path string, v any, file string) {
	from[path] = file
	if m, ok := v.(map[string]any); ok {
		for k, e := range m {
			givenBy(from, path+"."+k, e, file)
		}
	}
}

// sameValue compares two JSON values of the key at path as the decoder
// reads them: 6379 and "6379", "Redis" and "redis" are one value.
func sameValue(path string, a, b any) bool {
	va, f, ok := fieldAt(&Config{}, path)
	vb, _, _ := fieldAt(&Config{}, path)
	if !ok {
		return reflect.DeepEqual(normal(a), normal(b))
	}
	d := &decoder{}
	d.value(va, f, a, path)
	d.value(vb, f, b, path)
	return reflect.DeepEqual(va.Interface(), vb.Interface())
}

func normal(v any) any {
	switch v := v.(type) {
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	case string:
		return strings.TrimSpace(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normal(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normal(e)
		}
		return out
	}
	return v
}

// disagree is the error of two files giving a key two values.
func disagree(path, f1, f2 string, a, b any) error {
	if path == "security.key" {
		return fmt.Errorf("security.key: %s and %s give different keys (%s; %s): the Bitrix module signs channels with one key, so the processes with the other refuse its clients and messages silently stop", f1, f2, KeyHint(fmt.Sprint(a)), KeyHint(fmt.Sprint(b)))
	}
	show := func(v any) string {
		if secret(path) {
			return KeyHint(fmt.Sprint(v))
		}
		j, _ := json.Marshal(v)
		return string(j)
	}
	return fmt.Errorf("%s: %s gives %s, %s gives %s: one process serving both files needs one value (or run one process per file: --per-file)", path, f1, show(a), f2, show(b))
}

// secret reports whether the key at path holds a secret, which is never
// printed.
func secret(path string) bool {
	last := path[strings.LastIndex(path, ".")+1:]
	return strings.HasPrefix(path, "security.clients") || strings.EqualFold(last, "key") ||
		strings.HasSuffix(last, "Key") || last == "password" || last == "passphrase"
}

// KeyHint describes a key without giving it away: its length and the
// start of its SHA-256, enough to tell two keys apart.
func KeyHint(key string) string {
	if key == "" {
		return "empty"
	}
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%d characters, sha256 %x...", len(key), sum[:4])
}

// crossCheck reports what makes files unable to run together: two
// servers of different files on one address, and, for one process per
// file (perFile), different security keys or algorithms. Files merged
// into one process must agree on every key, the security key too
// (mergeValue).
func crossCheck(srcs []fileSource, perFile bool) error {
	var errs []error
	first := srcs[0]
	for _, s := range srcs[1:] {
		if s.cfg.Security.Key != first.cfg.Security.Key {
			if perFile {
				errs = append(errs, disagree("security.key", first.path, s.path, first.cfg.Security.Key, s.cfg.Security.Key))
			}
		} else if s.cfg.Security.Algo != first.cfg.Security.Algo && perFile {
			errs = append(errs, fmt.Errorf("security.algo: %s gives %s, %s gives %s: signatures of one do not verify with the other", first.path, first.cfg.Security.Algo, s.path, s.cfg.Security.Algo))
		}
	}
	type listener struct {
		file string
		i    int
		s    Server
	}
	var seen []listener
	for _, src := range srcs {
		for i, s := range src.cfg.Servers {
			if s.Port == 0 {
				continue
			}
			for _, o := range seen {
				if o.file == src.path || o.s.Port != s.Port {
					continue
				}
				h1, h2 := normalHost(o.s.Hostname), normalHost(s.Hostname)
				if h1 == h2 || wildcard(h1) || wildcard(h2) {
					errs = append(errs, fmt.Errorf("port %d: servers[%d] of %s (%s) and servers[%d] of %s (%s): one address is listened on once", s.Port, o.i, o.file, o.s.Addr(), i, src.path, s.Addr()))
					break
				}
			}
			seen = append(seen, listener{src.path, i, s})
		}
	}
	return errors.Join(errs...)
}

// lookupPath returns the key path, in its own spelling, that path (perhaps
// an alias, with list indexes) names in a Config, and the struct type of
// the object holding it.
func lookupPath(path string) (string, reflect.Type) {
	t := reflect.TypeFor[Config]()
	parts := strings.Split(path, ".")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		key, idx, _ := strings.Cut(p, "[")
		f, ok := lookup(fields(t), key)
		if !ok {
			return "", nil
		}
		if idx != "" {
			idx = "[" + idx
		}
		out = append(out, f.key+idx)
		if i == len(parts)-1 {
			return strings.Join(out, "."), t
		}
		t = t.Field(f.index).Type
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return "", nil
		}
	}
	return "", nil
}

// suggest names the key an unknown key at path is likely a misspelling
// of: one of its object's keys that differs in case or by at most two
// letters; "" when none does.
func suggest(path string) string {
	parent, last := "", path
	if i := strings.LastIndex(path, "."); i >= 0 {
		parent, last = path[:i], path[i+1:]
	}
	t := reflect.TypeFor[Config]()
	if parent != "" {
		var ok bool
		if t, ok = objectType(parent); !ok {
			return ""
		}
	}
	best, bestD := "", 3
	for _, f := range fields(t) {
		d := editDistance(strings.ToLower(last), strings.ToLower(f.key))
		if d < bestD {
			best, bestD = f.key, d
		}
	}
	if best == "" {
		return ""
	}
	return join(parent, best)
}

// objectType is the struct type of the object at path.
func objectType(path string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for p := range strings.SplitSeq(path, ".") {
		key, _, _ := strings.Cut(p, "[")
		f, ok := lookup(fields(t), key)
		if !ok {
			return nil, false
		}
		t = t.Field(f.index).Type
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
	}
	return t, true
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
