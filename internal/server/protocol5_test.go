package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pushpull/pushpull/protocol/jsonrpc"
)

// FuzzRPCAnswer checks that any frame gets nothing or one JSON answer.
func FuzzRPCAnswer(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"ping","id":1}`, `[{"jsonrpc":"2.0","method":"publish","params":{}}]`,
		`[]`, `{`, `[1,2]`, `{"jsonrpc":"2.0","result":1,"id":1}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, always bool) {
		calls := 0
		out := (&Server{}).rpcAnswer(context.Background(), data, always, func(_ context.Context, r *jsonrpc.Request) (any, *jsonrpc.Error) {
			calls++
			if strings.HasPrefix(r.Method, "e") {
				return nil, jsonrpc.ErrInvalidParams
			}
			return map[string]any{"m": r.Method}, nil
		})
		if out == nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("answer %q is not JSON", out)
		}
	})
}
