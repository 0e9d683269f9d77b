package server

import (
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/protocol"
)

// newTenant keeps the key a change replaced, or a configured previous key,
// for the grace period from the change, and drops it for good once over.
func TestNewTenantGrace(t *testing.T) {
	now := time.Now()
	const hour = time.Hour
	id := "0123456789abcdef0123456789abcdef"
	signedBy := func(key string) string {
		s, _ := protocol.NewSigner(key, "sha1")
		return s.SignChannel(id)
	}
	accepts := func(tn *tenant, key string) bool {
		_, err := tn.signer.ParseChannels(signedBy(key))
		return err == nil
	}
	must := func(tn *tenant, err error) *tenant {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}

	// At start, a configured previous key verifies for the grace.
	start := must(newTenant("", "b", "a", "sha1", nil, hour, now))
	if !accepts(start, "a") || !accepts(start, "b") || accepts(start, "c") {
		t.Error("at start with previousKey a: want a and b accepted, c refused")
	}
	// A change makes the running key the previous one, whatever the file says.
	changed := must(newTenant("", "c", "a", "sha1", start, hour, now.Add(time.Minute)))
	if !accepts(changed, "b") || !accepts(changed, "c") || accepts(changed, "a") {
		t.Error("after b -> c: want b and c accepted, a refused")
	}
	// The same key again keeps the previous key and the start of its grace;
	// a shorter grace may end it.
	kept := must(newTenant("", "c", "", "sha1", changed, hour, now.Add(2*time.Minute)))
	if !kept.until.Equal(changed.until) || !accepts(kept, "b") {
		t.Errorf("kept until %v, want %v, with b accepted", kept.until, changed.until)
	}
	short := must(newTenant("", "c", "", "sha1", kept, 30*time.Second, now.Add(2*time.Minute)))
	if short.prevKey != nil || accepts(short, "b") {
		t.Error("a grace already over still accepts b")
	}
	// Once dropped, a longer grace does not bring it back.
	if back := must(newTenant("", "c", "", "sha1", short, hour, now.Add(3*time.Minute))); accepts(back, "b") {
		t.Error("an expired previous key came back")
	}
	// Tokens: the previous key's verify during the grace.
	claims := map[string]any{"exp": now.Add(hour).Unix(), "chan": id}
	if _, err := changed.verifyJWT(protocol.SignJWT(claims, []byte("b")), now); err != nil {
		t.Errorf("a token of the previous key during the grace: %v", err)
	}
	if _, err := short.verifyJWT(protocol.SignJWT(claims, []byte("b")), now); err == nil {
		t.Error("a token of the previous key after the grace verified")
	}
	if _, err := changed.verifyJWT(protocol.SignJWT(claims, []byte("c")), now); err != nil {
		t.Errorf("a token of the key: %v", err)
	}
}

// In the shared mode a reload replaces each client's key with the same
// grace, adds and removes clients, and never switches the mode.
func TestNewLiveClients(t *testing.T) {
	cfg := config.Default()
	cfg.Security.Clients = map[string]string{"one": "k1", "gone": "k0"}
	s := &Server{cfg: cfg}
	now := time.Now()
	old, err := s.newLive(cfg, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	next := config.Default()
	next.Security.Clients = map[string]string{"one": "k2", "new": "k3"}
	l, err := s.newLive(next, old, now)
	if err != nil {
		t.Fatal(err)
	}
	id := "0123456789abcdef0123456789abcdef"
	verifies := func(tn *tenant, key string) bool {
		sg, _ := protocol.NewSigner(key, "sha1")
		_, err := tn.signer.ParseChannels(sg.SignChannel(id))
		return err == nil
	}
	if one := l.tenants["one"]; !verifies(one, "k1") || !verifies(one, "k2") {
		t.Error("client one: want its old and new keys to verify")
	}
	if n := l.tenants["new"]; n == nil || !verifies(n, "k3") || verifies(n, "k1") {
		t.Error("client new: want its own key alone")
	}
	if _, ok := l.tenants["gone"]; ok {
		t.Error("a removed client is still there")
	}
	// No clients: the shared mode stays, with the clients it has.
	if kept, err := s.newLive(config.Default(), l, now); err != nil || len(kept.tenants) != 2 {
		t.Errorf("a reload without clients: %d clients (%v), want the 2 running", len(kept.tenants), err)
	}
}
