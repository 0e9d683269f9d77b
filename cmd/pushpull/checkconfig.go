package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pushpull/pushpull/internal/config"
)

// checkconfig reads the configuration as `pushpull serve` with the same
// arguments would, and prints it: where it came from, each process's
// servers and its effective configuration as JSON (secrets shown only as
// hints unless --show-secrets), then the notes (keys ignored, keys the
// original did not read) and the errors (files that disagree, bad
// values). It fails when serve would not start.
func checkconfig(args []string, stdout, stderr io.Writer) error {
	showSecrets := false
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		if a == "--show-secrets" || a == "-show-secrets" {
			showSecrets = true
			return true
		}
		return false
	})
	if slices.Contains(args, "-h") || slices.Contains(args, "--help") {
		fmt.Fprintf(stderr, "Usage: pushpull checkconfig [--show-secrets] [serve's flags]\n\n"+
			"Reads the configuration as pushpull serve with the same flags and environment would, prints\n"+
			"it, and says what is wrong with it. --show-secrets prints keys and passwords themselves.\n\n")
	}
	setup, err := config.ParseServe(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if setup != nil {
		for _, s := range setup.Sources {
			fmt.Fprintf(stdout, "source: %s\n", s)
		}
	}
	if err == nil {
		n := len(setup.Processes)
		switch {
		case setup.PerFile:
			fmt.Fprintf(stdout, "processes: %d, one per file (--per-file)\n", n)
		default:
			fmt.Fprintf(stdout, "processes: 1, serving every server below\n")
		}
		for i, p := range setup.Processes {
			c := p.Config
			fmt.Fprintf(stdout, "\nprocess %d", i+1)
			if len(p.Files) > 0 {
				fmt.Fprintf(stdout, " (%s)", strings.Join(p.Files, ", "))
			}
			fmt.Fprintf(stdout, ": processUniqueId %s, publishMode %v, storage %s", c.ProcessUniqueID, c.PublishMode, storageText(c.Storage))
			fmt.Fprintf(stdout, ", security.key %s\n", secretText(c.Security.Key, showSecrets))
			for _, s := range c.Servers {
				fmt.Fprintf(stdout, "  %-10s %-22s %s\n", s.Name, s.Addr(), routesText(s))
			}
			out, merr := effectiveJSON(c, showSecrets)
			if merr != nil {
				return merr
			}
			fmt.Fprintf(stdout, "%s\n", out)
		}
	}
	if setup != nil && len(setup.Notes) > 0 {
		fmt.Fprintf(stdout, "\nnotes:\n")
		for _, n := range setup.Notes {
			fmt.Fprintf(stdout, "  - %s\n", n)
		}
	}
	if err != nil {
		fmt.Fprintf(stdout, "\nerrors:\n")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stdout, "  - %s\n", line)
		}
		return errors.New("the configuration is not valid: pushpull serve would not start")
	}
	fmt.Fprintf(stdout, "\nOK\n")
	return nil
}

func storageText(s config.Storage) string {
	if s.Type != "redis" {
		return s.Type
	}
	return "redis " + strings.Join(s.RedisAddrs(), ",")
}

func secretText(v string, show bool) string {
	if show && v != "" {
		return fmt.Sprintf("%q", v)
	}
	return "(" + config.KeyHint(v) + ")"
}

func routesText(s config.Server) string {
	var parts []string
	r := s.Routes
	for _, k := range []struct {
		name string
		list []string
	}{
		{"sub", r.Sub}, {"pub", r.Pub}, {"rest", r.Rest}, {"stat", r.Stat}, {"api", r.API},
		{"health", r.Health}, {"ready", r.Ready}, {"metrics", r.Metrics}, {"backend", r.Backend}, {"demo", r.Demo},
	} {
		if len(k.list) > 0 {
			parts = append(parts, k.name+" "+strings.Join(k.list, " "))
		}
	}
	tls := ""
	if s.SSL != nil {
		tls = " (TLS)"
	}
	return strings.Join(parts, ", ") + tls
}

// effectiveJSON prints c as a config file, its secrets as hints unless
// show.
func effectiveJSON(c *config.Config, show bool) ([]byte, error) {
	cc := *c
	if !show {
		hide := func(v *string) {
			if *v != "" {
				*v = "(" + config.KeyHint(*v) + ")"
			}
		}
		hide(&cc.Security.Key)
		hide(&cc.Security.BackendKey)
		hide(&cc.Storage.Password)
		if len(c.Security.Clients) > 0 {
			cc.Security.Clients = make(map[string]string, len(c.Security.Clients))
			for id, k := range c.Security.Clients {
				hide(&k)
				cc.Security.Clients[id] = k
			}
		}
	}
	return json.MarshalIndent(&cc, "", "  ")
}
