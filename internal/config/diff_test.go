package config

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	a, b := Default(), Default()
	if d := Diff(a, b); len(d) != 0 {
		t.Fatalf("Diff of two defaults = %q", d)
	}
	b.Limits.MaxPayload = 5
	b.Security.Key = "k"
	b.Security.Clients = map[string]string{"c": "k"}
	b.Servers[1].Port = 1
	b.Servers[0].Routes.Sub = []string{"/sub/"}
	b.Servers[0].SSL = &SSL{Cert: "c", Key: "k"}
	b.Log.Level = "debug"
	want := []string{
		"servers[0].ssl", "servers[0].routes.sub", "servers[1].port",
		"security.key", "security.clients", "limits.maxPayload", "log.level",
	}
	if d := Diff(a, b); !slices.Equal(d, want) {
		t.Errorf("Diff = %q, want %q", d, want)
	}
	a.Servers[0].SSL = &SSL{Cert: "c", Key: "old"}
	if d := Diff(a, b); !slices.Contains(d, "servers[0].ssl.key") || slices.Contains(d, "servers[0].ssl.cert") {
		t.Errorf("Diff of two ssl objects = %q, want servers[0].ssl.key alone of them", d)
	}
	b.Servers = b.Servers[:1]
	if d := Diff(a, b); !slices.Contains(d, "servers") {
		t.Errorf("Diff with a server less = %q, want servers", d)
	}
}
