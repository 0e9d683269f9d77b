// Package httpjson writes the JSON answers of pushpull's own HTTP APIs
// (the backend API and the admin page's calls).
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers v as JSON with status code, or a 500 naming the failure
// if v cannot be encoded.
func Write(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
