package redisengine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pushpull/pushpull/protocol"
)

// layout names every key and pub/sub channel the engine uses, for one
// installation: the one whose message counter orders a channel (in the
// shared mode a clientId, else ""). With installation tags (Options.Tags
// TagsInstallation) every installation but "" has keys of its own under
// the hash tag {<clientId>}, so a Redis Cluster spreads installations
// over its masters; otherwise all share one set of keys (in a cluster
// under one tag).
type layout struct {
	prefix  string // the keys' prefix for this installation
	pub     string // the pub/sub channels' prefix
	base    string // the prefix of installation "" and of shared keys (stats)
	root    string // Options.Prefix as given
	inst    string // the installation this layout names keys of
	cluster bool
	tagged  bool // one hash tag per installation
	v20     bool // the push server 2.0's keys and values (keys20.go)
}

func newLayout(prefix string, cluster, v20, tagged bool) layout {
	root := prefix
	if cluster && !hasHashTag(prefix) {
		// One hash slot for everything keeps a publish one atomic script,
		// as multi-key scripts cannot span slots.
		prefix += "{pushpull}"
	}
	return layout{prefix: prefix, pub: prefix, base: prefix, root: root, cluster: cluster, tagged: tagged, v20: v20}
}

// in is the layout of installation inst. In a cluster its pub/sub
// channel is in its keys' slot, so the publish script may send to it;
// on one Redis every installation publishes where the others do.
func (l layout) in(inst string) layout {
	if !l.tagged || inst == l.inst {
		return l
	}
	l.inst = inst
	l.prefix = l.base
	if inst != "" {
		l.prefix = l.root + "{" + inst + "}"
	}
	if l.cluster {
		l.pub = l.prefix
	}
	return l
}

// of is the layout of the installation name (a channel, user or status
// name) belongs to.
func (l layout) of(name string) layout { return l.in(protocol.Namespace(name)) }

// installationGroup is the channels of one installation among a list.
type installationGroup struct {
	keys     layout
	channels []string
	at       []int // the position of each in the list; nil: the group is the list
}

// position is the place in the list grouped of the group's j-th channel.
func (g installationGroup) position(j int) int {
	if g.at == nil {
		return j
	}
	return g.at[j]
}

// byInstallation groups channels by installation, in the order each
// installation first occurs: one group of them all without installation
// tags.
func (l layout) byInstallation(channels []string) []installationGroup {
	if !l.tagged {
		return []installationGroup{{keys: l, channels: channels}}
	}
	var groups []installationGroup
	for i, ch := range channels {
		inst := protocol.Namespace(ch)
		j := slices.IndexFunc(groups, func(g installationGroup) bool { return g.keys.inst == inst })
		if j < 0 {
			groups = append(groups, installationGroup{keys: l.in(inst)})
			j = len(groups) - 1
		}
		groups[j].channels = append(groups[j].channels, ch)
		groups[j].at = append(groups[j].at, i)
	}
	return groups
}

// installationOf is the installation whose counter numbers m.
func (l layout) installationOf(channels []string) (string, error) {
	if !l.tagged || len(channels) == 0 {
		return "", nil
	}
	inst := protocol.Namespace(channels[0])
	for _, ch := range channels[1:] {
		if protocol.Namespace(ch) != inst {
			return "", fmt.Errorf("redis: one message to channels of installations %q and %q: each installation numbers its own", inst, protocol.Namespace(ch))
		}
	}
	return inst, nil
}

// hasHashTag reports whether Redis Cluster would hash s by a {tag} inside
// it: the first '{' followed, later, by a '}' with something in between.
func hasHashTag(s string) bool {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(s[i+1:], '}')
	return j > 0
}

func (l layout) messagePrefix() string        { return l.prefix + "message:" }
func (l layout) message(mid string) string    { return l.prefix + "message:" + mid }
func (l layout) channel(id string) string     { return l.prefix + "channel:" + id + ":messages" }
func (l layout) counter() string              { return l.prefix + "server:messagecounter" }
func (l layout) startDate() string            { return l.prefix + "server:startdate" }
func (l layout) online(channel string) string { return l.prefix + "online:" + channel }
func (l layout) stats() string                { return l.base + "stats" }

// publishChannel is where a process publishes its messages: the
// original's per-process channel, or in a cluster one sharded channel in
// the keys' slot, so the script may publish to it.
func (l layout) publishChannel(uid string) string {
	if l.cluster {
		return l.pub + "pushserver"
	}
	return l.pub + "pushserver:" + uid
}

// publishCommand is the command the publish script sends publishChannel.
func (l layout) publishCommand() string {
	if l.cluster {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// subscription is what subscribers listen to: the pattern of every
// process's channel (PSUBSCRIBE), or the one sharded channel (SSUBSCRIBE).
func (l layout) subscription() string {
	if l.cluster {
		return l.pub + "pushserver"
	}
	return escapeGlob(l.pub) + "pushserver:*"
}

// probe is the channel a process sends probes to through its own
// subscription: outside the pattern of subscription, in the same slot.
func (l layout) probe(uid string) string { return l.pub + "pushpull:probe:" + uid }

// escapeGlob quotes the characters PSUBSCRIBE patterns give a meaning.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
