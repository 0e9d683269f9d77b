package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushpull/pushpull/protocol"
)

func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	ttl := TTLs{Message: time.Hour, Channel: 2 * time.Hour}
	a := NewMemory(ttl, clock)
	for i, chans := range [][]string{{"a"}, {"b"}, {"a", "b"}, {"a"}} {
		m := &protocol.Message{Channels: chans, Body: []byte(`{"n":` + string(rune('0'+i)) + `}`)}
		if i == 3 {
			m.Expiry = 1 // gone before the snapshot is read
		}
		if err := a.Save(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "snapshot")
	if err := a.SaveSnapshot(path); err != nil {
		t.Fatal(err)
	}

	now = now.Add(2 * time.Second)
	b := NewMemory(ttl, clock)
	if ok, err := b.LoadSnapshot(path); !ok || err != nil {
		t.Fatalf("LoadSnapshot = %v, %v", ok, err)
	}
	// Used once: a crash from here on must not bring these ids back.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the snapshot is still there after it was loaded: %v", err)
	}
	if b.Start() != a.Start() {
		t.Fatalf("start %d, want %d", b.Start(), a.Start())
	}
	got, _ := b.Since(ctx, []string{"a", "b"}, protocol.FormatMID(a.Start(), 0))
	var bodies []string
	for _, m := range got {
		bodies = append(bodies, string(m.Body))
	}
	if want := `{"n":0} {"n":1} {"n":2}`; strings.Join(bodies, " ") != want {
		t.Fatalf("restored %q, want %q", bodies, want)
	}
	if msgs, chans := b.Len(); msgs != 3 || chans != 2 {
		t.Fatalf("Len = %d messages, %d channels", msgs, chans)
	}
	// Ids continue the old sequence.
	m := &protocol.Message{Channels: []string{"a"}, Body: []byte(`{}`)}
	if err := b.Save(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m.ID != 5 || m.MID != protocol.FormatMID(a.Start(), 5) {
		t.Fatalf("next id %d %s", m.ID, m.MID)
	}
	// The restored messages still expire.
	now = now.Add(time.Hour - time.Second)
	b.Expire()
	if msgs, _ := b.Len(); msgs != 1 {
		t.Fatalf("%d messages left after their TTL", msgs)
	}
}

func TestSnapshotErrors(t *testing.T) {
	if ok, err := NewMemory(DefaultTTLs, nil).LoadSnapshot(filepath.Join(t.TempDir(), "none")); ok || err != nil {
		t.Fatalf("missing file: %v, %v", ok, err)
	}
	for _, bad := range []string{"", "{", `{"version":99}`, `{"version":1,"messages":2}` + "\n{}\n[1]"} {
		if err := NewMemory(DefaultTTLs, nil).ReadSnapshot(bytes.NewReader([]byte(bad))); err == nil {
			t.Errorf("snapshot %q accepted", bad)
		}
	}
}
