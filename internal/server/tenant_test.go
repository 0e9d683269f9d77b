package server

import (
	"testing"

	"github.com/pushpull/pushpull/protocol"
)

// fuzzPub is a channel id and fuzzTenant a shared-mode tenant with a key,
// for the fuzz tests of what clients and backends send.
const fuzzPub = "0123456789abcdef0123456789abcdef"

func fuzzTenant(t testing.TB) *tenant {
	signer, err := protocol.NewSigner("k", "sha1")
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{id: "c", signer: signer, key: []byte("k")}
}
