// Package protocol holds the wire formats of the Bitrix Push & Pull system
// that the protocol versions share: channel ids, their signatures and the
// CHANNEL_ID lists that carry them, messages and their ids, the names of
// hub channels (namespaces, user and status channels), the rule that makes
// a body safe to embed in an envelope, the HS256 tokens of protocol-5
// connections, and the WebSocket close codes of every version. What each
// protocol version writes to a subscriber is in protocol/format; the
// protocol-4 protobuf schema is in protocol/pb, the protocol-5 JSON-RPC
// requests and responses in protocol/jsonrpc. It does no I/O and starts no
// goroutines, so every function here is safe to fuzz.
package protocol
