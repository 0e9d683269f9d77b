package redisengine

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/store"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

// testdata/layout20 holds what the original push server 2.0 wrote to
// Redis in a run of TestInterop20 (PUSHPULL_PS20_CAPTURE): a backend's
// text publish to a32 "a0..." private channel with Message-Expiry 600, and
// a client's protobuf publish to its public channel "d3...".
func fixture20(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "layout20", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	fixturePrivate = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
	fixturePublic  = "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"
)

func TestDecode20Original(t *testing.T) {
	ttl := store.TTLs{Message: 24 * time.Hour, Channel: 24 * time.Hour}
	backend, err := decode20(fixture20(t, "backend-stored.bin"), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.ValidMID(backend.MID) || backend.Channels != nil || backend.Expiry != 600 ||
		string(backend.Body) != `{"module_id":"im","command":"message","params":{"text":"from 2.0"}}` ||
		backend.Sender != (protocol.Sender{Type: protocol.SenderBackend}) || backend.Created.IsZero() ||
		!backend.Expires.Equal(backend.Created.Add(600*time.Second)) {
		t.Fatalf("the original's stored message decoded as %+v", backend)
	}
	ms, err := decodeBatch20(fixture20(t, "backend-published.bin"), ttl)
	if err != nil || len(ms) != 1 {
		t.Fatalf("the original's payload decoded as %v, %v", ms, err)
	}
	if ms[0].MID != backend.MID || !slices.Equal(ms[0].Channels, []string{fixturePrivate}) || string(ms[0].Body) != string(backend.Body) {
		t.Fatalf("the original's payload decoded as %+v", ms[0])
	}

	client, err := decode20(fixture20(t, "client-stored.bin"), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if client.Sender != (protocol.Sender{Type: protocol.SenderClient, ID: fixturePublic}) || string(client.Body) != `{"from":"2.0 client"}` {
		t.Fatalf("a client's stored message decoded as %+v", client)
	}
	ms, err = decodeBatch20(fixture20(t, "client-published.bin"), ttl)
	if err != nil || len(ms) != 1 || ms[0].MID != client.MID || !slices.Equal(ms[0].Channels, []string{fixturePublic}) || ms[0].Sender != client.Sender {
		t.Fatalf("a client's payload decoded as %+v, %v", ms, err)
	}
}

// pushpull writes what the original writes: re-encoding the original's
// messages gives its bytes back, up to the fields pushpull adds.
func TestEncode20AsOriginal(t *testing.T) {
	ttl := store.TTLs{Message: 24 * time.Hour, Channel: 24 * time.Hour}
	for _, name := range []string{"backend", "client"} {
		stored := fixture20(t, name+"-stored.bin")
		m, err := decode20(stored, ttl)
		if err != nil {
			t.Fatal(err)
		}
		got := encode20(m, ttl)
		if !bytes.HasPrefix(got, stored) {
			t.Errorf("%s: pushpull stores\n%x\nthe original\n%x", name, got, stored)
		}
		// The payload differs from the original's in its receivers (both
		// kinds of a private channel; no signatures), so compare what
		// the official schema reads of the message itself.
		ms, err := decodeBatch20(fixture20(t, name+"-published.bin"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		var want, have pb.OutgoingMessage
		if err := proto.Unmarshal(stored, &want); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(encode20(ms[0], ttl), &have); err != nil {
			t.Fatal(err)
		}
		have.ProtoReflect().SetUnknown(nil)
		if !proto.Equal(&want, &have) {
			t.Errorf("%s: pushpull stores %v, the original %v", name, &have, &want)
		}
	}
}

func TestCodec20RoundTrip(t *testing.T) {
	ttl := store.TTLs{Message: time.Hour, Channel: time.Hour}
	m := &protocol.Message{
		MID: protocol.FormatMID(1700000000, 42), ID: 42, Channels: []string{chA, "user:5", fixturePublic},
		Body: []byte(`{"a":"<é>\"\\"}`), Expiry: 60, Created: time.UnixMilli(1700000000123),
		Sender:     protocol.Sender{Type: protocol.SenderClient, ID: fixturePublic},
		UserParams: map[string]json.RawMessage{"5": json.RawMessage(`{"x":1}`)}, Dictionary: json.RawMessage(`{"d":2}`),
	}
	got, err := decode20(encode20(m, ttl), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if got.MID != m.MID || got.ID != 42 || string(got.Body) != string(m.Body) || !slices.Equal(got.Channels, m.Channels) ||
		got.Expiry != 60 || !got.Created.Equal(m.Created) || !got.Expires.Equal(m.Created.Add(time.Minute)) ||
		got.Sender != m.Sender || string(got.UserParams["5"]) != `{"x":1}` || string(got.Dictionary) != `{"d":2}` {
		t.Fatalf("decoded %+v", got)
	}

	// The official schema reads the original's fields of it.
	var om pb.OutgoingMessage
	if err := proto.Unmarshal(encode20(m, ttl), &om); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(om.GetId()) != m.MID || om.GetBody() != string(m.Body) || om.GetExpiry() != 60 || om.GetCreated() != 1700000000 ||
		om.GetSender().GetType() != pb.SenderType_CLIENT || hex.EncodeToString(om.GetSender().GetId()) != fixturePublic {
		t.Fatalf("the schema reads %v", &om)
	}

	// The pub/sub payload: a receiver of each kind for a backend's
	// message, the public one only for a client's; none for a channel the
	// original cannot name.
	for _, sender := range []protocol.Sender{{}, m.Sender} {
		m.Sender = sender
		ms, err := decodeBatch20(encodeBatch20(m, ttl), ttl)
		if err != nil || len(ms) != 1 || ms[0].MID != m.MID || !slices.Equal(ms[0].Channels, m.Channels) {
			t.Fatalf("payload decoded as %+v, %v", ms, err)
		}
		kinds := receivers20(t, encodeBatch20(m, ttl))
		want := []string{"private " + chA, "public " + chA, "private " + fixturePublic, "public " + fixturePublic}
		if sender.Type == protocol.SenderClient {
			want = []string{"public " + chA, "public " + fixturePublic}
		}
		if !slices.Equal(kinds, want) {
			t.Fatalf("sender %v: receivers %v, want %v", sender, kinds, want)
		}
	}
}

// receivers20 lists the receivers of a payload as the original reads
// them: "private <id>" or "public <id>".
func receivers20(t *testing.T, payload []byte) []string {
	t.Helper()
	var out []string
	var walk func(b []byte, depth int)
	walk = func(b []byte, depth int) {
		err := fields(b, func(f field) error {
			switch {
			case depth < 3 && f.num == 1:
				walk(f.b, depth+1)
			case depth == 3 && f.num == 1:
				var r pb.Receiver
				if err := proto.Unmarshal(f.b, &r); err != nil {
					return err
				}
				kind := "public "
				if r.GetIsPrivate() {
					kind = "private "
				}
				out = append(out, kind+hex.EncodeToString(r.GetId()))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk(payload, 0)
	return out
}

func TestDecode20Rejects(t *testing.T) {
	ttl := store.DefaultTTLs
	good := fixture20(t, "backend-stored.bin")
	for name, b := range map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-3],
		"no id":          good[15:],
		"short id":       append([]byte{0x0a, 0x02, 0x17, 0x96}, good[15:]...),
		"id not digits":  append(append([]byte{0x0a, 0x0d}, bytes.Repeat([]byte{0xff}, 13)...), good[15:]...),
		"body not JSON":  append(append([]byte(nil), good[:15]...), 0x12, 0x03, 'a', 'b', 'c'),
		"wrong wiretype": append(append([]byte(nil), good...), 0x18, 0x00, 0x1a, 0x00), // expiry as bytes
		"bad tag":        append(append([]byte(nil), good...), 0x00),
	} {
		if m, err := decode20(b, ttl); err == nil {
			t.Errorf("%s: decoded %+v", name, m)
		}
	}
	if _, err := decodeBatch20([]byte{0x0a, 0x05, 0x0a}, ttl); err == nil {
		t.Error("a truncated payload decoded")
	}
	// A message whose body is not JSON keeps its id only.
	bad := append(append([]byte(nil), good[:15]...), 0x12, 0x03, 'a', 'b', 'c')
	ms, err := decodeBatch20(append(encodeBatchHead20(&protocol.Message{Channels: []string{chA}}, len(bad)), bad...), ttl)
	if err != nil || len(ms) != 1 || ms[0].MID != textMID(string(good[2:15])) || ms[0].Body != nil || ms[0].Channels != nil {
		t.Errorf("a message not JSON decoded as %+v, %v", ms, err)
	}
	// A license notification carries no message.
	if ms, err := decodeBatch20([]byte{0x0a, 0x02, 0x12, 0x00}, ttl); err != nil || len(ms) != 0 {
		t.Errorf("a license notification decoded as %v, %v", ms, err)
	}
}

func FuzzDecode20(f *testing.F) {
	for _, name := range []string{"backend-stored.bin", "backend-published.bin", "client-stored.bin", "client-published.bin"} {
		f.Add(fixture20(f, name))
	}
	ttl := store.DefaultTTLs
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := decode20(data, ttl); err == nil {
			again, err := decode20(encode20(m, ttl), ttl)
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if again.MID != m.MID || !bytes.Equal(again.Body, m.Body) || !slices.Equal(again.Channels, m.Channels) || again.Sender != m.Sender {
				t.Fatalf("round trip changed %+v into %+v", m, again)
			}
			if !json.Valid(m.Body) {
				t.Fatalf("body %q is not JSON", m.Body)
			}
		}
		ms, err := decodeBatch20(data, ttl)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !protocol.ValidMID(m.MID) || m.Body != nil && !json.Valid(m.Body) || m.Body == nil && m.Channels != nil {
				t.Fatalf("payload decoded into %+v", m)
			}
		}
	})
}
