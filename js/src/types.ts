/**
 * The config a client connects with: the answer of the Bitrix REST method
 * `pull.config.get` (and of pushpull's backend config endpoint). Only the
 * fields this client reads are typed; others are kept as given.
 */
export interface PullConfig {
  server: ServerConfig;
  api?: { revision_web?: number; revision_mobile?: number };
  channels: { private?: PullChannel; shared?: PullChannel; [type: string]: PullChannel | undefined };
  publicChannels?: unknown;
  clientId?: string | null;
  jwt?: string | null;
  [key: string]: unknown;
}

export interface ServerConfig {
  version?: number;
  /** false: no push server; only the backend poll (60-20-10) mode can work. */
  server_enabled?: boolean;
  long_polling?: string;
  /** The original spelling ("pooling") of the secure long-polling URL. */
  long_pooling_secure?: string;
  websocket?: string;
  websocket_secure?: string;
  /** false: never try WebSocket. */
  websocket_enabled?: boolean;
  publish?: string;
  publish_enabled?: boolean;
  /** "shared": the cloud mode; clientId is then sent on every connection. */
  mode?: string;
  hostname?: string;
  timeShift?: number;
  config_timestamp?: number;
  [key: string]: unknown;
}

/** One channel of a config: the signed id and its lifetime. */
export interface PullChannel {
  /** The id as the server checks it: `<id>.<signature>` when the server has a key. */
  id: string;
  /** Start and end of the channel's life: ISO date strings or unix seconds. */
  start?: string | number;
  end?: string | number;
  type?: string;
}

/** A command as the backend publishes it (the `text` of an envelope). */
export interface PullMessage {
  module_id: string;
  command: string;
  params: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

/** One delivered message: the command plus what the server added. */
export interface PullEvent extends PullMessage {
  /** The 26-digit message id, absent for messages without one. */
  mid?: string;
  /** The channel (unsigned id) the message came on, when the server says. */
  channel?: string;
  /** How it arrived. */
  source: "websocket" | "longpolling" | "backend";
}
