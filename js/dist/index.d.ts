export { PullClient, connectionUrl, timeOf, CloseCode, REVISION, Waits } from "./client.js";
export type { PullClientOptions, Status, StatusEvent, Transport, ConfigSource, EventHandler, PullEventHandler, StatusHandler, } from "./client.js";
export { reconnectDelay, baseDelay, between, JITTER, MAX_WEBSOCKET_ERRORS } from "./backoff.js";
export { parseFrame, type Envelope } from "./parse.js";
export { BackendPoller, POLL_IDLE, POLL_FAST, POLL_VERY_FAST } from "./poller.js";
export type { BackendPoll, PolledMessage } from "./poller.js";
export { realTimers, type Timers } from "./timers.js";
export type { PullConfig, ServerConfig, PullChannel, PullMessage, PullEvent } from "./types.js";
