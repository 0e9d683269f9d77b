package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

// tenant is whose channels a request addresses: in the personal mode the
// one installation the server belongs to, in the shared ("cloud") mode
// (security.clients) the client named by the clientId parameter.
//
// Channels, users and status subscriptions of a client live under its own
// namespace: the hub, the store and Redis see "<clientId>|<id>", so the
// same channel id under two clientIds are two channels. Clients never see
// the prefix.
type tenant struct {
	id     string // "" in the personal mode
	signer *protocol.Signer
	key    []byte // the signer's key: protocol-5 tokens are signed with it

	// The key this one replaced, which the signer and tokens still
	// accept from since until until (security.keyGracePeriod); nil when
	// there is none.
	prevKey      []byte
	since, until time.Time
}

// newTenant builds the tenant id with key. old is the tenant it replaces
// on a reload (nil at start), previous a configured previous key
// (security.previousKey). The key replaced by a change, else a previous
// key given anew, verifies for grace from now; one kept from before keeps
// its start. An expired previous key is dropped and never comes back.
func newTenant(id, key, previous, algo string, old *tenant, grace time.Duration, now time.Time) (*tenant, error) {
	signer, err := protocol.NewSigner(key, algo)
	if err != nil {
		return nil, err
	}
	t := &tenant{id: id, signer: signer, key: []byte(key)}
	var prev string
	var since time.Time
	switch {
	case old != nil && string(old.key) != key:
		prev, since = string(old.key), now
	case previous != "" && (old == nil || string(old.prevKey) != previous):
		prev, since = previous, now
	case old != nil && old.prevKey != nil && now.Before(old.until):
		prev, since = string(old.prevKey), old.since
	}
	if prev == "" || prev == key || key == "" || grace <= 0 || !now.Before(since.Add(grace)) {
		return t, nil
	}
	ps, err := protocol.NewSigner(prev, algo)
	if err != nil {
		return nil, err
	}
	t.prevKey, t.since, t.until = []byte(prev), since, since.Add(grace)
	t.signer = signer.WithPrevious(ps, t.until)
	return t, nil
}

// verifyJWT checks a protocol-5 token with the key, or the previous one
// while it is accepted.
func (t *tenant) verifyJWT(token string, now time.Time) (protocol.Claims, error) {
	claims, err := protocol.VerifyJWT(token, t.key, now)
	if errors.Is(err, protocol.ErrJWTSignature) && t.prevKey != nil && now.Before(t.until) {
		return protocol.VerifyJWT(token, t.prevKey, now)
	}
	return claims, err
}

// nsSep separates a clientId from the id it namespaces.
const nsSep = protocol.NamespaceSep

// ch returns the hub and store name of channel id.
func (t *tenant) ch(id string) string {
	if t.id == "" {
		return id
	}
	return t.id + nsSep + id
}

// userChannel is the internal channel a user's protocol-5 connections
// join: publishes to a userList go there.
func (t *tenant) userChannel(user string) string { return t.ch("user:" + user) }

// statusChannel carries a user's online/offline changes to the
// connections that subscribed to them.
func (t *tenant) statusChannel(user string) string { return t.ch("status:" + user) }

// user is the presence key of a user.
func (t *tenant) user(user string) string { return t.ch(user) }

// bareChannel strips a clientId namespace from a hub channel name.
func bareChannel(ch string) string { return protocol.BareChannel(ch) }

// shared reports whether the server runs in the shared mode.
func (s *Server) shared() bool { return len(s.cfg.Security.Clients) > 0 }

// tenantOf returns the tenant a request names with clientId. In the shared
// mode an absent or unknown clientId gives false; in the personal mode
// clientId is ignored.
func (s *Server) tenantOf(r *http.Request) (*tenant, bool) {
	l := s.live.Load()
	if !s.shared() {
		return l.personal, true
	}
	t, ok := l.tenants[r.URL.Query().Get("clientId")]
	return t, ok
}
