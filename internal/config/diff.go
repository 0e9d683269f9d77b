package config

import (
	"fmt"
	"reflect"
)

// Diff lists the keys whose values differ between a and b, as paths of
// the file's keys ("limits.maxPayload", "servers[1].port",
// "security.clients"), in the order of the Config types. Lists and
// objects of free keys (routes, clients) count as one value; a list of
// servers of another length as one key, "servers".
func Diff(a, b *Config) []string {
	var out []string
	diffValue(reflect.ValueOf(*a), reflect.ValueOf(*b), "", &out)
	return out
}

func diffValue(a, b reflect.Value, path string, out *[]string) {
	switch a.Kind() {
	case reflect.Struct:
		for _, f := range fields(a.Type()) {
			p := f.key
			if path != "" {
				p = path + "." + f.key
			}
			diffValue(a.Field(f.index), b.Field(f.index), p, out)
		}
		return
	case reflect.Pointer:
		if !a.IsNil() && !b.IsNil() {
			diffValue(a.Elem(), b.Elem(), path, out)
			return
		}
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Struct && a.Len() == b.Len() {
			for i := range a.Len() {
				diffValue(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
			}
			return
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path)
	}
}
