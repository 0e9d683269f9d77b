package redisengine

import "strings"

// layout names every key and pub/sub channel the engine uses.
type layout struct {
	prefix  string
	cluster bool
	v20     bool // the push server 2.0's keys and values (keys20.go)
}

func newLayout(prefix string, cluster, v20 bool) layout {
	if cluster && !hasHashTag(prefix) {
		// One hash slot for everything keeps a publish one atomic script,
		// as multi-key scripts cannot span slots.
		prefix += "{pushpull}"
	}
	return layout{prefix: prefix, cluster: cluster, v20: v20}
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
func (l layout) stats() string                { return l.prefix + "stats" }

// publishChannel is where a process publishes its messages: the
// original's per-process channel, or in a cluster one sharded channel in
// the keys' slot, so the script may publish to it.
func (l layout) publishChannel(uid string) string {
	if l.cluster {
		return l.prefix + "pushserver"
	}
	return l.prefix + "pushserver:" + uid
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
		return l.prefix + "pushserver"
	}
	return escapeGlob(l.prefix) + "pushserver:*"
}

// probe is the channel a process sends probes to through its own
// subscription: outside the pattern of subscription, in the same slot.
func (l layout) probe(uid string) string { return l.prefix + "pushpull:probe:" + uid }

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
