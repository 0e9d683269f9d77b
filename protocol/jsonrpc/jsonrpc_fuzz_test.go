package jsonrpc

import (
	"encoding/json"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"ping","params":{},"id":1}`,
		`[{"jsonrpc":"2.0","method":"publish","params":{"channelList":["a.b"]}}]`,
		`[]`, `[1]`, `{"jsonrpc":"2.0","result":{},"id":3}`, `nope`, `{"id":{}}`,
		`{"jsonrpc":"2.0","method":"x","params":3,"id":"a"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, batch, perr := Parse(data)
		if perr != nil {
			if reqs != nil || perr.Code != CodeParseError {
				t.Fatalf("parse error with requests or code %d", perr.Code)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("invalid JSON accepted: %q", data)
		}
		for _, r := range reqs {
			if r.Err == nil && r.Method == "" {
				t.Fatalf("request without method and without error: %q", data)
			}
			// Every answer must marshal: the server writes it back.
			var resp Response
			if r.Err != nil {
				resp = r.Fail(r.Err)
			} else {
				resp = r.Result(true)
			}
			b, err := json.Marshal(resp)
			if err != nil || !json.Valid(b) {
				t.Fatalf("response %q: %v", b, err)
			}
		}
		_ = batch
	})
}
