package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// The appliance (BitrixVM / BitrixEnv) runs its push server processes
// with /etc/init.d/push-server-multi, which sources the shell variables
// of /etc/sysconfig/push-server-multi and writes one config file per
// process from templates: subscribe servers on the ports BASE_SUB0 to
// BASE_SUB<ID_SUB>, publish servers on BASE_PUB0 to BASE_PUB<ID_PUB>
// (8010-8015 and 9010-9011 as the appliance ships). FromSysconfig builds
// the same servers for one pushpull process.

// maxSysconfigBytes bounds a sysconfig file: the appliance's is under 1 KiB.
const maxSysconfigBytes = 1 << 20

// sysconfigVars are the variables the init script reads; the others a
// sysconfig file sets are reported as unknown.
var sysconfigVars = []string{
	"HG_DIR", "CFG_DIR", "VAR_DIR", "RUN_DIR", "BASE_SUB", "BASE_PUB", "TMPL_SUB", "TMPL_PUB",
	"USER", "GROUP", "ID_SUB", "ID_PUB", "IP_LIST", "PID_SUB", "PID_PUB", "WS_HOST", "WS_PORT",
	"REDIS_SOCK", "SUBPATH", "SUBWSPATH", "PUBPATH", "RESTPATH", "DEBUG", "MULTISERVICE",
	"NOFILE_LIMITS", "STACK_LIMITS", "SECURITY_KEY", "MAX_MEMORY",
}

// ParseSysconfig reads a file of shell variable assignments, as a shell
// that sources it would: VAR=value lines, "export VAR=value", comments,
// single and double quotes, backslashes and $VAR or ${VAR} of variables
// set earlier in the file. Anything else a shell would run (commands,
// conditions, command substitutions) is refused, naming its line: the
// file is read, never run. Later assignments win.
func ParseSysconfig(data []byte) (map[string]string, error) {
	if len(data) > maxSysconfigBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxSysconfigBytes)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(data), "")
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	var order []string // first assignment order, for ListEnviron
	refuse := func(n syntax.Node, what string) error {
		return fmt.Errorf("line %d: %s: only VAR=value assignments are read", n.Pos().Line(), what)
	}
	for _, st := range f.Stmts {
		if st.Negated || st.Background || st.Coprocess || len(st.Redirs) > 0 {
			return nil, refuse(st, "not a plain assignment")
		}
		var assigns []*syntax.Assign
		switch c := st.Cmd.(type) {
		case *syntax.CallExpr:
			if len(c.Args) > 0 {
				return nil, refuse(st, "a command")
			}
			assigns = c.Assigns
		case *syntax.DeclClause:
			if c.Variant == nil || c.Variant.Value != "export" {
				return nil, refuse(st, "a declaration")
			}
			assigns = c.Args
		default:
			return nil, refuse(st, "a compound command")
		}
		for _, a := range assigns {
			if a.Name == nil || a.Append || a.Index != nil || a.Array != nil {
				return nil, refuse(a, "not a plain assignment")
			}
			if a.Naked { // export VAR: nothing to set
				continue
			}
			env := make([]string, 0, len(order))
			for _, k := range order {
				env = append(env, k+"="+vars[k])
			}
			v, err := expand.Literal(&expand.Config{Env: expand.ListEnviron(env...)}, unescaped(a.Value))
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", a.Pos().Line(), a.Name.Value, err)
			}
			if _, seen := vars[a.Name.Value]; !seen {
				order = append(order, a.Name.Value)
			}
			vars[a.Name.Value] = v
		}
	}
	return vars, nil
}

// unescaped is w with the backslashes of its unquoted parts applied
// (one\ two is "one two"), which expand.Literal leaves in.
func unescaped(w *syntax.Word) *syntax.Word {
	if w == nil {
		return nil
	}
	out := &syntax.Word{Parts: slices.Clone(w.Parts)}
	for i, p := range out.Parts {
		l, ok := p.(*syntax.Lit)
		if !ok || !strings.Contains(l.Value, "\\") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(l.Value); j++ {
			if l.Value[j] == '\\' && j+1 < len(l.Value) {
				j++
			}
			b.WriteByte(l.Value[j])
		}
		out.Parts[i] = &syntax.Lit{ValuePos: l.ValuePos, ValueEnd: l.ValueEnd, Value: b.String()}
	}
	return out
}

// LoadSysconfig reads the sysconfig file at path. Errors name the file.
func LoadSysconfig(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vars, err := ParseSysconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vars, nil
}

// SysconfigPorts returns the ports of the appliance's subscribe and
// publish processes: BASE_SUB followed by each digit 0 to ID_SUB, and
// likewise for pub, as the init script writes them; with its defaults
// (801, 901, ID_SUB 2, ID_PUB 1) when a variable is unset.
func SysconfigPorts(vars map[string]string) (sub, pub []int, err error) {
	ports := func(base, max, defBase, defMax string) ([]int, error) {
		b, m := orDefault(vars[base], defBase), orDefault(vars[max], defMax)
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n > 9 {
			return nil, fmt.Errorf("%s: %q is not a number 0-9", max, m)
		}
		var out []int
		for id := range n + 1 {
			p, err := strconv.Atoi(b + strconv.Itoa(id))
			if err != nil || p < 1 || p > 65535 {
				return nil, fmt.Errorf("%s: %q followed by %d is not a port", base, b, id)
			}
			out = append(out, p)
		}
		return out, nil
	}
	var e1, e2 error
	sub, e1 = ports("BASE_SUB", "ID_SUB", "801", "2")
	pub, e2 = ports("BASE_PUB", "ID_PUB", "901", "1")
	return sub, pub, errors.Join(e1, e2)
}

// FromSysconfig builds the configuration of one process serving every
// port the appliance's sysconfig variables give its processes, with what
// the templates write into their config files: the servers on WS_HOST
// (default 127.0.0.1), the subscribe route SUBWSPATH (and SUBPATH, which
// the appliance's nginx rewrites to it), the publish servers' PUBPATH,
// /server-stat/ and RESTPATH, the key SECURITY_KEY, Redis on the socket
// REDIS_SOCK (default /tmp/redis.sock). The publish servers also serve
// pushpull's /healthz, /readyz and /metrics. The notes name the variables
// it does not know.
func FromSysconfig(vars map[string]string) (c *Config, notes []string, err error) {
	sub, pub, err := SysconfigPorts(vars)
	if err != nil {
		return nil, nil, err
	}
	key := vars["SECURITY_KEY"]
	if key == "" {
		return nil, nil, errors.New("SECURITY_KEY is not set: the appliance's init script would make up one the Bitrix module does not know; set it to the key of the module's settings (Push and Pull)")
	}
	host := orDefault(vars["WS_HOST"], "127.0.0.1")
	subPath, subWSPath := orDefault(vars["SUBPATH"], "/bitrix/sub/"), orDefault(vars["SUBWSPATH"], "/bitrix/subws/")
	subRoutes := []string{subWSPath}
	if subPath != subWSPath {
		subRoutes = append(subRoutes, subPath)
	}
	c = Default()
	c.Servers = nil
	for _, p := range sub {
		c.Servers = append(c.Servers, Server{
			Name: "sub-" + strconv.Itoa(p), Port: p, Hostname: host, Backlog: 1024,
			Routes: Routes{Sub: subRoutes},
		})
	}
	for _, p := range pub {
		c.Servers = append(c.Servers, Server{
			Name: "pub-" + strconv.Itoa(p), Port: p, Hostname: host, Backlog: 1024,
			Routes: Routes{
				Pub: []string{orDefault(vars["PUBPATH"], "/bitrix/pub/")}, Stat: []string{"/server-stat/"},
				Rest:   []string{orDefault(vars["RESTPATH"], "/bitrix/rest/")},
				Health: []string{"/healthz"}, Ready: []string{"/readyz"}, Metrics: []string{"/metrics"},
			},
		})
	}
	c.ClusterMode = true
	c.ProcessUniqueID = "sub-" + strconv.Itoa(sub[0])
	c.Security.Key = key
	c.Storage.Type = "redis"
	c.Storage.Socket = orDefault(vars["REDIS_SOCK"], "/tmp/redis.sock")
	c.Limits.MaxPayload = 1048576 // the publish template's
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if !slices.Contains(sysconfigVars, k) {
			notes = append(notes, fmt.Sprintf("%s: not a variable of the appliance's init script, ignored", k))
		}
	}
	return c, notes, nil
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}
