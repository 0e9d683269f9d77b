package format

import (
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/protocol/pb"
)

func TestIncomingMessage(t *testing.T) {
	m := &protocol.Message{
		MID: protocol.FormatMID(1700000000, 3), Body: []byte(`{"module_id":"im","command":"c","params":{}}`),
		Created: time.Unix(1700000001, 0), Expiry: 60,
		Sender:     protocol.Sender{Type: protocol.SenderClient, ID: "0123456789abcdef0123456789abcdef"},
		UserParams: map[string]json.RawMessage{"7": json.RawMessage(`{"u":7}`)},
		Dictionary: json.RawMessage(`{"d":1}`),
	}
	type params struct {
		MID        string          `json:"mid"`
		Body       json.RawMessage `json:"body"`
		UserParams json.RawMessage `json:"user_params"`
		Dictionary json.RawMessage `json:"dictionary"`
		Created    int64           `json:"created"`
	}
	decode := func(channel string) params {
		var n struct {
			JSONRPC, Method string
			Params          params
		}
		b := appendIncomingMessage(nil, m, channel)
		if err := json.Unmarshal(b, &n); err != nil || n.Method != "incoming.message" {
			t.Fatalf("%s: %v", b, err)
		}
		return n.Params
	}
	p := decode("c|user:7")
	if p.MID != m.MID || string(p.Body) != string(m.Body) || string(p.UserParams) != `{"u":7}` || string(p.Dictionary) != `{"d":1}` || p.Created != 1700000001 {
		t.Errorf("user 7: %+v", p)
	}
	if p := decode("user:8"); p.UserParams != nil {
		t.Errorf("user 8 got %s", p.UserParams)
	}
	// A body that is not an object is wrapped into one.
	m.Body = []byte(`"text"`)
	if p := decode(""); string(p.Body) != `{"module_id":"","command":"","params":{"text":"text"},"extra":{}}` {
		t.Errorf("wrapped body %s", p.Body)
	}
}

func TestBinaryFrame(t *testing.T) {
	m := &protocol.Message{MID: protocol.FormatMID(1700000000, 12), Body: []byte(`{}`), Created: time.Unix(5, 0)}
	var rb pb.ResponseBatch
	if err := proto.Unmarshal(Protobuf.AppendMessage(nil, m, ""), &rb); err != nil {
		t.Fatal(err)
	}
	om := rb.GetResponses()[0].GetOutgoingMessages().GetMessages()[0]
	if hex.EncodeToString(om.GetId()) != m.MID || om.GetSender().GetType() != pb.SenderType_BACKEND || om.GetCreated() != 5 {
		t.Errorf("decoded %v", om)
	}
}

// A protocol-5 long-polling body is one JSON array of incoming.message
// notifications, oldest first, each written for the channel it came
// through (a user channel picks that user's user_params); the stock
// clients run every element of an array and answer none of them.
func TestJSONRPCBody(t *testing.T) {
	m := &protocol.Message{
		MID: protocol.FormatMID(1700000000, 1), Body: []byte(`{"module_id":"im","command":"c","params":{}}`),
		Created: time.Unix(1700000001, 0), UserParams: map[string]json.RawMessage{"7": json.RawMessage(`{"u":7}`)},
	}
	n := &protocol.Message{MID: protocol.FormatMID(1700000000, 2), Body: []byte(`{"module_id":"im","command":"d","params":{}}`), Created: time.Unix(1700000002, 0)}
	b := JSONRPC.AppendBody(nil, []Delivery{{Msg: m, Channel: "c|user:7"}, {Msg: n, Channel: "c|0123456789abcdef0123456789abcdef"}})
	var batch []struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		ID      json.RawMessage `json:"id"`
		Params  struct {
			MID        string          `json:"mid"`
			UserParams json.RawMessage `json:"user_params"`
		} `json:"params"`
	}
	if err := json.Unmarshal(b, &batch); err != nil || len(batch) != 2 {
		t.Fatalf("body %s: %v; want an array of two", b, err)
	}
	for i, want := range []*protocol.Message{m, n} {
		e := batch[i]
		if e.JSONRPC != "2.0" || e.Method != "incoming.message" || e.ID != nil || e.Params.MID != want.MID {
			t.Errorf("element %d %+v; want the notification of %s", i, e, want.MID)
		}
	}
	if string(batch[0].Params.UserParams) != `{"u":7}` || batch[1].Params.UserParams != nil {
		t.Errorf("user_params %s, %s", batch[0].Params.UserParams, batch[1].Params.UserParams)
	}
	if got := JSONRPC.ContentType(); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
}
