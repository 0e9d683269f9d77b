export { PullClient, connectionUrl, timeOf, CloseCode, REVISION, Waits } from "./client.js";
export { reconnectDelay, baseDelay, between, JITTER, MAX_WEBSOCKET_ERRORS } from "./backoff.js";
export { parseFrame } from "./parse.js";
export { BackendPoller, POLL_IDLE, POLL_FAST, POLL_VERY_FAST } from "./poller.js";
export { realTimers } from "./timers.js";
