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
    /** "text" (default): protocol-3 envelopes; "json": `format=json` arrays. */
    format?: "text" | "json";
    /** Use the secure URLs of the config; default: when the page is https. */
    secure?: boolean;
    /** Polls the application's backend when no push server answers (60-20-10 schedule). */
    backendPoll?: BackendPoll;
    /** Watches "online"/"offline" events of this target; default the global window. */
    networkEvents?: EventTarget | null;
    /** Reconnect delay after n errors in a row; default reconnectDelay (the documented table). */
    reconnectDelay?: (errors: number) => number;
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
 * message to its subscribers. See docs/client.md for the state machine.
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
    private poller;
    private readonly handlers;
    private readonly allHandlers;
    private readonly statusHandlers;
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
    /** The URL the client would open now for transport t. */
    connectionUrl(t: Transport): string;
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
    private networkOffline;
    private networkOnline;
    /** Fetches a new config shortly before the first channel ends. */
    private scheduleRefresh;
    private refresh;
    private canRefetch;
    private receive;
    private handleEnvelope;
    private deliverPolled;
    private remember;
    /** The server's own commands (module_id "pull"). */
    private system;
    private emit;
    private call;
    private startBackendPoll;
    private setStatus;
    private stopped;
    private wait;
    private wsCtor;
    private secure;
    private networkTarget;
    private log;
}
/**
 * Builds the subscribe URL the stock clients build (PROTOCOL.md 2.3) for
 * protocol-3 text mode: `CHANNEL_ID=<private>/<shared>` (or `token=` when
 * the config has only a JWT), `clientId` in shared mode, `mid` to resume,
 * `revision=19`. Relative URLs are resolved against the page.
 */
export declare function connectionUrl(cfg: PullConfig, t: Transport, o?: {
    secure?: boolean;
    mid?: string | null;
    format?: "text" | "json";
}): string;
/** Milliseconds since the epoch of a config time: unix seconds or a date string. */
export declare function timeOf(v: unknown): number | null;
