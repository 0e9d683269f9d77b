package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
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
	return decodeMap(m)
}

// parseObject reads a file's top-level JSON object as decode does, with
// numbers kept as json.Number.
func parseObject(data []byte) (map[string]any, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, syntaxError(data, err)
	}
	return m, nil
}

// decodeMap is decode of the parsed top-level object m.
func decodeMap(m map[string]any) (*Config, error) {
	c := Default()
	d := &decoder{}
	d.object(reflect.ValueOf(c).Elem(), m, "")
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.Ignored = d.ignored
	c.Aliased = d.aliased
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

// decoder walks the generic JSON tree into a Config along the keys of its
// struct tags (keys.go), collecting every error (each naming its JSON path)
// rather than stopping at the first, so one run shows all that is wrong
// with a file.
type decoder struct {
	errs    []error
	ignored []string
	aliased []string // paths of the alias spellings read (storage.messageTLL)
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object reads the JSON object m into dst, a struct, key by key in sorted
// order (so errors come in a stable order), records the keys it does not
// know and reports the required ones m lacks (null is not given).
func (d *decoder) object(dst reflect.Value, m map[string]any, path string) {
	fs := fields(dst.Type())
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := join(path, k)
		f, ok := lookup(fs, k)
		switch {
		case !ok:
			if !slices.Contains(retired[dst.Type()], k) {
				d.ignored = append(d.ignored, p)
			}
		case k == f.alias:
			if _, both := m[f.key]; !both {
				d.value(dst.Field(f.index), f, m[k], p)
				d.aliased = append(d.aliased, p)
			}
		default:
			d.value(dst.Field(f.index), f, m[k], p)
		}
	}
	for _, f := range fs {
		if f.required && m[f.key] == nil && (f.alias == "" || m[f.alias] == nil) {
			d.fail(join(path, f.key), "missing")
		}
	}
}

// value reads v into dst, the field f, as dst's type wants. null leaves
// dst as it was, the default, and so does a value that does not fit
// (reported); only an optional object is left out by null.
func (d *decoder) value(dst reflect.Value, f field, v any, path string) {
	var before any
	if f.nonzero {
		before = dst.Interface()
	}
	switch p := dst.Addr().Interface().(type) {
	case *string:
		d.str(p, v, path)
		if f.lower {
			*p = strings.ToLower(strings.TrimSpace(*p))
		}
	case *bool:
		d.boolean(p, v, path)
	case *int:
		d.integer(p, v, path)
	case *float64:
		d.seconds(p, v, path) // every float64 of a Config is in seconds
	case *[]string:
		d.list(p, v, path)
	case *map[string]string:
		d.clients(p, v, path)
	default:
		switch dst.Kind() {
		case reflect.Struct:
			d.nested(dst, v, path)
		case reflect.Pointer:
			d.optional(dst, v, path)
		case reflect.Slice:
			d.objects(dst, v, path, f.key)
		default:
			panic("config: no reader for " + path + " of type " + dst.Type().String())
		}
	}
	if f.nonzero && dst.IsZero() {
		dst.Set(reflect.ValueOf(before))
	}
}

// nested reads the JSON object v into the struct dst; null is "not
// given". It reports whether v was an object.
func (d *decoder) nested(dst reflect.Value, v any, path string) bool {
	switch v := v.(type) {
	case nil:
		return false
	case map[string]any:
		d.object(dst, v, path)
		return true
	}
	d.fail(path, "want an object, got %s", describe(v))
	return false
}

// optional reads an object that may be absent (servers[].ssl): null,
// false and "false" leave it out (plain HTTP).
func (d *decoder) optional(dst reflect.Value, v any, path string) {
	off := v == nil
	switch v := v.(type) {
	case bool:
		off = !v
	case string:
		b, err := parseBool(v)
		off = err == nil && !b
	}
	if off {
		dst.SetZero()
		return
	}
	obj := reflect.New(dst.Type().Elem())
	if d.nested(obj.Elem(), v, path) {
		dst.Set(obj)
	}
}

// objects reads a list of objects (servers), which replaces the default
// list entirely; one object written without the list around it is a list
// of one.
func (d *decoder) objects(dst reflect.Value, v any, path, key string) {
	var list []any
	switch v := v.(type) {
	case nil:
		return
	case []any:
		list = v
	case map[string]any:
		list = []any{v}
	default:
		d.fail(path, "want a list of %s, got %s", key, describe(v))
		return
	}
	out := reflect.MakeSlice(dst.Type(), len(list), len(list))
	for i, e := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if _, ok := e.(map[string]any); !ok {
			d.fail(p, "want an object, got %s", describe(e))
			continue
		}
		d.nested(out.Index(i), e, p)
	}
	dst.Set(out)
}

// The readers below leave *dst alone when v is null (not given) or wrong.

func (d *decoder) str(dst *string, v any, path string) {
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
}

// clients reads security.clients: an object of clientId -> key.
func (d *decoder) clients(dst *map[string]string, v any, path string) {
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		d.fail(path, "want an object of clientId: key, got %s", describe(v))
		return
	}
	out := make(map[string]string, len(m))
	for _, id := range slices.Sorted(maps.Keys(m)) {
		var k string
		d.str(&k, m[id], join(path, id))
		out[id] = k
	}
	if len(out) > 0 {
		*dst = out
	}
}

func (d *decoder) list(dst *[]string, v any, path string) {
	var out []string
	switch v := v.(type) {
	case nil:
		return
	case string:
		out = []string{v}
	case []any:
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				d.fail(fmt.Sprintf("%s[%d]", path, i), "want a string, got %s", describe(e))
				return
			}
			out = append(out, s)
		}
	default:
		d.fail(path, "want a string or a list of strings, got %s", describe(v))
		return
	}
	*dst = out // an empty list stays nil: "none"
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

func (d *decoder) integer(dst *int, v any, path string) {
	text, ok := d.numberText(v, path, "a number")
	if !ok {
		return
	}
	n, err := parseInt(text)
	if err != nil {
		d.fail(path, "%s", err)
		return
	}
	*dst = n
}

func (d *decoder) seconds(dst *float64, v any, path string) {
	text, ok := d.numberText(v, path, "a number of seconds")
	if !ok {
		return
	}
	f, err := parseSeconds(text)
	if err != nil {
		d.fail(path, "%s", err)
		return
	}
	*dst = f
}

func (d *decoder) boolean(dst *bool, v any, path string) {
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
