package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestJoinPinArg(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"--pin", "both", "--runs", "2"}, []string{"--pin=both", "--runs", "2"}},
		{[]string{"-pin", "off"}, []string{"-pin=off"}},
		{[]string{"--pin", "--runs", "2"}, []string{"--pin", "--runs", "2"}},
		{[]string{"--pin"}, []string{"--pin"}},
		{[]string{"--", "--pin", "both"}, []string{"--", "--pin", "both"}},
	} {
		if got := joinPinArg(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPinFlag(t *testing.T) {
	var p pinFlag
	for v, want := range map[string]pinFlag{"true": {on: true}, "on": {on: true}, "both": {on: true, both: true}, "off": {}, "false": {}} {
		if err := p.Set(v); err != nil || p != want {
			t.Errorf("%q: got %+v, %v; want %+v", v, p, err, want)
		}
	}
	if err := p.Set("sometimes"); err == nil {
		t.Error("took --pin=sometimes")
	}
	if !p.IsBoolFlag() {
		t.Error("--pin takes no value of its own")
	}
}

// The side-by-side flags refuse what they cannot do before anything runs.
func TestBenchPeerFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--peer", "mosquitto"}, "the peer it can run is nchan"},
		{[]string{"fanout", "--runs", "2"}, "needs --peer"},
		{[]string{"fanout", "--pin", "both"}, "needs --peer"},
		{[]string{"fanout", "--peer", "nchan", "--redis"}, "leave out --redis"},
		{[]string{"fanout", "--peer", "nchan", "--runs", "0"}, "at least 1"},
		{[]string{"chaos", "--peer", "nchan"}, "not \"chaos\""},
		{[]string{"fanout", "--pin", "--pid", "1", "--sub", "ws://x/", "--pub", "http://x/"}, "needs --spawn"},
	} {
		err := runBench(context.Background(), append(c.args, "--quiet"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.args, err, c.want)
		}
	}
}
