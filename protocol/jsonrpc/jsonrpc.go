// Package jsonrpc reads and answers the JSON-RPC 2.0 messages of protocol
// version 5: it parses the requests and notifications of clients and the
// backend, and builds the responses to them. The incoming.message
// notifications that deliver published messages are not built here: they
// are written byte by byte, once per message, with every other protocol's
// bytes in protocol/format.
package jsonrpc

import (
	"bytes"
	"encoding/json"
)

// Version is the jsonrpc member of every message.
const Version = "2.0"

// Error codes of the specification.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeServerError is the first of the codes the specification leaves
	// to servers: pushpull answers it to a client over its rate.
	CodeServerError = -32000
)

// Error is the error member of a response.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errors with the specification's messages.
var (
	ErrParse          = &Error{CodeParseError, "Parse error"}
	ErrInvalidRequest = &Error{CodeInvalidRequest, "Invalid Request"}
	ErrMethodNotFound = &Error{CodeMethodNotFound, "Method not found"}
	ErrInvalidParams  = &Error{CodeInvalidParams, "Invalid params"}
	ErrInternal       = &Error{CodeInternalError, "Internal error"}
)

// InvalidParams is an invalid-params error with its own message.
func InvalidParams(msg string) *Error { return &Error{CodeInvalidParams, msg} }

// Request is one call. A request without an id is a notification: it gets
// no response.
type Request struct {
	Method string
	Params json.RawMessage // nil when absent
	ID     json.RawMessage // nil for a notification; else a string, number or null
	// Err is set when the element was not a valid request; ID is then
	// the element's id if one could be read, else nil (answered as null).
	Err *Error
}

// Notification reports whether r expects no response.
func (r *Request) Notification() bool { return r.ID == nil && r.Err == nil }

// Response is one answer.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Result answers r with result.
func (r *Request) Result(v any) Response {
	return Response{JSONRPC: Version, ID: idOrNull(r.ID), Result: v}
}

// Fail answers r with err.
func (r *Request) Fail(err *Error) Response {
	return Response{JSONRPC: Version, ID: idOrNull(r.ID), Error: err}
}

var null = json.RawMessage("null")

func idOrNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return null
	}
	return id
}

// Parse reads one message: a request object or a batch array. A message
// that is not JSON gives ErrParse (answered with a null id); an empty batch
// or a non-object gives one ErrInvalidRequest element. Elements that are
// responses (they carry result or error, no method) are skipped: the
// server sends no requests with ids, so they answer nothing it asked.
func Parse(data []byte) (reqs []Request, batch bool, err *Error) {
	data = bytes.Trim(data, " \t\r\n")
	if !json.Valid(data) {
		return nil, false, ErrParse
	}
	if len(data) > 0 && data[0] == '[' {
		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) != nil {
			return nil, false, ErrParse
		}
		if len(elems) == 0 {
			return []Request{{Err: ErrInvalidRequest}}, false, nil
		}
		reqs = make([]Request, 0, len(elems))
		for _, e := range elems {
			if r, ok := parseOne(e); ok {
				reqs = append(reqs, r)
			}
		}
		return reqs, true, nil
	}
	if r, ok := parseOne(data); ok {
		return []Request{r}, false, nil
	}
	return nil, false, nil
}

func parseOne(data json.RawMessage) (Request, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return Request{Err: ErrInvalidRequest}, true
	}
	var r Request
	if id, ok := m["id"]; ok {
		if !validID(id) {
			return Request{Err: ErrInvalidRequest}, true
		}
		r.ID = id
	}
	method, hasMethod := m["method"]
	if !hasMethod {
		_, res := m["result"]
		_, fail := m["error"]
		if res || fail {
			return Request{}, false
		}
		r.Err = ErrInvalidRequest
		return r, true
	}
	var version string
	if json.Unmarshal(m["jsonrpc"], &version) != nil || version != Version ||
		json.Unmarshal(method, &r.Method) != nil || r.Method == "" {
		r.Err = ErrInvalidRequest
		return r, true
	}
	if p, ok := m["params"]; ok && !bytes.Equal(p, null) {
		if p = bytes.Trim(p, " \t\r\n"); len(p) == 0 || p[0] != '{' && p[0] != '[' {
			r.Err = ErrInvalidRequest
			return r, true
		}
		r.Params = p
	}
	return r, true
}

// validID reports whether id is a string, a number or null.
func validID(id json.RawMessage) bool {
	id = bytes.Trim(id, " \t\r\n")
	if len(id) == 0 {
		return false
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	case bytes.Equal(id, null):
		return true
	}
	return false
}

// Notification is a server-to-client call without an id.
type Notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}
