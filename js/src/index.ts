export {
  PullClient,
  connectionUrl,
  protocolOf,
  timeOf,
  tokenExpiry,
  CloseCode,
  REVISION,
  Waits,
  PING_TIMEOUT,
  RPC_TIMEOUT,
} from "./client.js";
export type {
  PullClientOptions,
  Protocol,
  PublicChannelRef,
  Status,
  StatusEvent,
  Transport,
  ConfigSource,
  EventHandler,
  PullEventHandler,
  StatusHandler,
  UserStatus,
  UserStatusHandler,
} from "./client.js";
export { reconnectDelay, baseDelay, between, JITTER, MAX_WEBSOCKET_ERRORS } from "./backoff.js";
export { parseFrame, type Envelope } from "./parse.js";
export { RpcError } from "./rpc.js";
export { BackendPoller, POLL_IDLE, POLL_FAST, POLL_VERY_FAST } from "./poller.js";
export type { BackendPoll, PolledMessage } from "./poller.js";
export { realTimers, type Timers } from "./timers.js";
export { subscribeWebPush, unsubscribeWebPush, webPushSupported, base64UrlToBytes } from "./webpush.js";
export type { WebPushOptions, WebPushSubscription } from "./webpush.js";
export type {
  PullConfig,
  ServerConfig,
  PullChannel,
  PullMessage,
  PullEvent,
  PublicChannelInfo,
  Sender,
} from "./types.js";
