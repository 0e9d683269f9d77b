package server

import (
	"net/http"

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
	if !s.shared() {
		return s.personal, true
	}
	t, ok := s.tenants[r.URL.Query().Get("clientId")]
	return t, ok
}

// newTenants builds the tenants of the configuration.
func (s *Server) newTenants() error {
	s.personal = &tenant{signer: s.signer, key: []byte(s.cfg.Security.Key)}
	s.tenants = make(map[string]*tenant, len(s.cfg.Security.Clients))
	for id, key := range s.cfg.Security.Clients {
		signer, err := protocol.NewSigner(key, s.cfg.Security.Algo)
		if err != nil {
			return err
		}
		s.tenants[id] = &tenant{id: id, signer: signer, key: []byte(key)}
	}
	return nil
}
