package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// eachKey calls fn with every key of the struct v and of the objects in
// it, depth first, with its JSON path and value. The elements of a list of
// objects stand at "path[]" and hold their zero values, as does an
// optional object.
func eachKey(v reflect.Value, path string, fn func(path string, f field, v reflect.Value)) {
	for _, f := range fields(v.Type()) {
		p, fv := join(path, f.key), v.Field(f.index)
		fn(p, f, fv)
		switch t := fv.Type(); {
		case t.Kind() == reflect.Struct:
			eachKey(fv, p, fn)
		case t.Kind() == reflect.Pointer:
			eachKey(reflect.New(t.Elem()).Elem(), p, fn)
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
			eachKey(reflect.New(t.Elem()).Elem(), p+"[]", fn)
		}
	}
}

// isObject reports whether a key holds an object or a list of objects,
// which docs/config.md gives a section of its own.
func isObject(t reflect.Type) bool {
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Pointer ||
		t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

// section names the part of docs/config.md that describes the keys of the
// object at path: its heading's first word.
func section(path string) string {
	if path == "" {
		return "Process"
	}
	return strings.TrimSuffix(path, "[]")
}

// docTables reads the tables of docs/config.md whose first column is
// "key": for each section, for each key, the row's cells by column name.
func docTables(doc string) map[string]map[string]map[string]string {
	out := map[string]map[string]map[string]string{}
	code := regexp.MustCompile("`([^`]*)`")
	var sec string
	var header []string
	for line := range strings.SplitSeq(doc, "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			sec = strings.Fields(strings.TrimLeft(line, "# "))[0]
			header = nil
		case !strings.HasPrefix(line, "|"):
			header = nil
		case header == nil:
			header = strings.Split(strings.Trim(line, "| "), " | ")
		case header[0] == "key" && !strings.HasPrefix(line, "|---"):
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			row := map[string]string{}
			for i, c := range cells {
				row[header[min(i, len(header)-1)]] = c
			}
			if out[sec] == nil {
				out[sec] = map[string]map[string]string{}
			}
			out[sec][code.FindStringSubmatch(cells[0])[1]] = row
		}
	}
	return out
}

// docDefault is how docs/config.md writes a default value.
func docDefault(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []string:
		if len(x) == 0 {
			return "[]"
		}
	}
	return fmt.Sprint(v.Interface())
}

func TestDocsListEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	tables := docTables(doc)
	documented := map[string]bool{} // section/key
	for sec, rows := range tables {
		for key := range rows {
			documented[sec+"/"+key] = true
		}
	}
	byKey := map[string]override{}
	for _, o := range overrides {
		if o.key != "" {
			byKey[o.key] = o
		}
	}

	eachKey(reflect.ValueOf(Default()).Elem(), "", func(path string, f field, v reflect.Value) {
		parent := strings.TrimSuffix(strings.TrimSuffix(path, f.key), ".")
		if isObject(v.Type()) {
			if tables[section(path)] == nil {
				t.Errorf("%s: docs/config.md has no section %q with a table of its keys", path, section(path))
			}
			if parent == "" {
				return // a top-level object is not a row of the Process table
			}
		}
		row := tables[section(parent)][f.key]
		if row == nil {
			t.Errorf("%s: not in the table of section %q of docs/config.md", path, section(parent))
			return
		}
		delete(documented, section(parent)+"/"+f.key)
		if def, ok := row["default"]; ok && !isObject(v.Type()) && strings.HasPrefix(def, "`") {
			if want := "`" + docDefault(v) + "`"; def != want {
				t.Errorf("%s: docs/config.md gives the default %s, the code %s", path, def, want)
			}
		}
		if o, ok := byKey[path]; ok {
			if !strings.Contains(row["env"], "`"+envName(o.flag)+"`") || !strings.Contains(row["flag"], "`--"+o.flag+"`") {
				t.Errorf("%s: docs/config.md does not give %s and --%s: %q", path, envName(o.flag), o.flag, row)
			}
		}
		if f.alias != "" && !strings.Contains(doc, "`"+f.alias+"`") {
			t.Errorf("%s: docs/config.md does not mention its spelling %s", path, f.alias)
		}
	})
	for k := range documented {
		t.Errorf("docs/config.md documents %s, which is no key", k)
	}
	for _, name := range regexp.MustCompile(`PUSHPULL_[A-Z][A-Z_]*`).FindAllString(doc, -1) {
		if !slices.ContainsFunc(sourceFlags, func(f string) bool { return envName(f) == name }) && !slices.ContainsFunc(overrides, func(o override) bool { return envName(o.flag) == name }) {
			t.Errorf("docs/config.md names %s, which is no variable", name)
		}
	}
	for typ, keys := range retired {
		for _, k := range keys {
			if !regexp.MustCompile("[`.]" + k + "`").MatchString(doc) {
				t.Errorf("%s: retired key %s is not in docs/config.md", typ.Name(), k)
			}
		}
	}
}

func TestOverridesNameKeys(t *testing.T) {
	for _, o := range overrides {
		if o.key == "" {
			if o.set == nil && o.flag != "sub-listen" && o.flag != "pub-listen" {
				t.Errorf("--%s sets nothing", o.flag)
			}
			continue
		}
		if _, _, ok := fieldAt(Default(), o.key); !ok || o.set != nil {
			t.Errorf("--%s: key %q is not a key of the file (or set is given too)", o.flag, o.key)
		}
	}
	for _, path := range []string{"", "storage", "storage.nope", "servers.port", "storage.messageTLL", "storage.port.x"} {
		if _, _, ok := fieldAt(Default(), path); ok && path != "storage" {
			t.Errorf("fieldAt(%q) found a key", path)
		}
	}
}

// namesKey reports whether msg starts with the JSON path of a key of the
// file ("servers[0].routes.sub[1]", "security.clients.<id>") and ": ".
func namesKey(msg string) bool {
	t, rest := reflect.TypeFor[Config](), msg
	for {
		i := strings.IndexAny(rest, ".[:")
		if i < 0 {
			return false
		}
		f, ok := lookup(fields(t), rest[:i])
		if !ok {
			return false
		}
		ft := t.Field(f.index).Type
		rest = rest[i:]
		for strings.HasPrefix(rest, "[") && ft.Kind() == reflect.Slice {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return false
			}
			if _, err := strconv.Atoi(rest[1:end]); err != nil {
				return false
			}
			ft, rest = ft.Elem(), rest[end+1:]
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case strings.HasPrefix(rest, ": "):
			return true
		case strings.HasPrefix(rest, ".") && ft.Kind() == reflect.Map:
			return strings.Contains(rest, ": ") // a client id may hold anything
		case !strings.HasPrefix(rest, ".") || ft.Kind() != reflect.Struct:
			return false
		}
		t, rest = ft, rest[1:]
	}
}

func TestNamesKey(t *testing.T) {
	for msg, want := range map[string]bool{
		"servers[0].routes.sub[1]: want a string":  true,
		"servers: no servers":                      true,
		"servers[1]: listen address":               true,
		"storage.messageTLL: bad":                  true,
		"security.clients.a: b: empty key":         true,
		"security.clients: \"x\" is not an id":     true,
		"servers[0].ssl.cert: missing":             true,
		"storage.port[0]: no":                      false,
		"storage.nope: no":                         false,
		"servers[x].port: no":                      false,
		"zzz: no":                                  false,
		"line 1, column 2: invalid":                false,
		"want a JSON object at the top level, got": false,
	} {
		if namesKey(msg) != want {
			t.Errorf("namesKey(%q) = %v", msg, !want)
		}
	}
	// Every key names itself.
	eachKey(reflect.ValueOf(Default()).Elem(), "", func(path string, f field, v reflect.Value) {
		p := strings.ReplaceAll(path, "[]", "[0]")
		if !namesKey(p+": x") || (f.alias != "" && !namesKey(strings.TrimSuffix(p, f.key)+f.alias+": x")) {
			t.Errorf("namesKey does not know %s", p)
		}
	})
}
