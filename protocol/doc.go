// Package protocol holds the wire formats of the Bitrix Push & Pull system:
// channel ids and their signatures, message ids, and the envelopes each
// protocol version puts around a published message. It does no I/O and starts
// no goroutines, so every function here is safe to fuzz.
package protocol
