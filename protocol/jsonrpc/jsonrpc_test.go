package jsonrpc

import (
	"encoding/json"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in        string
		batch     bool
		parseErr  bool
		wantCodes []int // 0: valid request
		wantIDs   []string
	}{
		{in: `{"jsonrpc":"2.0","method":"ping","params":{},"id":7}`, wantCodes: []int{0}, wantIDs: []string{"7"}},
		{in: `{"jsonrpc":"2.0","method":"publish","params":{}}`, wantCodes: []int{0}, wantIDs: []string{""}},
		{in: `not json`, parseErr: true},
		{in: `[]`, wantCodes: []int{CodeInvalidRequest}, wantIDs: []string{""}},
		{in: `[1,{"jsonrpc":"2.0","method":"a","id":"x"}]`, batch: true, wantCodes: []int{CodeInvalidRequest, 0}, wantIDs: []string{"", `"x"`}},
		{in: `{"jsonrpc":"1.0","method":"ping","id":2}`, wantCodes: []int{CodeInvalidRequest}, wantIDs: []string{"2"}},
		{in: `{"jsonrpc":"2.0","method":"ping","params":"x","id":3}`, wantCodes: []int{CodeInvalidRequest}, wantIDs: []string{"3"}},
		{in: `{"jsonrpc":"2.0","method":"ping","id":{}}`, wantCodes: []int{CodeInvalidRequest}, wantIDs: []string{""}},
		{in: `{"jsonrpc":"2.0","result":{},"id":4}`},
	}
	for _, c := range cases {
		reqs, batch, perr := Parse([]byte(c.in))
		if (perr != nil) != c.parseErr {
			t.Errorf("%s: parse error %v", c.in, perr)
			continue
		}
		if batch != c.batch || len(reqs) != len(c.wantCodes) {
			t.Errorf("%s: batch %v, %d requests; want %v, %d", c.in, batch, len(reqs), c.batch, len(c.wantCodes))
			continue
		}
		for i, r := range reqs {
			code := 0
			if r.Err != nil {
				code = r.Err.Code
			}
			if code != c.wantCodes[i] || string(r.ID) != c.wantIDs[i] {
				t.Errorf("%s [%d]: code %d id %s; want %d %s", c.in, i, code, r.ID, c.wantCodes[i], c.wantIDs[i])
			}
		}
	}
}

func TestResponseShape(t *testing.T) {
	r := Request{Method: "ping", ID: json.RawMessage("5")}
	b, _ := json.Marshal(r.Result(map[string]any{}))
	if string(b) != `{"jsonrpc":"2.0","id":5,"result":{}}` {
		t.Errorf("result: %s", b)
	}
	b, _ = json.Marshal((&Request{}).Fail(ErrParse))
	if string(b) != `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}` {
		t.Errorf("error: %s", b)
	}
}
