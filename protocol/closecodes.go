package protocol

// WebSocket close codes: every code pushpull closes a connection with, and
// every code the Bitrix clients know (their CloseReasons), in one table.
// The clients reconnect after any close; the comments say what else a code
// means to them, and which ones only clients send.
const (
	// RFC 6455 codes.

	// CloseNormal: the connection ended normally; a client's close frame
	// without a code counts as this. CloseReasons.NORMAL_CLOSURE: the
	// clients close with it when they stop or go offline.
	CloseNormal = 1000
	// CloseGoingAway: an endpoint goes away. CloseReasons.SERVER_DIE.
	// pushpull's graceful stop sends CloseServerRestarted instead.
	CloseGoingAway = 1001
	// CloseProtocolError: a client frame breaks RFC 6455 (unmasked,
	// reserved bits or opcode, a continuation without a start).
	CloseProtocolError = 1002
	// CloseInvalidPayload: a client's text message (or close reason) is
	// not UTF-8 (RFC 6455 section 8.1).
	CloseInvalidPayload = 1007
	// ClosePolicy: a protocol 4-5 client sends frames faster than they are
	// handled, or a client does not complete a message within 30 s. The browser client counts it as a WebSocket error
	// (docs/client.md).
	ClosePolicy = 1008
	// CloseTooBig: a client frame over websocket.maxFrameBytes.
	CloseTooBig = 1009
	// CloseInternalError: the store failed: the history a connection
	// resumes from is unavailable, or a client's message could not be
	// stored.
	CloseInternalError = 1011
	// CloseServiceRestart: this process's live feed lost messages it cannot
	// replay; clients reconnect with their last mid and get them from
	// history.
	CloseServiceRestart = 1012

	// Bitrix Push & Pull codes (CloseReasons).

	// CloseConfigReplaced: CloseReasons.CONFIG_REPLACED. Clients close
	// with it when they replace a connection (a new channel, another
	// transport); no server sends it.
	CloseConfigReplaced = 3000
	// CloseChannelExpired: CloseReasons.CHANNEL_EXPIRED: the channel
	// expired; the clients fetch a new config at once.
	CloseChannelExpired = 3001
	// CloseServerRestarted: CloseReasons.SERVER_RESTARTED: a graceful stop,
	// after the server_restart command; the clients wait, fetch a new
	// config and resume.
	CloseServerRestarted = 3002
	// CloseConfigExpired: CloseReasons.CONFIG_EXPIRED: the clients wait and
	// fetch a new config.
	CloseConfigExpired = 3003
	// CloseManual: CloseReasons.MANUAL: a client closes on its user's or
	// application's request; no server sends it.
	CloseManual = 3004
	// CloseStuck: CloseReasons.STUCK: a client closes a connection whose
	// pings go unanswered; no server sends it.
	CloseStuck = 3005
	// CloseWrongChannel: CloseReasons.WRONG_CHANNEL_ID: a channel id or
	// signature is not valid; the clients wait and fetch a new config.
	// pushpull refuses such a subscribe before the upgrade (HTTP 400).
	CloseWrongChannel = 4010

	// Push server 2.x codes for a refused protocol-4 client publish; the
	// REST route answers 400 or 403 for the same refusals.

	// CloseUnparseable: the frame is not a RequestBatch of incoming
	// messages, or a body is not a JSON object.
	CloseUnparseable = 4013
	// CloseNoReceivers: a message without receivers.
	CloseNoReceivers = 4017
	// ClosePrivate: a receiver marked isPrivate: clients publish to public
	// channels only.
	ClosePrivate = 4020
	// CloseSignature: a malformed public id or a wrong signature.
	CloseSignature = 4021
)
