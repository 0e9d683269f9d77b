package config

import (
	"errors"
	"fmt"
	"strconv"
)

// The official Bitrix Docker environment (bitrix-tools/env-docker) runs
// its push server image twice, configured by environment variables that
// its entrypoint writes into a config file from a template: one container
// with PUSH_SUB_MODE=sub serving subscribers on PUSH_SUB_PORT, one with
// PUSH_PUB_MODE=pub serving the backend on PUSH_PUB_PORT, both on the
// Redis at REDIS_HOST:REDIS_PORT with the key PUSH_SECURITY_KEY.
// applyDockerEnv builds the same configuration.

// dockerKeyPlaceholder is the key the environment's .env_push ships with.
const dockerKeyPlaceholder = "CHANGE_SECURITY_KEY_HERE"

// dockerEnvSet reports whether the official image's variables are there.
func dockerEnvSet(getenv func(string) string) bool {
	return getenv("PUSH_PUB_MODE") != "" || getenv("PUSH_SUB_MODE") != ""
}

// applyDockerEnv sets in c what the official image's entrypoint would
// write into its config for the environment getenv reads (servers,
// publishMode, processUniqueId, the key, Redis, maxPayload), leaving the
// rest of c as it is; applied is false when neither PUSH_PUB_MODE nor
// PUSH_SUB_MODE is set. As the entrypoint does, it
// serves the publish side when PUSH_PUB_MODE is "pub", else the subscribe
// side when PUSH_SUB_MODE is "sub", and refuses other values: the
// publish server on 0.0.0.0:PUSH_PUB_PORT (default 9010) with the routes
// PUB_URI (default /bitrix/pub/), /server-stat/ and REST_URI (default
// /bitrix/rest/), in publish mode; the subscribe server on
// 0.0.0.0:PUSH_SUB_PORT (default 8010) with SUB_URI (default
// /bitrix/subws/, and then /bitrix/sub/ too). Both also serve /healthz, /readyz
// and /metrics. Redis is used in the push server 2.0's layout, which the
// image runs. RUN_DIR, the original's scratch directory, is not used.
func applyDockerEnv(c *Config, getenv func(string) string) (applied bool, notes []string, err error) {
	pubMode, subMode := getenv("PUSH_PUB_MODE"), getenv("PUSH_SUB_MODE")
	if pubMode == "" && subMode == "" {
		return false, nil, nil
	}
	pub := pubMode == "pub"
	switch {
	case pub:
	case subMode == "sub":
	case subMode == "":
		return false, nil, fmt.Errorf("PUSH_PUB_MODE=%q: want pub (or PUSH_SUB_MODE=sub)", pubMode)
	default:
		return false, nil, fmt.Errorf("PUSH_SUB_MODE=%q: want sub (or PUSH_PUB_MODE=pub)", subMode)
	}
	portVar, mode, def := "PUSH_SUB_PORT", "sub", 8010
	if pub {
		portVar, mode, def = "PUSH_PUB_PORT", "pub", 9010
	}
	port := def
	if v := getenv(portVar); v != "" {
		if port, err = strconv.Atoi(v); err != nil || port < 1 || port > 65535 {
			return false, nil, fmt.Errorf("%s=%q is not a port (1-65535)", portVar, v)
		}
	}
	key := getenv("PUSH_SECURITY_KEY")
	switch key {
	case "":
		return false, nil, errors.New("PUSH_SECURITY_KEY is not set: set it to the key of the Bitrix module's settings (Push and Pull)")
	case dockerKeyPlaceholder:
		notes = append(notes, "PUSH_SECURITY_KEY is still the environment's placeholder "+dockerKeyPlaceholder+": the Bitrix module must be set to the same key")
	}
	name := mode + "-" + strconv.Itoa(port)
	s := Server{Name: name, Port: port, Hostname: "0.0.0.0", Backlog: 1024}
	probes := Routes{Health: []string{"/healthz"}, Ready: []string{"/readyz"}, Metrics: []string{"/metrics"}}
	if pub {
		s.Routes = Routes{
			Pub:  []string{orDefault(getenv("PUB_URI"), "/bitrix/pub/")},
			Stat: []string{"/server-stat/"},
			Rest: []string{orDefault(getenv("REST_URI"), "/bitrix/rest/")},
		}
	} else {
		s.Routes.Sub = []string{"/bitrix/subws/", "/bitrix/sub/"}
		if v := getenv("SUB_URI"); v != "" {
			s.Routes.Sub = []string{v}
		}
	}
	s.Routes.Health, s.Routes.Ready, s.Routes.Metrics = probes.Health, probes.Ready, probes.Metrics
	c.Servers = []Server{s}
	c.PublishMode = pub
	c.ClusterMode = true
	c.ProcessUniqueID = name
	c.Security.Key = key
	c.Storage.Type = "redis"
	// The image runs the push server 2.0 (0.4.0), whose Redis layout
	// the installation's Redis holds.
	c.Storage.Layout = "2.0"
	c.Storage.Socket, c.Storage.Addrs, c.Storage.Snapshot = "", nil, ""
	c.Storage.Host = orDefault(getenv("REDIS_HOST"), "127.0.0.1")
	c.Storage.Port = 6379
	if v := getenv("REDIS_PORT"); v != "" {
		if c.Storage.Port, err = strconv.Atoi(v); err != nil {
			return false, nil, fmt.Errorf("REDIS_PORT=%q is not a port", v)
		}
	}
	c.Limits.MaxPayload = 1048576 // the publish template's
	if v := getenv("RUN_DIR"); v != "" {
		notes = append(notes, "RUN_DIR="+v+": not used, pushpull writes no files")
	}
	return true, notes, nil
}
