// Package server is the HTTP face of pushpull: it binds the configured
// listeners (TLS where configured), routes subscribe requests (long polling
// and WebSocket, every protocol version), publishes (text, protobuf and
// JSON-RPC from the backend, protobuf from clients), statistics, health,
// metrics, the demo page and the backend API, answers what protocol 4-5
// clients send on their connections (or POST, when long polling), and
// runs the graceful shutdown.
//
// The files, by what they hold:
//
//	server.go        Server: New, Listen, Serve, the graceful stop, Resync, the router
//	http.go          HTTP answers and bodies: texts, preflight, 404, 413, readBody, writeJSON
//	tenant.go        tenants: the personal mode, the shared (cloud) mode by clientId
//	gate.go          the publish gate every publish of the process goes through
//	subscribe.go     the subscribe route: long poll or upgrade; parsing the request; 4010
//	connlimit.go     limits.maxConnPerChannel: connections per private channel, eviction
//	session.go       a protocol 4-5 WebSocket connection: client frames in order, end, presence
//	publish.go       the publish route (POST, GET) and what every publish path shares
//	clientpublish.go protocol-4 requests: push server 2.x refusals and limits, client publishes and
//	                 channelStats; the REST route (protobuf, and protocol 5's JSON-RPC and acknowledgements)
//	protocol12.go    versions 1-2: push-stream cursors (tag and time), their headers, first polls
//	protocol3.go     version 3: the backend's text publish and the online GET
//	protocol4.go     version 4: the backend's protobuf requests (publish, stats), client frames
//	protocol5.go     version 5: JSON-RPC client calls (WebSocket or HTTP), the backend's /api route
//	stats.go         the statistics route
//	probes.go        the liveness and readiness probes
//	metrics.go       the Prometheus metrics
//	keycheck.go      the admin page's check of a pasted security key
package server
