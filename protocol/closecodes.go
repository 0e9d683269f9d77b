package protocol

import "strconv"

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
	// handled or publishes past its rate, or a client does not complete a
	// message within limits.requestTimeout. The browser client counts it
	// as a WebSocket error (docs/client.md).
	ClosePolicy = 1008
	// CloseTooBig: a client message over websocket.maxFrameBytes (the
	// push server 2.x closes with it over its maxPayload too).
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
	// CloseWrongChannel: CloseReasons.WRONG_CHANNEL_ID: a WebSocket
	// whose channel id or signature is missing or not valid is upgraded
	// and closed with it at once, as the push server 2.x does; the
	// clients wait 5-35 s, fetch a new config and connect with it (a
	// refused upgrade they would retry with the same config). Long
	// polls get 400 instead.
	CloseWrongChannel = 4010

	// Push server 2.x codes for a refused protocol-4 request: a client's
	// (WebSocket frame, or POST to a rest route) or the backend's
	// (protobuf publish). A WebSocket is closed with the code and
	// Reason(code); over HTTP the answer is 400 (429 for
	// CloseTooManyConns) with Reason(code) as the body.

	// ClosePublicRequired: a client request from a connection (or a
	// rest CHANNEL_ID) without a valid public channel id.
	ClosePublicRequired = 4012
	// CloseUnparseable: not a RequestBatch with a Request, or a client's
	// message body that is not a JSON object.
	CloseUnparseable = 4013
	// CloseNotAllowed: a client request other than incomingMessages and
	// channelStats.
	CloseNotAllowed = 4014
	// CloseUnknownCommand: a backend request of no command pushpull
	// serves (registration).
	CloseUnknownCommand = 4015
	// CloseTooManyMessages: over limits.maxMessagesPerRequest messages.
	CloseTooManyMessages = 4016
	// CloseNoReceivers: a message without receivers, or a channelStats
	// request without channels.
	CloseNoReceivers = 4017
	// CloseTooManyChannels: over limits.maxChannelsPerRequest receivers
	// of one message, or channels of one channelStats request.
	CloseTooManyChannels = 4018
	// CloseBadChannelID: a backend receiver or channel whose id is not
	// 16 bytes.
	CloseBadChannelID = 4019
	// ClosePrivate: a client's receiver marked isPrivate: clients
	// publish to public channels only.
	ClosePrivate = 4020
	// CloseSignature: a client's receiver with a malformed public id or
	// a wrong signature.
	CloseSignature = 4021
	// CloseTooManyConns: a private channel with a public id got a
	// connection past limits.maxConnPerChannel on this process; its
	// oldest connection is closed with it (a long poll: 429).
	CloseTooManyConns = 4029
)

// reasons are the push server 2.x texts of its codes.
var reasons = map[int]string{
	CloseWrongChannel:    "Wrong Channel Id.",
	ClosePublicRequired:  "Public Channel Id is Required.",
	CloseUnparseable:     "Wrong Request Data.",
	CloseNotAllowed:      "Request command is not allowed.",
	CloseUnknownCommand:  "Wrong Request Command.",
	CloseTooManyMessages: "Request exceeded the maximum number of messages.",
	CloseNoReceivers:     "No channels found.",
	CloseTooManyChannels: "Request exceeded the maximum number of channels.",
	CloseBadChannelID:    "Request has an invalid channel id.",
	ClosePrivate:         "Private channel is not allowed.",
	CloseSignature:       "Channel has an invalid signature.",
	CloseTooManyConns:    "Too many connections",
}

// Reason is what the push server 2.x says with one of its codes, as the
// reason of a close frame and the body of an HTTP refusal:
// "4010: Wrong Channel Id."; "" for other codes.
func Reason(code int) string {
	if r, ok := reasons[code]; ok {
		return strconv.Itoa(code) + ": " + r
	}
	return ""
}
