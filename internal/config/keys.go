package config

import (
	"reflect"
	"slices"
	"strings"
)

// The keys of the config file are declared once, in the json tags of the
// Config types. The decoder reads a file along them, the overrides of
// flags.go name them, and a test holds docs/config.md to them. How a value
// is read follows from the field's Go type (a float64 is a number of
// seconds); a config tag adds, comma-separated:
//
//	lower       a string is trimmed and lower-cased ("SHA256", "Redis")
//	nonzero     "" or 0 keeps the default, as the original's Redis client
//	            took an empty host or port
//	alias=NAME  NAME is read as the key too, unless the key itself is
//	            present (the appliance's templates spell TTL "TLL")
//	required    an object of the file must give the key (servers[].port,
//	            whose 0 means any free port rather than "not given")

// A field is one key of a config object.
type field struct {
	key      string // JSON name
	index    int    // of the field in its struct
	lower    bool
	nonzero  bool
	required bool
	alias    string
}

// fields lists the keys of the struct type t in the order of its fields.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if key == "" || key == "-" {
			continue
		}
		f := field{key: key, index: i}
		for opt := range strings.SplitSeq(sf.Tag.Get("config"), ",") {
			switch name, arg, _ := strings.Cut(opt, "="); name {
			case "":
			case "lower":
				f.lower = true
			case "nonzero":
				f.nonzero = true
			case "required":
				f.required = true
			case "alias":
				f.alias = arg
			default:
				panic("config: unknown option " + opt + " in the tag of " + t.Name() + "." + sf.Name)
			}
		}
		out = append(out, f)
	}
	return out
}

// lookup finds the field of fs that key names, by its name or its alias.
func lookup(fs []field, key string) (field, bool) {
	i := slices.IndexFunc(fs, func(f field) bool { return f.key == key || f.alias != "" && f.alias == key })
	if i < 0 {
		return field{}, false
	}
	return fs[i], true
}

// retired lists, per object, the keys of the original server pushpull has
// no use for. They are read past without notice, where any other unknown
// key is listed in Config.Ignored.
var retired = map[reflect.Type][]string{
	// dataDir, licenseServer and licenseStorage: the 2.0 server's license
	// checks and their SQLite or MySQL store (the Docker image's templates
	// set dataDir).
	reflect.TypeFor[Config](): {"duplicatePub", "debug", "dataDir", "licenseServer", "licenseStorage"},
	// maxPayload per server (original v4) is global in pushpull: limits.maxPayload.
	reflect.TypeFor[Server](): {"maxPayload"},
	reflect.TypeFor[SSL]():    {"passphrase", "ca"},
}

// fieldAt returns the field of c that a path of keys through nested
// objects names ("storage.messageTTL"); ok is false when there is none.
func fieldAt(c *Config, path string) (v reflect.Value, f field, ok bool) {
	v = reflect.ValueOf(c).Elem()
	for key := range strings.SplitSeq(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, field{}, false
		}
		if f, ok = lookup(fields(v.Type()), key); !ok || f.key != key {
			return reflect.Value{}, field{}, false
		}
		v = v.Field(f.index)
	}
	return v, f, true
}
