// Package protocol holds the wire formats of the Bitrix Push & Pull system
// that the protocol versions share: channel ids, their signatures and the
// CHANNEL_ID lists that carry them, messages and their ids, the text
// (#!NGINXNMS!#) and JSON envelopes around a published message (protocols
// 1-3), and the HS256 tokens of protocol-5 connections. The protocol-4
// protobuf schema is in protocol/pb, the protocol-5 JSON-RPC requests and
// responses in protocol/jsonrpc. It does no I/O and starts no goroutines,
// so every function here is safe to fuzz.
package protocol
