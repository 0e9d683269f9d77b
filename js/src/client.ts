import { MAX_WEBSOCKET_ERRORS, between, reconnectDelay } from "./backoff.js";
import { isMessage, isObject, parseFrame, type Envelope } from "./parse.js";
import { BackendPoller, type BackendPoll, type PolledMessage } from "./poller.js";
import { decodeResponseBatch, encodePublish, type BinaryReceiver } from "./protobuf.js";
import { METHOD_NOT_FOUND, answer, parseRpcFrame, request, type RpcItem } from "./rpc.js";
import { Timer, realTimers, type Timers } from "./timers.js";
import type { PublicChannelInfo, PullChannel, PullConfig, PullEvent, PullMessage } from "./types.js";

/** The client API revision sent as `revision=` (the stock clients' value). */
export const REVISION = 19;

/** Close codes the Push & Pull servers and clients use. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  POLICY: 1008,
  CONFIG_REPLACED: 3000,
  CHANNEL_EXPIRED: 3001,
  SERVER_RESTARTED: 3002,
  CONFIG_EXPIRED: 3003,
  MANUAL: 3004,
  /** Protocol 5: no ping from the server in 20 s (the client closes). */
  STUCK: 3005,
  WRONG_CHANNEL_ID: 4010,
} as const;

/** A long poll not answered within this is abandoned and sent again. */
export const LONG_POLL_TIMEOUT = 60_000;
/** A long poll still held after this counts as connected. */
export const LONG_POLL_ONLINE_AFTER = 5_000;
/** A WebSocket that stayed open this long and then broke is not "blocked". */
export const WEBSOCKET_STABLE_AFTER = 60_000;
/** How many message ids are remembered to drop repeats. */
export const SEEN_IDS = 100;
/** Channels are refreshed this long before they end (or at half their remaining life). */
export const REFRESH_MARGIN = 5 * 60_000;
/** Failed attempts in a row after which the backend poll runs. */
export const BACKEND_POLL_AFTER = 3;
/** Protocol 5: a WebSocket without a server "ping" for this long is closed (3005) and reopened. */
export const PING_TIMEOUT = 20_000;
/** Protocol 5: how long a request waits for its answer by default. */
export const RPC_TIMEOUT = 5_000;

/** Ranges of random waits, in milliseconds. */
export const Waits = {
  /** Long polling is used this long after WebSocket broke, if it had worked. */
  restoreWebSocket: [10 * 60_000, 30 * 60_000],
  /** config_expire, server_restart: wait, then fetch a new config. */
  restart: [10_000, 120_000],
  /** Close 4010 (wrong channel id): wait, then fetch a new config. */
  wrongChannel: [5_000, 35_000],
} as const;

export type Status = "idle" | "connecting" | "online" | "offline" | "polling" | "stopped";
export type Transport = "websocket" | "longpolling";
/**
 * The protocol spoken, from the config's `server.version` as the stock
 * clients choose it: 5 and above JSON-RPC (`jsonRpc=true`), 4 protobuf
 * (`binaryMode=true`), anything else text envelopes.
 */
export type Protocol = 3 | 4 | 5;

/** A public channel to publish to: `"<publicId>.<signature>"` or the two fields. */
export type PublicChannelRef = string | { publicId: string; signature: string };

/** What a status subscription reports (protocol 5). */
export interface UserStatus {
  userId: number;
  isOnline: boolean;
}
export type UserStatusHandler = (s: UserStatus) => void;

/** What the client reports on every change of its connection. */
export interface StatusEvent {
  status: Status;
  /** The transport in use or being tried; null while polling the backend only. */
  transport: Transport | null;
  /** Failed connection attempts in a row. */
  errors: number;
  /** WebSocket failures in a row (more than 4 switch to long polling). */
  websocketErrors: number;
  /** With status offline: milliseconds until the next attempt, if one is planned. */
  retryIn?: number;
  /** With status connecting: the URL being opened. */
  url?: string;
  /** Why the status changed, for logs. */
  reason?: string;
  /** Whether the backend poll (60-20-10) is running. */
  backendPolling: boolean;
}

/** Where the config comes from. */
export type ConfigSource = PullConfig | (() => Promise<PullConfig>);

export interface PullClientOptions {
  /** The config, or a function that fetches a fresh one. */
  config?: ConfigSource;
  /**
   * A URL answering the config as JSON (bare, or wrapped as
   * `{"result": config}` like the REST API). Used when config is not given.
   */
  configUrl?: string;
  /** Options for fetching configUrl (credentials, headers). */
  configFetchOptions?: RequestInit;
  /** "auto" (default): WebSocket first, long polling as fallback. */
  transport?: "auto" | Transport;
  /** Protocol 3: "text" (default) envelopes, or "json": `format=json` arrays. */
  format?: "text" | "json";
  /** Use the secure URLs of the config; default: when the page is https. */
  secure?: boolean;
  /** Polls the application's backend when no push server answers (60-20-10 schedule). */
  backendPoll?: BackendPoll;
  /** Watches "online"/"offline" events of this target; default the global window. */
  networkEvents?: EventTarget | null;
  /** Reconnect delay after n errors in a row; default reconnectDelay (the documented table). */
  reconnectDelay?: (errors: number) => number;
  /** Replaces ranges of Waits (milliseconds); meant for tests. */
  waits?: Partial<Record<keyof typeof Waits, readonly [number, number]>>;
  /** Protocol 5: milliseconds a request waits for its answer (default 5 s). */
  rpcTimeout?: number;
  /** Injected for tests. */
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
  timers?: Timers;
  random?: () => number;
  /** Receives debug lines. */
  log?: (line: string) => void;
}

export type EventHandler = (params: Record<string, unknown>, event: PullEvent) => void;
export type PullEventHandler = (
  moduleId: string,
  command: string,
  params: Record<string, unknown>,
  extra: Record<string, unknown>,
  event: PullEvent,
) => void;
export type StatusHandler = (e: StatusEvent) => void;

/**
 * A Push & Pull client: fetches its config, connects by WebSocket and
 * falls back to long polling, resumes from the last message id after every
 * reconnect, drops repeated messages, follows the server's pull commands
 * (channel_expire, config_expire, server_restart) and delivers every other
 * message to its subscribers. It speaks protocol 3, 4 or 5 as the config's
 * `server.version` says; in 4 and 5 it can publish to public channels, in
 * 5 also ask for users' last-seen times and follow their status. See
 * docs/client.md for the state machine.
 */
export class PullClient {
  private readonly opts: PullClientOptions;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly delayFor: (errors: number) => number;

  private config: PullConfig | null = null;
  private statusValue: Status = "idle";
  private transportValue: Transport = "websocket";
  private errors = 0;
  private wsErrors = 0;
  private wsEverConnected = false;
  /** "temporary": long polling until the restore timer; "permanent": for good. */
  private wsBlocked: "no" | "temporary" | "permanent" = "no";
  private lastMid: string | null = null;
  private readonly seen: string[] = [];
  private readonly seenSet = new Set<string>();
  private needConfig = true;
  private loading: Promise<void> | null = null;

  /** Bumped by every new connection and disconnect: callbacks of older ones are ignored. */
  private gen = 0;
  private ws: WebSocket | null = null;
  private lp: AbortController | null = null;
  private probe: WebSocket | null = null;

  private readonly reconnectTimer: Timer;
  private readonly restoreTimer: Timer;
  private readonly refreshTimer: Timer;
  private readonly lpOnlineTimer: Timer;
  private readonly lpAbortTimer: Timer;
  private readonly pingTimer: Timer;
  private poller: BackendPoller | null = null;

  /** Protocol 5: requests awaiting their answer, by id. */
  private rpcSeq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: Timer }>();
  /** Protocol 5: status subscriptions, made again on every new connection. */
  private readonly statusHandlers = new Map<number, Set<UserStatusHandler>>();

  private readonly handlers = new Map<string, Set<EventHandler>>();
  private readonly allHandlers = new Set<PullEventHandler>();
  private readonly onStatusHandlers = new Set<StatusHandler>();
  private lastStatus: StatusEvent | null = null;
  private readonly onOffline = (): void => this.networkOffline();
  private readonly onOnline = (): void => this.networkOnline();

  constructor(options: PullClientOptions = {}) {
    this.opts = options;
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.delayFor = options.reconnectDelay ?? ((n) => reconnectDelay(n, this.random));
    this.reconnectTimer = new Timer(this.timers);
    this.restoreTimer = new Timer(this.timers);
    this.refreshTimer = new Timer(this.timers);
    this.lpOnlineTimer = new Timer(this.timers);
    this.lpAbortTimer = new Timer(this.timers);
    this.pingTimer = new Timer(this.timers);
    if (options.backendPoll) {
      this.poller = new BackendPoller(
        options.backendPoll,
        this.timers,
        (messages) => this.deliverPolled(messages),
        () => this.lastMid,
        (err) => this.log(`backend poll failed: ${String(err)}`),
      );
    }
  }

  // Public API --------------------------------------------------------------

  /** Loads the config and connects. Resolves once the first attempt is under way. */
  async start(): Promise<void> {
    if (this.statusValue !== "idle" && this.statusValue !== "stopped") return;
    this.statusValue = "offline";
    const net = this.networkTarget();
    net?.addEventListener("offline", this.onOffline);
    net?.addEventListener("online", this.onOnline);
    this.needConfig = true;
    await this.connect();
  }

  /** Disconnects and stops every timer. start() may be called again. */
  stop(): void {
    if (this.stopped() || this.statusValue === "idle") return;
    this.disconnect(CloseCode.NORMAL, "stopped");
    this.reconnectTimer.clear();
    this.restoreTimer.clear();
    this.refreshTimer.clear();
    this.closeProbe();
    this.poller?.stop();
    const net = this.networkTarget();
    net?.removeEventListener("offline", this.onOffline);
    net?.removeEventListener("online", this.onOnline);
    this.setStatus("stopped", { reason: "stopped" });
  }

  /**
   * Calls handler for every message of moduleId whose command is command
   * ("*" or omitted: every command of the module). Returns the unsubscribe
   * function.
   */
  subscribe(moduleId: string, command: string | EventHandler, handler?: EventHandler): () => void {
    let cmd = "*";
    let fn: EventHandler;
    if (typeof command === "function") {
      fn = command;
    } else {
      cmd = command;
      if (!handler) throw new TypeError("subscribe: handler missing");
      fn = handler;
    }
    const key = `${moduleId}\u0000${cmd.toLowerCase()}`;
    let set = this.handlers.get(key);
    if (!set) this.handlers.set(key, (set = new Set()));
    set.add(fn);
    return () => this.unsubscribe(moduleId, cmd, fn);
  }

  /** Removes a handler added by subscribe. */
  unsubscribe(moduleId: string, command: string, handler: EventHandler): void {
    const key = `${moduleId}\u0000${command.toLowerCase()}`;
    const set = this.handlers.get(key);
    if (!set) return;
    set.delete(handler);
    if (set.size === 0) this.handlers.delete(key);
  }

  /** Calls handler for every message, as BX's onPullEvent(module_id, command, params). */
  onPullEvent(handler: PullEventHandler): () => void {
    this.allHandlers.add(handler);
    return () => this.allHandlers.delete(handler);
  }

  /** Calls handler on every status change, and at once with the current status. */
  onStatus(handler: StatusHandler): () => void {
    this.onStatusHandlers.add(handler);
    if (this.lastStatus) handler(this.lastStatus);
    return () => this.onStatusHandlers.delete(handler);
  }

  get status(): Status {
    return this.statusValue;
  }

  /** The transport in use (or the next to be tried). */
  get transport(): Transport {
    return this.transportValue;
  }

  /** The newest message id seen: the resume point. */
  get mid(): string | null {
    return this.lastMid;
  }

  /** The config in use (channels replaced by channel_expire included). */
  get currentConfig(): PullConfig | null {
    return this.config;
  }

  /** The protocol the config asks for (3 until a config is loaded). */
  get protocol(): Protocol {
    return this.config ? protocolOf(this.config) : 3;
  }

  /** The URL the client would open now for transport t. */
  connectionUrl(t: Transport): string {
    if (!this.config) throw new Error("no config");
    return connectionUrl(this.config, t, {
      secure: this.secure(),
      mid: this.lastMid,
      format: this.opts.format ?? "text",
    });
  }

  // Publishing and requests (protocols 4-5) ---------------------------------

  /**
   * Publishes a command to public channels (protocols 4 and 5), each
   * `"<publicId>.<signature>"` or `{publicId, signature}`. Every receiver
   * gets it, the sender's own connections included, with `sender.type` 1.
   * Protocol 5 resolves once the server accepted it (a refusal rejects
   * with an RpcError); protocol 4 once it is sent: over WebSocket as a
   * binary frame (the server closes the connection on a bad signature, and
   * the client reconnects), over long polling POSTed to `server.publish`.
   */
  async sendMessageToChannels(
    channels: PublicChannelRef[],
    moduleId: string,
    command: string,
    params: Record<string, unknown> = {},
    expiry?: number,
  ): Promise<void> {
    const body = { module_id: moduleId, command, params };
    if (this.protocol === 5) {
      await this.rpc("publish", { channelList: channels, body, ...(expiry ? { expiry } : {}) });
      return;
    }
    await this.publishBinary(channels.map(publicReceiver), body, expiry);
  }

  /**
   * Publishes a command to users (protocols 4 and 5). Protocol 5 needs a
   * connection with a token (`jwt` in the config); protocol 4 publishes to
   * the users' public channels, which must be in the config's
   * `publicChannels`.
   */
  async sendMessage(
    users: number[],
    moduleId: string,
    command: string,
    params: Record<string, unknown> = {},
    expiry?: number,
  ): Promise<void> {
    const body = { module_id: moduleId, command, params };
    if (this.protocol === 5) {
      await this.rpc("publish", { userList: users, body, ...(expiry ? { expiry } : {}) });
      return;
    }
    const known = (isObject(this.config?.publicChannels) ? this.config!.publicChannels : {}) as Record<string, PublicChannelInfo>;
    const receivers = users.map((u) => {
      const c = known[String(u)];
      if (!c || typeof c.public_id !== "string") throw new Error(`no public channel of user ${u} in the config`);
      return publicReceiver({ publicId: c.public_id, signature: c.signature ?? "" });
    });
    await this.publishBinary(receivers, body, expiry);
  }

  /**
   * Protocol 5: when each user was last seen, in seconds ago (0: online
   * now). Users the server never saw are left out.
   */
  async getUsersLastSeen(users: number[]): Promise<Record<number, number>> {
    const r = await this.rpc("getUsersLastSeen", { userList: users });
    const out: Record<number, number> = {};
    if (isObject(r)) for (const [k, v] of Object.entries(r)) if (typeof v === "number") out[Number(k)] = v;
    return out;
  }

  /** Protocol 5: a JSON-RPC ping; resolves when the server answers. */
  async ping(timeout?: number): Promise<void> {
    await this.rpc("ping", {}, timeout);
  }

  /** Protocol 5: the channels of the connection, as the server lists them. */
  listChannels(): Promise<unknown> {
    return this.rpc("listChannels", {});
  }

  /**
   * Protocol 5: calls handler with `{userId, isOnline}` whenever the user's
   * first connection opens or the last one closes. The subscription is made
   * again on every new connection; made while not connected, it resolves
   * at once and takes effect on the next one.
   */
  async subscribeUserStatusChange(userId: number, handler: UserStatusHandler): Promise<void> {
    let set = this.statusHandlers.get(userId);
    const fresh = !set;
    if (!set) this.statusHandlers.set(userId, (set = new Set()));
    set.add(handler);
    if (!fresh || !this.rpcReady()) return;
    try {
      await this.rpc("subscribeStatusChange", { userId });
    } catch (err) {
      set.delete(handler);
      if (set.size === 0) this.statusHandlers.delete(userId);
      throw err;
    }
  }

  /** Protocol 5: removes a handler of subscribeUserStatusChange; the last one ends the subscription. */
  async unsubscribeUserStatusChange(userId: number, handler: UserStatusHandler): Promise<void> {
    const set = this.statusHandlers.get(userId);
    if (!set || !set.delete(handler) || set.size > 0) return;
    this.statusHandlers.delete(userId);
    if (this.rpcReady()) await this.rpc("unsubscribeStatusChange", { userId });
  }

  // Connecting --------------------------------------------------------------

  private async connect(): Promise<void> {
    this.reconnectTimer.clear();
    if (this.stopped()) return;
    if (this.needConfig) {
      try {
        await this.loadConfig();
      } catch (err) {
        if (this.stopped()) return;
        this.failed(`config: ${errorText(err)}`);
        return;
      }
      if (this.stopped()) return;
    }
    const cfg = this.config!;
    if (cfg.server.server_enabled === false) {
      this.disconnect(CloseCode.NORMAL, "no push server");
      this.startBackendPoll();
      this.setStatus("polling", { reason: "server_enabled is false" });
      return;
    }
    if (this.transportValue === "websocket" && !this.webSocketAllowed()) {
      this.transportValue = "longpolling";
    }
    if (this.transportValue === "websocket") this.connectWebSocket();
    else this.connectLongPolling(true);
  }

  private loadConfig(): Promise<void> {
    if (!this.loading) {
      this.loading = this.fetchConfig()
        .then((cfg) => {
          this.setConfig(cfg);
          this.needConfig = false;
        })
        .finally(() => {
          this.loading = null;
        });
    }
    return this.loading;
  }

  private async fetchConfig(): Promise<PullConfig> {
    const src = this.opts.config;
    let raw: unknown;
    if (typeof src === "function") {
      raw = await src();
    } else if (src) {
      raw = structuredCloneJSON(src);
    } else if (this.opts.configUrl) {
      const f = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
      const res = await f(this.opts.configUrl, { cache: "no-store", ...this.opts.configFetchOptions });
      if (!res.ok) throw new Error(`config URL answered ${res.status}`);
      raw = await res.json();
    } else {
      throw new Error("neither config nor configUrl given");
    }
    return validConfig(raw);
  }

  private setConfig(cfg: PullConfig): void {
    this.config = cfg;
    this.scheduleRefresh();
  }

  private webSocketAllowed(): boolean {
    const s = this.config?.server;
    return (
      this.opts.transport !== "longpolling" &&
      this.wsBlocked === "no" &&
      s?.websocket_enabled !== false &&
      !!(this.secure() ? s?.websocket_secure || s?.websocket : s?.websocket) &&
      typeof this.wsCtor() === "function"
    );
  }

  private connectWebSocket(): void {
    const gen = ++this.gen;
    const url = this.connectionUrl("websocket");
    this.setStatus("connecting", { transport: "websocket", url });
    let ws: WebSocket;
    try {
      ws = new (this.wsCtor()!)(url);
    } catch (err) {
      this.webSocketClosed(false, CloseCode.ABNORMAL, errorText(err), 0);
      return;
    }
    this.ws = ws;
    // Protocol 4 frames are binary.
    ws.binaryType = "arraybuffer";
    let openedAt = -1;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      openedAt = this.timers.now();
      this.errors = 0;
      this.wsEverConnected = true;
      this.poller?.stop();
      this.setStatus("online", { transport: "websocket" });
      if (gen === this.gen && this.protocol === 5) this.restoreStatusSubscriptions();
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (gen !== this.gen) return;
      const d: unknown = ev.data;
      if (typeof d === "string") this.receiveText(d, "websocket");
      else if (d instanceof ArrayBuffer) this.receiveBinary(new Uint8Array(d), "websocket");
      else if (ArrayBuffer.isView(d)) this.receiveBinary(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), "websocket");
    };
    ws.onclose = (ev: CloseEvent) => {
      if (gen !== this.gen) return;
      this.ws = null;
      this.connectionGone("websocket closed");
      const opened = openedAt >= 0;
      this.webSocketClosed(opened, ev.code, ev.reason, opened ? this.timers.now() - openedAt : 0);
    };
  }

  private webSocketClosed(opened: boolean, code: number, reason: string, lived: number): void {
    if (this.stopped()) return;
    const broken = !opened || ((code === CloseCode.ABNORMAL || code === CloseCode.POLICY) && lived < WEBSOCKET_STABLE_AFTER);
    this.wsErrors = broken ? this.wsErrors + 1 : 0;
    const why = `websocket closed: ${code}${reason ? " " + reason : ""}`;
    switch (code) {
      case CloseCode.WRONG_CHANNEL_ID:
        this.restart(this.wait("wrongChannel"), why);
        return;
      case CloseCode.CHANNEL_EXPIRED:
        this.restart(0, why);
        return;
      case CloseCode.CONFIG_EXPIRED:
      case CloseCode.SERVER_RESTARTED:
        this.restart(this.wait("restart"), why);
        return;
    }
    if (this.wsErrors > MAX_WEBSOCKET_ERRORS && this.opts.transport !== "websocket") {
      this.fallBackToLongPolling(why);
      return;
    }
    this.failed(why);
  }

  /** More than 4 WebSocket errors in a row: long polling, for good or for 10-30 min. */
  private fallBackToLongPolling(why: string): void {
    this.wsBlocked = this.wsEverConnected ? "temporary" : "permanent";
    this.transportValue = "longpolling";
    this.errors = 0;
    this.log(`${why}; WebSocket blocked (${this.wsBlocked}), switching to long polling`);
    this.connectLongPolling(true);
  }

  private connectLongPolling(first: boolean): void {
    const gen = ++this.gen;
    const url = this.connectionUrl("longpolling");
    if (first || this.statusValue !== "online") this.setStatus("connecting", { transport: "longpolling", url });
    const ctrl = new AbortController();
    this.lp = ctrl;
    let timedOut = false;
    // A held request means the server accepted the channels.
    this.lpOnlineTimer.set(LONG_POLL_ONLINE_AFTER, () => {
      if (gen === this.gen) this.longPollingWorks();
    });
    this.lpAbortTimer.set(LONG_POLL_TIMEOUT, () => {
      timedOut = true;
      ctrl.abort();
    });
    const f = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
    const binary = this.protocol === 4;
    // A "simple" GET: no custom headers, so no CORS preflight.
    f(url, { signal: ctrl.signal, cache: "no-store" })
      .then(async (res) => ({ res, body: binary ? new Uint8Array(await res.arrayBuffer()) : await res.text() }))
      .then(
        ({ res, body }) => {
          if (gen !== this.gen) return;
          this.lpTimersClear();
          this.lp = null;
          if (res.status === 200) {
            this.longPollingWorks();
            // An empty 200 carries nothing: keep the resume position.
            if (typeof body !== "string") this.receiveBody(body);
            else if (body.trim() !== "") this.receiveText(body, "longpolling");
            if (gen === this.gen) this.connectLongPolling(false);
          } else if (res.status === 304) {
            this.longPollingWorks();
            // The stock clients trust Last-Message-Id only with this exact Expires.
            if (res.headers.get("Expires") === "Thu, 01 Jan 1973 11:11:01 GMT") {
              const last = res.headers.get("Last-Message-Id");
              if (last) this.lastMid = last;
            }
            this.connectLongPolling(false);
          } else {
            this.failed(`long polling: HTTP ${res.status}`);
          }
        },
        (err) => {
          if (gen !== this.gen) return;
          this.lpTimersClear();
          this.lp = null;
          if (timedOut) this.connectLongPolling(false);
          else this.failed(`long polling: ${errorText(err)}`);
        },
      );
  }

  private longPollingWorks(): void {
    this.lpOnlineTimer.clear();
    this.errors = 0;
    this.poller?.stop();
    if (this.statusValue !== "online") this.setStatus("online", { transport: "longpolling" });
    if (this.wsBlocked === "temporary" && !this.restoreTimer.armed) {
      this.restoreTimer.set(this.wait("restoreWebSocket"), () => this.probeWebSocket());
    }
  }

  private lpTimersClear(): void {
    this.lpOnlineTimer.clear();
    this.lpAbortTimer.clear();
  }

  /**
   * After the temporary block: try a WebSocket beside the running long
   * poll; switch to it once it opens, else keep long polling for another
   * 10-30 min.
   */
  private probeWebSocket(): void {
    if (this.stopped() || this.transportValue !== "longpolling" || !this.config) return;
    const ctor = this.wsCtor();
    if (!ctor) return;
    let ws: WebSocket;
    try {
      ws = new ctor(this.connectionUrl("websocket"));
    } catch {
      this.restoreTimer.set(this.wait("restoreWebSocket"), () => this.probeWebSocket());
      return;
    }
    this.probe = ws;
    ws.onopen = () => {
      if (this.probe !== ws) return;
      this.closeProbe();
      this.log("WebSocket works again");
      this.wsBlocked = "no";
      this.wsErrors = 0;
      this.transportValue = "websocket";
      this.reconnectNow("WebSocket restored");
    };
    ws.onclose = () => {
      if (this.probe !== ws) return;
      this.probe = null;
      this.restoreTimer.set(this.wait("restoreWebSocket"), () => this.probeWebSocket());
    };
  }

  private closeProbe(): void {
    const p = this.probe;
    this.probe = null;
    if (p) {
      p.onopen = p.onclose = p.onmessage = null;
      try {
        p.close(CloseCode.NORMAL);
      } catch {
        // already closed
      }
    }
  }

  /** A connection attempt failed or a connection broke: back off and retry. */
  private failed(why: string): void {
    if (this.stopped()) return;
    this.errors++;
    const delay = this.delayFor(this.errors);
    this.log(`${why}; retry ${this.errors} in ${delay} ms`);
    if (this.errors >= BACKEND_POLL_AFTER) this.startBackendPoll();
    this.setStatus("offline", { retryIn: delay, reason: why });
    this.reconnectTimer.set(delay, () => void this.connect());
  }

  /** Closes the current connection (its callbacks are ignored from now on). */
  private disconnect(code: number, reason: string): void {
    this.gen++;
    this.lpTimersClear();
    this.connectionGone(reason);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onclose = ws.onmessage = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closed
      }
    }
    this.lp?.abort();
    this.lp = null;
  }

  /** Drops the connection and opens a new one at once (same config, same mid). */
  private reconnectNow(why: string): void {
    this.disconnect(CloseCode.CONFIG_REPLACED, why);
    this.errors = 0;
    this.log(`reconnecting: ${why}`);
    void this.connect();
  }

  /** Drops the connection, waits, fetches a new config and connects. */
  private restart(delay: number, why: string): void {
    this.disconnect(CloseCode.NORMAL, why);
    this.needConfig = true;
    this.log(`restart in ${delay} ms: ${why}`);
    this.setStatus("offline", { retryIn: delay, reason: why });
    this.reconnectTimer.set(delay, () => void this.connect());
  }

  /** The connection ended: its requests fail, its keepalive ends. */
  private connectionGone(why: string): void {
    this.pingTimer.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.timer.clear();
      p.reject(new Error(`connection closed (${why})`));
    }
  }

  private networkOffline(): void {
    if (this.stopped() || this.statusValue === "idle") return;
    this.disconnect(CloseCode.NORMAL, "offline");
    this.reconnectTimer.clear();
    this.setStatus("offline", { reason: "network offline" });
  }

  private networkOnline(): void {
    if (this.stopped() || this.statusValue === "idle") return;
    if (this.statusValue === "online" || this.statusValue === "connecting") return;
    this.errors = 0;
    this.log("network online: reconnecting");
    void this.connect();
  }

  // Channel lifetime -------------------------------------------------------

  /** Fetches a new config shortly before the first channel ends. */
  private scheduleRefresh(): void {
    this.refreshTimer.clear();
    if (!this.config || !this.canRefetch()) return;
    const now = this.timers.now();
    let due = Infinity;
    const ends = channelList(this.config).map((ch) => timeOf(ch.end));
    // A token expires too: fetch the next one before.
    ends.push(tokenExpiry(this.config.jwt));
    for (const end of ends) {
      if (end === null) continue;
      const margin = Math.min(REFRESH_MARGIN, Math.max(0, (end - now) / 2));
      due = Math.min(due, end - margin);
    }
    if (due === Infinity) return;
    this.refreshTimer.set(Math.max(due - now, 1_000), () => void this.refresh());
  }

  private async refresh(): Promise<void> {
    if (this.stopped()) return;
    const before = channelIds(this.config);
    try {
      await this.loadConfig();
    } catch (err) {
      this.log(`channel refresh failed: ${errorText(err)}`);
      this.refreshTimer.set(60_000, () => void this.refresh());
      return;
    }
    if (this.stopped()) return;
    if (channelIds(this.config) !== before && this.statusValue !== "polling") {
      this.reconnectNow("channels refreshed");
    }
  }

  private canRefetch(): boolean {
    return typeof this.opts.config === "function" || (!this.opts.config && !!this.opts.configUrl);
  }

  // Messages ---------------------------------------------------------------

  /** A text frame or long-polling answer, in the connection's protocol. */
  private receiveText(data: string, source: "websocket" | "longpolling"): void {
    if (this.protocol !== 5) {
      this.deliver(parseFrame(data), source);
      return;
    }
    if (data === "ping") {
      // The server's keepalive: answer, and expect the next within 20 s.
      if (source === "websocket") this.pong();
      return;
    }
    this.receiveRpc(parseRpcFrame(data), source);
  }

  /** A binary frame: a protocol-4 ResponseBatch. */
  private receiveBinary(bytes: Uint8Array, source: "websocket" | "longpolling"): void {
    let messages;
    try {
      messages = decodeResponseBatch(bytes);
    } catch (err) {
      this.log(`unreadable protobuf frame (${bytes.length} bytes): ${errorText(err)}`);
      return;
    }
    const envs: Envelope[] = [];
    for (const m of messages) {
      let text: unknown;
      try {
        text = JSON.parse(m.body);
      } catch {
        continue; // one bad body must not cost the others
      }
      if (!isMessage(text)) continue;
      const env: Envelope = { text };
      if (m.mid) env.mid = m.mid;
      if (m.senderType !== undefined) {
        env.sender = { type: m.senderType };
        if (m.senderId) env.sender.id = m.senderId;
      }
      envs.push(env);
    }
    this.deliver(envs, source);
  }

  /**
   * A protocol-4 long-polling answer: a ResponseBatch, or text envelopes
   * from a server that answers text (it starts with "#" or "[", which no
   * ResponseBatch does).
   */
  private receiveBody(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (bytes[0] === 0x23 || bytes[0] === 0x5b) this.receiveText(new TextDecoder().decode(bytes), "longpolling");
    else this.receiveBinary(bytes, "longpolling");
  }

  /** Protocol 5: notifications, answers to requests, and (from a text answer) envelopes. */
  private receiveRpc(frame: { items: RpcItem[]; batch: boolean }, source: "websocket" | "longpolling"): void {
    const gen = this.gen;
    const answers: Record<string, unknown>[] = [];
    for (const item of frame.items) {
      if (gen !== this.gen) return; // a command switched the connection: the rest comes again
      switch (item.kind) {
        case "envelope":
          this.deliver([item.envelope], source);
          break;
        case "message":
          if (item.envelope) {
            this.deliver([item.envelope], source);
            // The stock clients acknowledge every message they handled.
            if (gen === this.gen && source === "websocket" && item.envelope.mid) this.wsSend(`mack:${item.envelope.mid}`);
          }
          if (item.id !== undefined) answers.push(answer(item.id, {}));
          break;
        case "call":
          if (item.id !== undefined) answers.push(answer(item.id, undefined, METHOD_NOT_FOUND));
          break;
        case "response": {
          const p = typeof item.id === "number" ? this.pending.get(item.id) : undefined;
          if (!p) break;
          this.pending.delete(item.id as number);
          p.timer.clear();
          if (item.error) p.reject(item.error);
          else p.resolve(item.result);
          break;
        }
      }
    }
    if (answers.length > 0 && gen === this.gen && source === "websocket") {
      this.wsSend(JSON.stringify(frame.batch ? answers : answers[0]));
    }
  }

  private deliver(envs: Envelope[], source: "websocket" | "longpolling"): void {
    const gen = this.gen;
    for (const env of envs) {
      if (gen !== this.gen) return; // a command switched the connection: the rest comes again
      this.handleEnvelope(env, source);
    }
  }

  private handleEnvelope(env: Envelope, source: PullEvent["source"]): void {
    if (env.mid) {
      if (!this.lastMid || env.mid.length !== this.lastMid.length || env.mid > this.lastMid) {
        this.lastMid = env.mid;
      }
      if (this.seenSet.has(env.mid)) return;
      this.remember(env.mid);
    }
    const ev: PullEvent = { ...env.text, source };
    if (env.mid) ev.mid = env.mid;
    if (env.channel) ev.channel = env.channel;
    if (env.sender) {
      ev.sender = env.sender;
      ev.extra = { ...(ev.extra ?? {}), sender: env.sender };
    }
    // What another client publishes is only delivered: commands to the
    // client itself come from the backend or the server.
    if (env.sender?.type !== SENDER_CLIENT) {
      if (ev.module_id === "pull") this.system(ev);
      else if (ev.module_id === "online" && ev.command === "userStatusChange") this.userStatusChanged(ev.params);
    }
    this.emit(ev);
  }

  private deliverPolled(messages: PolledMessage[]): void {
    for (const m of messages) {
      if (!m || typeof m.module_id !== "string" || typeof m.command !== "string") continue;
      const { mid, ...text } = m;
      this.handleEnvelope({ mid, text: { ...text, params: text.params ?? {} } }, "backend");
    }
  }

  private remember(mid: string): void {
    this.seen.push(mid);
    this.seenSet.add(mid);
    while (this.seen.length > SEEN_IDS) this.seenSet.delete(this.seen.shift()!);
  }

  /** The server's own commands (module_id "pull"). */
  private system(ev: PullMessage): void {
    const p = ev.params ?? {};
    switch (ev.command.toLowerCase()) {
      case "channel_expire": {
        const next = p.new_channel as PullChannel | undefined;
        const old = p.channel as { type?: string } | undefined;
        // A token names the channels: only a new config brings new ones.
        if (p.action === "reconnect" && next && typeof next.id === "string" && this.config && !this.config.jwt) {
          const type = old?.type ?? next.type ?? "private";
          this.config.channels[type] = next;
          this.scheduleRefresh();
          this.reconnectNow("channel_expire: new channel");
        } else {
          this.restart(0, "channel_expire: get config");
        }
        break;
      }
      case "config_expire":
        this.restart(this.wait("restart"), "config_expire");
        break;
      case "server_restart":
        this.restart(this.wait("restart"), "server_restart");
        break;
    }
  }

  private emit(ev: PullEvent): void {
    const params = ev.params ?? {};
    const extra = ev.extra ?? {};
    for (const key of [`${ev.module_id}\u0000${ev.command.toLowerCase()}`, `${ev.module_id}\u0000*`]) {
      for (const h of [...(this.handlers.get(key) ?? [])]) this.call(() => h(params, ev));
    }
    for (const h of [...this.allHandlers]) this.call(() => h(ev.module_id, ev.command, params, extra, ev));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A failing subscriber must not stop delivery to the others.
      this.log(`handler threw: ${errorText(err)}`);
    }
  }

  // Protocols 4-5: requests ----------------------------------------------

  /** Protocol 5: sends a request over the WebSocket and waits for its answer. */
  private rpc(method: string, params: unknown, timeout?: number): Promise<unknown> {
    if (this.protocol !== 5) return Promise.reject(new Error(`${method} needs protocol 5 (server.version 5)`));
    const ws = this.ws;
    if (!ws || !this.rpcReady()) return Promise.reject(new Error(`${method}: not connected by WebSocket`));
    const id = ++this.rpcSeq;
    return new Promise((resolve, reject) => {
      const timer = new Timer(this.timers);
      this.pending.set(id, { resolve, reject, timer });
      timer.set(timeout ?? this.opts.rpcTimeout ?? RPC_TIMEOUT, () => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer`));
      });
      if (!this.wsSend(request(method, params, id))) {
        timer.clear();
        this.pending.delete(id);
        reject(new Error(`${method}: not connected by WebSocket`));
      }
    });
  }

  /** Whether requests can be sent now: a protocol-5 WebSocket is open. */
  private rpcReady(): boolean {
    return this.protocol === 5 && this.ws !== null && this.statusValue === "online" && this.transportValue === "websocket";
  }

  private wsSend(data: string | Uint8Array): boolean {
    if (!this.ws) return false;
    try {
      this.ws.send(data);
      return true;
    } catch (err) {
      this.log(`send failed: ${errorText(err)}`);
      return false;
    }
  }

  /** Protocol 5: the server's "ping" came; the next must come within PING_TIMEOUT. */
  private pong(): void {
    this.wsSend("pong");
    const gen = this.gen;
    this.pingTimer.set(PING_TIMEOUT, () => {
      if (gen !== this.gen || this.stopped()) return;
      const why = `no ping from the server in ${PING_TIMEOUT / 1000} s`;
      this.disconnect(CloseCode.STUCK, "connection stuck");
      this.failed(why);
    });
  }

  /** Protocol 4: a RequestBatch, over the WebSocket or POSTed to server.publish. */
  private async publishBinary(receivers: BinaryReceiver[], body: Record<string, unknown>, expiry?: number): Promise<void> {
    const cfg = this.config;
    if (!cfg || this.protocol !== 4) throw new Error("client publishes need protocol 4 or 5 (server.version)");
    if (cfg.server.publish_enabled !== true) throw new Error("client publishes are disabled (server.publish_enabled)");
    if (receivers.length === 0) throw new Error("no receivers");
    const bytes = encodePublish([{ receivers, body: JSON.stringify(body), expiry }]);
    if (this.statusValue === "online" && this.transportValue === "websocket") {
      if (this.wsSend(bytes)) return;
    }
    const s = cfg.server;
    const base = (this.secure() && s.publish_secure) || s.publish;
    if (!base) throw new Error("not connected by WebSocket, and the config has no publish URL");
    const ids = channelList(cfg).map((c) => c.id);
    let url = absolute(base.replace("#DOMAIN#", pageHost()), "longpolling");
    if (ids.length > 0) url += (url.includes("?") ? "&" : "?") + "CHANNEL_ID=" + encodeURIComponent(ids.join("/"));
    const f = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
    // No Content-Type: a "simple" POST, without CORS preflight.
    const res = await f(url, { method: "POST", body: new Uint8Array(bytes), cache: "no-store" });
    if (!res.ok) throw new Error(`publish: HTTP ${res.status} ${(await res.text()).trim()}`);
  }

  /** Protocol 5: the status subscriptions again, on a new connection. */
  private restoreStatusSubscriptions(): void {
    for (const userId of this.statusHandlers.keys()) {
      this.rpc("subscribeStatusChange", { userId }).catch((err) =>
        this.log(`status subscription of user ${userId} failed: ${errorText(err)}`),
      );
    }
  }

  private userStatusChanged(p: Record<string, unknown>): void {
    const userId = Number(p.user_id);
    const set = this.statusHandlers.get(userId);
    if (!set) return;
    const s: UserStatus = { userId, isOnline: p.online === true };
    for (const h of [...set]) this.call(() => h(s));
  }

  // Backend poll -----------------------------------------------------------

  private startBackendPoll(): void {
    if (this.poller && !this.poller.active) {
      this.log("no push server: polling the backend");
      this.poller.start();
    }
  }

  // Helpers ----------------------------------------------------------------

  private setStatus(status: Status, extra: Partial<StatusEvent> = {}): void {
    this.statusValue = status;
    const e: StatusEvent = {
      status,
      transport: status === "polling" ? null : this.transportValue,
      errors: this.errors,
      websocketErrors: this.wsErrors,
      backendPolling: this.poller?.active ?? false,
      ...extra,
    };
    this.lastStatus = e;
    for (const h of [...this.onStatusHandlers]) this.call(() => h(e));
  }

  private stopped(): boolean {
    return this.statusValue === "stopped";
  }

  private wait(name: keyof typeof Waits): number {
    const range = this.opts.waits?.[name] ?? Waits[name];
    return between(range[0], range[1], this.random);
  }

  private wsCtor(): typeof WebSocket | undefined {
    return this.opts.WebSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
  }

  private secure(): boolean {
    if (this.opts.secure !== undefined) return this.opts.secure;
    return (globalThis as { location?: Location }).location?.protocol === "https:";
  }

  private networkTarget(): EventTarget | null {
    if (this.opts.networkEvents !== undefined) return this.opts.networkEvents;
    const w = (globalThis as { window?: EventTarget }).window;
    return w && typeof w.addEventListener === "function" ? w : null;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }
}

/** Sender type of a message another client published. */
const SENDER_CLIENT = 1;

/** The protocol a config asks for: `server.version` 5+ → 5, 4 → 4, else 3. */
export function protocolOf(cfg: PullConfig): Protocol {
  const v = Number(cfg.server?.version) || 0;
  return v >= 5 ? 5 : v === 4 ? 4 : 3;
}

/**
 * Builds the subscribe URL the stock clients build (PROTOCOL.md 2.3):
 * `token=<jwt>` when the config has one, else
 * `CHANNEL_ID=<private>/<shared>`; `jsonRpc=true` for protocol 5,
 * `binaryMode=true` for 4, `format=json` when asked in 3; `clientId` in
 * shared mode, `mid` to resume, `revision=19`. Relative URLs are resolved
 * against the page.
 */
export function connectionUrl(
  cfg: PullConfig,
  t: Transport,
  o: { secure?: boolean; mid?: string | null; format?: "text" | "json" } = {},
): string {
  const s = cfg.server;
  let base =
    t === "websocket"
      ? (o.secure && s.websocket_secure) || s.websocket
      : (o.secure && s.long_pooling_secure) || s.long_polling;
  if (!base) throw new Error(`config has no ${t} URL`);
  base = absolute(base.replace("#DOMAIN#", pageHost()), t);
  const q: string[] = [];
  if (typeof cfg.jwt === "string" && cfg.jwt !== "") q.push("token=" + encodeURIComponent(cfg.jwt));
  else if (channelList(cfg).length > 0) q.push("CHANNEL_ID=" + encodeURIComponent(channelList(cfg).map((c) => c.id).join("/")));
  const protocol = protocolOf(cfg);
  if (protocol === 5) q.push("jsonRpc=true");
  else if (protocol === 4) q.push("binaryMode=true");
  else if (o.format === "json") q.push("format=json");
  if (s.mode === "shared" && cfg.clientId) q.push("clientId=" + encodeURIComponent(cfg.clientId));
  if (o.mid) q.push("mid=" + encodeURIComponent(o.mid));
  q.push("revision=" + REVISION);
  return base + (base.includes("?") ? "&" : "?") + q.join("&");
}

/** The private channel first, then shared, then any other typed channel. */
function channelList(cfg: PullConfig): PullChannel[] {
  const out: PullChannel[] = [];
  const ch = cfg.channels ?? {};
  for (const key of ["private", "shared", ...Object.keys(ch).filter((k) => k !== "private" && k !== "shared")]) {
    const c = ch[key];
    if (c && typeof c.id === "string" && c.id !== "" && !out.some((o) => o.id === c.id)) out.push(c);
  }
  return out;
}

/** What a connection is made with: a change needs a new connection. */
function channelIds(cfg: PullConfig | null): string {
  return cfg ? [protocolOf(cfg), channelList(cfg).map((c) => c.id).join("/"), cfg.jwt ?? ""].join("|") : "";
}

/** A public channel reference as the ids of a protobuf receiver. */
function publicReceiver(ref: PublicChannelRef): BinaryReceiver {
  if (typeof ref === "string") {
    const dot = ref.indexOf(".");
    return { id: dot < 0 ? ref : ref.slice(0, dot), signature: dot < 0 ? "" : ref.slice(dot + 1) };
  }
  if (isObject(ref) && typeof ref.publicId === "string") return { id: ref.publicId, signature: String(ref.signature ?? "") };
  throw new TypeError('a public channel is "<publicId>.<signature>" or {publicId, signature}');
}

/** Milliseconds since the epoch at which a JWT expires (its exp claim), or null. */
export function tokenExpiry(jwt: unknown): number | null {
  if (typeof jwt !== "string") return null;
  const part = jwt.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4));
    const claims: unknown = JSON.parse(json);
    return isObject(claims) && typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** Milliseconds since the epoch of a config time: unix seconds or a date string. */
export function timeOf(v: unknown): number | null {
  if (typeof v === "number" && isFinite(v)) return v < 1e11 ? v * 1000 : v;
  if (typeof v === "string" && v !== "") {
    if (/^\d+$/.test(v)) return timeOf(Number(v));
    const t = Date.parse(v);
    return isNaN(t) ? null : t;
  }
  return null;
}

function validConfig(raw: unknown): PullConfig {
  let v = raw as Record<string, unknown> | null;
  if (v && typeof v === "object" && !("server" in v) && v.result && typeof v.result === "object") {
    v = v.result as Record<string, unknown>;
  }
  if (!v || typeof v !== "object" || !v.server || typeof v.server !== "object") {
    throw new Error("config has no server section");
  }
  const cfg = v as unknown as PullConfig;
  if (!cfg.channels || typeof cfg.channels !== "object") cfg.channels = {};
  if (cfg.server.server_enabled !== false && channelList(cfg).length === 0 && !cfg.jwt) {
    throw new Error("config has no channel");
  }
  return cfg;
}

function absolute(url: string, t: Transport): string {
  const loc = (globalThis as { location?: Location }).location;
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) || !loc) return url;
  const u = new URL(url, loc.href);
  if (t === "websocket") u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}

function pageHost(): string {
  return (globalThis as { location?: Location }).location?.host ?? "";
}

function structuredCloneJSON<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
