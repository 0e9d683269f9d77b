import { type BackendPoll } from "./poller.js";
import { type Timers } from "./timers.js";
import type { PullConfig, PullEvent } from "./types.js";
/** The client API revision sent as `revision=` (the stock clients' value). */
export declare const REVISION = 19;
/** Close codes the Push & Pull servers and clients use. */
export declare const CloseCode: {
    readonly NORMAL: 1000;
    readonly GOING_AWAY: 1001;
    readonly ABNORMAL: 1006;
    readonly POLICY: 1008;
    readonly CONFIG_REPLACED: 3000;
    readonly CHANNEL_EXPIRED: 3001;
    readonly SERVER_RESTARTED: 3002;
    readonly CONFIG_EXPIRED: 3003;
    readonly MANUAL: 3004;
    /** Protocol 5: no ping from the server in 20 s (the client closes). */
    readonly STUCK: 3005;
    readonly WRONG_CHANNEL_ID: 4010;
};
/** A long poll not answered within this is abandoned and sent again. */
export declare const LONG_POLL_TIMEOUT = 60000;
/** A long poll still held after this counts as connected. */
export declare const LONG_POLL_ONLINE_AFTER = 5000;
/** A WebSocket that stayed open this long and then broke is not "blocked". */
export declare const WEBSOCKET_STABLE_AFTER = 60000;
/** How many message ids are remembered to drop repeats. */
export declare const SEEN_IDS = 100;
/** Channels are refreshed this long before they end (or at half their remaining life). */
export declare const REFRESH_MARGIN: number;
/** Failed attempts in a row after which the backend poll runs. */
export declare const BACKEND_POLL_AFTER = 3;
/** Protocol 5: a WebSocket without a server "ping" for this long is closed (3005) and reopened. */
export declare const PING_TIMEOUT = 20000;
/** Protocol 5: how long a request waits for its answer by default. */
export declare const RPC_TIMEOUT = 5000;
/** Ranges of random waits, in milliseconds. */
export declare const Waits: {
    /** Long polling is used this long after WebSocket broke, if it had worked. */
    readonly restoreWebSocket: readonly [number, number];
    /** config_expire, server_restart: wait, then fetch a new config. */
    readonly restart: readonly [10000, 120000];
    /** Close 4010 (wrong channel id): wait, then fetch a new config. */
    readonly wrongChannel: readonly [5000, 35000];
};
export type Status = "idle" | "connecting" | "online" | "offline" | "polling" | "stopped";
export type Transport = "websocket" | "longpolling";
/**
 * The protocol spoken, from the config's `server.version` as the stock
 * clients choose it: 5 and above JSON-RPC (`jsonRpc=true`), 4 protobuf
 * (`binaryMode=true`), anything else text envelopes.
 */
export type Protocol = 3 | 4 | 5;
/** A public channel to publish to: `"<publicId>.<signature>"` or the two fields. */
export type PublicChannelRef = string | {
    publicId: string;
    signature: string;
};
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
export type PullEventHandler = (moduleId: string, command: string, params: Record<string, unknown>, extra: Record<string, unknown>, event: PullEvent) => void;
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
export declare class PullClient {
    private readonly opts;
    private readonly timers;
    private readonly random;
    private readonly delayFor;
    private config;
    private statusValue;
    private transportValue;
    private errors;
    private wsErrors;
    private wsEverConnected;
    /** "temporary": long polling until the restore timer; "permanent": for good. */
    private wsBlocked;
    private lastMid;
    private readonly seen;
    private readonly seenSet;
    private needConfig;
    private loading;
    /** Bumped by every new connection and disconnect: callbacks of older ones are ignored. */
    private gen;
    private ws;
    private lp;
    private probe;
    private readonly reconnectTimer;
    private readonly restoreTimer;
    private readonly refreshTimer;
    private readonly lpOnlineTimer;
    private readonly lpAbortTimer;
    private readonly pingTimer;
    private poller;
    /** Protocol 5: requests awaiting their answer, by id. */
    private rpcSeq;
    private readonly pending;
    /** Protocol 5: status subscriptions, made again on every new connection. */
    private readonly statusHandlers;
    private readonly handlers;
    private readonly allHandlers;
    private readonly onStatusHandlers;
    private lastStatus;
    private readonly onOffline;
    private readonly onOnline;
    constructor(options?: PullClientOptions);
    /** Loads the config and connects. Resolves once the first attempt is under way. */
    start(): Promise<void>;
    /** Disconnects and stops every timer. start() may be called again. */
    stop(): void;
    /**
     * Calls handler for every message of moduleId whose command is command
     * ("*" or omitted: every command of the module). Returns the unsubscribe
     * function.
     */
    subscribe(moduleId: string, command: string | EventHandler, handler?: EventHandler): () => void;
    /** Removes a handler added by subscribe. */
    unsubscribe(moduleId: string, command: string, handler: EventHandler): void;
    /** Calls handler for every message, as BX's onPullEvent(module_id, command, params). */
    onPullEvent(handler: PullEventHandler): () => void;
    /** Calls handler on every status change, and at once with the current status. */
    onStatus(handler: StatusHandler): () => void;
    get status(): Status;
    /** The transport in use (or the next to be tried). */
    get transport(): Transport;
    /** The newest message id seen: the resume point. */
    get mid(): string | null;
    /** The config in use (channels replaced by channel_expire included). */
    get currentConfig(): PullConfig | null;
    /** The protocol the config asks for (3 until a config is loaded). */
    get protocol(): Protocol;
    /** The URL the client would open now for transport t. */
    connectionUrl(t: Transport): string;
    /**
     * Publishes a command to public channels (protocols 4 and 5), each
     * `"<publicId>.<signature>"` or `{publicId, signature}`. Every receiver
     * gets it, the sender's own connections included, with `sender.type` 1.
     * Protocol 5 resolves once the server accepted it (a refusal rejects
     * with an RpcError); protocol 4 once it is sent: over WebSocket as a
     * binary frame (the server closes the connection on a bad signature, and
     * the client reconnects), over long polling POSTed to `server.publish`.
     */
    sendMessageToChannels(channels: PublicChannelRef[], moduleId: string, command: string, params?: Record<string, unknown>, expiry?: number): Promise<void>;
    /**
     * Publishes a command to users (protocols 4 and 5). Protocol 5 needs a
     * connection with a token (`jwt` in the config); protocol 4 publishes to
     * the users' public channels, which must be in the config's
     * `publicChannels`.
     */
    sendMessage(users: number[], moduleId: string, command: string, params?: Record<string, unknown>, expiry?: number): Promise<void>;
    /**
     * Protocol 5: when each user was last seen, in seconds ago (0: online
     * now). Users the server never saw are left out.
     */
    getUsersLastSeen(users: number[]): Promise<Record<number, number>>;
    /** Protocol 5: a JSON-RPC ping; resolves when the server answers. */
    ping(timeout?: number): Promise<void>;
    /** Protocol 5: the channels of the connection, as the server lists them. */
    listChannels(): Promise<unknown>;
    /**
     * Protocol 5: calls handler with `{userId, isOnline}` whenever the user's
     * first connection opens or the last one closes. The subscription is made
     * again on every new connection; made while not connected, it resolves
     * at once and takes effect on the next one.
     */
    subscribeUserStatusChange(userId: number, handler: UserStatusHandler): Promise<void>;
    /** Protocol 5: removes a handler of subscribeUserStatusChange; the last one ends the subscription. */
    unsubscribeUserStatusChange(userId: number, handler: UserStatusHandler): Promise<void>;
    private connect;
    private loadConfig;
    private fetchConfig;
    private setConfig;
    private webSocketAllowed;
    private connectWebSocket;
    private webSocketClosed;
    /** More than 4 WebSocket errors in a row: long polling, for good or for 10-30 min. */
    private fallBackToLongPolling;
    private connectLongPolling;
    private longPollingWorks;
    private lpTimersClear;
    /**
     * After the temporary block: try a WebSocket beside the running long
     * poll; switch to it once it opens, else keep long polling for another
     * 10-30 min.
     */
    private probeWebSocket;
    private closeProbe;
    /** A connection attempt failed or a connection broke: back off and retry. */
    private failed;
    /** Closes the current connection (its callbacks are ignored from now on). */
    private disconnect;
    /** Drops the connection and opens a new one at once (same config, same mid). */
    private reconnectNow;
    /** Drops the connection, waits, fetches a new config and connects. */
    private restart;
    /** The connection ended: its requests fail, its keepalive ends. */
    private connectionGone;
    private networkOffline;
    private networkOnline;
    /** Fetches a new config shortly before the first channel ends. */
    private scheduleRefresh;
    private refresh;
    private canRefetch;
    /** A text frame or long-polling answer, in the connection's protocol. */
    private receiveText;
    /** A binary frame: a protocol-4 ResponseBatch. */
    private receiveBinary;
    /**
     * A protocol-4 long-polling answer: a ResponseBatch, or text envelopes
     * from a server that answers text (it starts with "#" or "[", which no
     * ResponseBatch does).
     */
    private receiveBody;
    /** Protocol 5: notifications, answers to requests, and (from a text answer) envelopes. */
    private receiveRpc;
    private deliver;
    private handleEnvelope;
    private deliverPolled;
    private remember;
    /** The server's own commands (module_id "pull"). */
    private system;
    private emit;
    private call;
    /** Protocol 5: sends a request over the WebSocket and waits for its answer. */
    private rpc;
    /** Whether requests can be sent now: a protocol-5 WebSocket is open. */
    private rpcReady;
    private wsSend;
    /** Protocol 5: the server's "ping" came; the next must come within PING_TIMEOUT. */
    private pong;
    /** Protocol 4: a RequestBatch, over the WebSocket or POSTed to server.publish. */
    private publishBinary;
    /** Protocol 5: the status subscriptions again, on a new connection. */
    private restoreStatusSubscriptions;
    private userStatusChanged;
    private startBackendPoll;
    private setStatus;
    private stopped;
    private wait;
    private wsCtor;
    private secure;
    private networkTarget;
    private log;
}
/** The protocol a config asks for: `server.version` 5+ → 5, 4 → 4, else 3. */
export declare function protocolOf(cfg: PullConfig): Protocol;
/**
 * Builds the subscribe URL the stock clients build (PROTOCOL.md 2.3):
 * `token=<jwt>` when the config has one, else
 * `CHANNEL_ID=<private>/<shared>`; `jsonRpc=true` for protocol 5,
 * `binaryMode=true` for 4, `format=json` when asked in 3; `clientId` in
 * shared mode, `mid` to resume, `revision=19`. Relative URLs are resolved
 * against the page.
 */
export declare function connectionUrl(cfg: PullConfig, t: Transport, o?: {
    secure?: boolean;
    mid?: string | null;
    format?: "text" | "json";
}): string;
/** Milliseconds since the epoch at which a JWT expires (its exp claim), or null. */
export declare function tokenExpiry(jwt: unknown): number | null;
/** Milliseconds since the epoch of a config time: unix seconds or a date string. */
export declare function timeOf(v: unknown): number | null;
