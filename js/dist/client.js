import { MAX_WEBSOCKET_ERRORS, between, reconnectDelay } from "./backoff.js";
import { parseFrame } from "./parse.js";
import { BackendPoller } from "./poller.js";
import { Timer, realTimers } from "./timers.js";
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
    WRONG_CHANNEL_ID: 4010,
};
/** A long poll not answered within this is abandoned and sent again. */
export const LONG_POLL_TIMEOUT = 60000;
/** A long poll still held after this counts as connected. */
export const LONG_POLL_ONLINE_AFTER = 5000;
/** A WebSocket that stayed open this long and then broke is not "blocked". */
export const WEBSOCKET_STABLE_AFTER = 60000;
/** How many message ids are remembered to drop repeats. */
export const SEEN_IDS = 100;
/** Channels are refreshed this long before they end (or at half their remaining life). */
export const REFRESH_MARGIN = 5 * 60000;
/** Failed attempts in a row after which the backend poll runs. */
export const BACKEND_POLL_AFTER = 3;
/** Ranges of random waits, in milliseconds. */
export const Waits = {
    /** Long polling is used this long after WebSocket broke, if it had worked. */
    restoreWebSocket: [10 * 60000, 30 * 60000],
    /** config_expire, server_restart: wait, then fetch a new config. */
    restart: [10000, 120000],
    /** Close 4010 (wrong channel id): wait, then fetch a new config. */
    wrongChannel: [5000, 35000],
};
/**
 * A Push & Pull client: fetches its config, connects by WebSocket and
 * falls back to long polling, resumes from the last message id after every
 * reconnect, drops repeated messages, follows the server's pull commands
 * (channel_expire, config_expire, server_restart) and delivers every other
 * message to its subscribers. See docs/client.md for the state machine.
 */
export class PullClient {
    constructor(options = {}) {
        this.config = null;
        this.statusValue = "idle";
        this.transportValue = "websocket";
        this.errors = 0;
        this.wsErrors = 0;
        this.wsEverConnected = false;
        /** "temporary": long polling until the restore timer; "permanent": for good. */
        this.wsBlocked = "no";
        this.lastMid = null;
        this.seen = [];
        this.seenSet = new Set();
        this.needConfig = true;
        this.loading = null;
        /** Bumped by every new connection and disconnect: callbacks of older ones are ignored. */
        this.gen = 0;
        this.ws = null;
        this.lp = null;
        this.probe = null;
        this.poller = null;
        this.handlers = new Map();
        this.allHandlers = new Set();
        this.statusHandlers = new Set();
        this.lastStatus = null;
        this.onOffline = () => this.networkOffline();
        this.onOnline = () => this.networkOnline();
        this.opts = options;
        this.timers = options.timers ?? realTimers;
        this.random = options.random ?? Math.random;
        this.delayFor = options.reconnectDelay ?? ((n) => reconnectDelay(n, this.random));
        this.reconnectTimer = new Timer(this.timers);
        this.restoreTimer = new Timer(this.timers);
        this.refreshTimer = new Timer(this.timers);
        this.lpOnlineTimer = new Timer(this.timers);
        this.lpAbortTimer = new Timer(this.timers);
        if (options.backendPoll) {
            this.poller = new BackendPoller(options.backendPoll, this.timers, (messages) => this.deliverPolled(messages), () => this.lastMid, (err) => this.log(`backend poll failed: ${String(err)}`));
        }
    }
    // Public API --------------------------------------------------------------
    /** Loads the config and connects. Resolves once the first attempt is under way. */
    async start() {
        if (this.statusValue !== "idle" && this.statusValue !== "stopped")
            return;
        this.statusValue = "offline";
        const net = this.networkTarget();
        net?.addEventListener("offline", this.onOffline);
        net?.addEventListener("online", this.onOnline);
        this.needConfig = true;
        await this.connect();
    }
    /** Disconnects and stops every timer. start() may be called again. */
    stop() {
        if (this.stopped() || this.statusValue === "idle")
            return;
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
    subscribe(moduleId, command, handler) {
        let cmd = "*";
        let fn;
        if (typeof command === "function") {
            fn = command;
        }
        else {
            cmd = command;
            if (!handler)
                throw new TypeError("subscribe: handler missing");
            fn = handler;
        }
        const key = `${moduleId}\u0000${cmd.toLowerCase()}`;
        let set = this.handlers.get(key);
        if (!set)
            this.handlers.set(key, (set = new Set()));
        set.add(fn);
        return () => this.unsubscribe(moduleId, cmd, fn);
    }
    /** Removes a handler added by subscribe. */
    unsubscribe(moduleId, command, handler) {
        const key = `${moduleId}\u0000${command.toLowerCase()}`;
        const set = this.handlers.get(key);
        if (!set)
            return;
        set.delete(handler);
        if (set.size === 0)
            this.handlers.delete(key);
    }
    /** Calls handler for every message, as BX's onPullEvent(module_id, command, params). */
    onPullEvent(handler) {
        this.allHandlers.add(handler);
        return () => this.allHandlers.delete(handler);
    }
    /** Calls handler on every status change, and at once with the current status. */
    onStatus(handler) {
        this.statusHandlers.add(handler);
        if (this.lastStatus)
            handler(this.lastStatus);
        return () => this.statusHandlers.delete(handler);
    }
    get status() {
        return this.statusValue;
    }
    /** The transport in use (or the next to be tried). */
    get transport() {
        return this.transportValue;
    }
    /** The newest message id seen: the resume point. */
    get mid() {
        return this.lastMid;
    }
    /** The config in use (channels replaced by channel_expire included). */
    get currentConfig() {
        return this.config;
    }
    /** The URL the client would open now for transport t. */
    connectionUrl(t) {
        if (!this.config)
            throw new Error("no config");
        return connectionUrl(this.config, t, {
            secure: this.secure(),
            mid: this.lastMid,
            format: this.opts.format ?? "text",
        });
    }
    // Connecting --------------------------------------------------------------
    async connect() {
        this.reconnectTimer.clear();
        if (this.stopped())
            return;
        if (this.needConfig) {
            try {
                await this.loadConfig();
            }
            catch (err) {
                if (this.stopped())
                    return;
                this.failed(`config: ${errorText(err)}`);
                return;
            }
            if (this.stopped())
                return;
        }
        const cfg = this.config;
        if (cfg.server.server_enabled === false) {
            this.disconnect(CloseCode.NORMAL, "no push server");
            this.startBackendPoll();
            this.setStatus("polling", { reason: "server_enabled is false" });
            return;
        }
        if (this.transportValue === "websocket" && !this.webSocketAllowed()) {
            this.transportValue = "longpolling";
        }
        if (this.transportValue === "websocket")
            this.connectWebSocket();
        else
            this.connectLongPolling(true);
    }
    loadConfig() {
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
    async fetchConfig() {
        const src = this.opts.config;
        let raw;
        if (typeof src === "function") {
            raw = await src();
        }
        else if (src) {
            raw = structuredCloneJSON(src);
        }
        else if (this.opts.configUrl) {
            const f = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
            const res = await f(this.opts.configUrl, { cache: "no-store", ...this.opts.configFetchOptions });
            if (!res.ok)
                throw new Error(`config URL answered ${res.status}`);
            raw = await res.json();
        }
        else {
            throw new Error("neither config nor configUrl given");
        }
        return validConfig(raw);
    }
    setConfig(cfg) {
        this.config = cfg;
        this.scheduleRefresh();
    }
    webSocketAllowed() {
        const s = this.config?.server;
        return (this.opts.transport !== "longpolling" &&
            this.wsBlocked === "no" &&
            s?.websocket_enabled !== false &&
            !!(this.secure() ? s?.websocket_secure || s?.websocket : s?.websocket) &&
            typeof this.wsCtor() === "function");
    }
    connectWebSocket() {
        const gen = ++this.gen;
        const url = this.connectionUrl("websocket");
        this.setStatus("connecting", { transport: "websocket", url });
        let ws;
        try {
            ws = new (this.wsCtor())(url);
        }
        catch (err) {
            this.webSocketClosed(false, CloseCode.ABNORMAL, errorText(err), 0);
            return;
        }
        this.ws = ws;
        let openedAt = -1;
        ws.onopen = () => {
            if (gen !== this.gen)
                return;
            openedAt = this.timers.now();
            this.errors = 0;
            this.wsEverConnected = true;
            this.poller?.stop();
            this.setStatus("online", { transport: "websocket" });
        };
        ws.onmessage = (ev) => {
            if (gen !== this.gen)
                return;
            if (typeof ev.data === "string")
                this.receive(ev.data, "websocket");
        };
        ws.onclose = (ev) => {
            if (gen !== this.gen)
                return;
            this.ws = null;
            const opened = openedAt >= 0;
            this.webSocketClosed(opened, ev.code, ev.reason, opened ? this.timers.now() - openedAt : 0);
        };
    }
    webSocketClosed(opened, code, reason, lived) {
        if (this.stopped())
            return;
        const broken = !opened || ((code === CloseCode.ABNORMAL || code === CloseCode.POLICY) && lived < WEBSOCKET_STABLE_AFTER);
        this.wsErrors = broken ? this.wsErrors + 1 : 0;
        const why = `websocket closed: ${code}${reason ? " " + reason : ""}`;
        switch (code) {
            case CloseCode.WRONG_CHANNEL_ID:
                this.restart(this.wait(Waits.wrongChannel), why);
                return;
            case CloseCode.CHANNEL_EXPIRED:
                this.restart(0, why);
                return;
            case CloseCode.CONFIG_EXPIRED:
            case CloseCode.SERVER_RESTARTED:
                this.restart(this.wait(Waits.restart), why);
                return;
        }
        if (this.wsErrors > MAX_WEBSOCKET_ERRORS && this.opts.transport !== "websocket") {
            this.fallBackToLongPolling(why);
            return;
        }
        this.failed(why);
    }
    /** More than 4 WebSocket errors in a row: long polling, for good or for 10-30 min. */
    fallBackToLongPolling(why) {
        this.wsBlocked = this.wsEverConnected ? "temporary" : "permanent";
        this.transportValue = "longpolling";
        this.errors = 0;
        this.log(`${why}; WebSocket blocked (${this.wsBlocked}), switching to long polling`);
        this.connectLongPolling(true);
    }
    connectLongPolling(first) {
        const gen = ++this.gen;
        const url = this.connectionUrl("longpolling");
        if (first || this.statusValue !== "online")
            this.setStatus("connecting", { transport: "longpolling", url });
        const ctrl = new AbortController();
        this.lp = ctrl;
        let timedOut = false;
        // A held request means the server accepted the channels.
        this.lpOnlineTimer.set(LONG_POLL_ONLINE_AFTER, () => {
            if (gen === this.gen)
                this.longPollingWorks();
        });
        this.lpAbortTimer.set(LONG_POLL_TIMEOUT, () => {
            timedOut = true;
            ctrl.abort();
        });
        const f = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
        // A "simple" GET: no custom headers, so no CORS preflight.
        f(url, { signal: ctrl.signal, cache: "no-store" })
            .then(async (res) => ({ res, body: await res.text() }))
            .then(({ res, body }) => {
            if (gen !== this.gen)
                return;
            this.lpTimersClear();
            this.lp = null;
            if (res.status === 200) {
                this.longPollingWorks();
                // An empty 200 carries nothing: keep the resume position.
                if (body.trim() !== "")
                    this.receive(body, "longpolling");
                if (gen === this.gen)
                    this.connectLongPolling(false);
            }
            else if (res.status === 304) {
                this.longPollingWorks();
                // The stock clients trust Last-Message-Id only with this exact Expires.
                if (res.headers.get("Expires") === "Thu, 01 Jan 1973 11:11:01 GMT") {
                    const last = res.headers.get("Last-Message-Id");
                    if (last)
                        this.lastMid = last;
                }
                this.connectLongPolling(false);
            }
            else {
                this.failed(`long polling: HTTP ${res.status}`);
            }
        }, (err) => {
            if (gen !== this.gen)
                return;
            this.lpTimersClear();
            this.lp = null;
            if (timedOut)
                this.connectLongPolling(false);
            else
                this.failed(`long polling: ${errorText(err)}`);
        });
    }
    longPollingWorks() {
        this.lpOnlineTimer.clear();
        this.errors = 0;
        this.poller?.stop();
        if (this.statusValue !== "online")
            this.setStatus("online", { transport: "longpolling" });
        if (this.wsBlocked === "temporary" && !this.restoreTimer.armed) {
            this.restoreTimer.set(this.wait(Waits.restoreWebSocket), () => this.probeWebSocket());
        }
    }
    lpTimersClear() {
        this.lpOnlineTimer.clear();
        this.lpAbortTimer.clear();
    }
    /**
     * After the temporary block: try a WebSocket beside the running long
     * poll; switch to it once it opens, else keep long polling for another
     * 10-30 min.
     */
    probeWebSocket() {
        if (this.stopped() || this.transportValue !== "longpolling" || !this.config)
            return;
        const ctor = this.wsCtor();
        if (!ctor)
            return;
        let ws;
        try {
            ws = new ctor(this.connectionUrl("websocket"));
        }
        catch {
            this.restoreTimer.set(this.wait(Waits.restoreWebSocket), () => this.probeWebSocket());
            return;
        }
        this.probe = ws;
        ws.onopen = () => {
            if (this.probe !== ws)
                return;
            this.closeProbe();
            this.log("WebSocket works again");
            this.wsBlocked = "no";
            this.wsErrors = 0;
            this.transportValue = "websocket";
            this.reconnectNow("WebSocket restored");
        };
        ws.onclose = () => {
            if (this.probe !== ws)
                return;
            this.probe = null;
            this.restoreTimer.set(this.wait(Waits.restoreWebSocket), () => this.probeWebSocket());
        };
    }
    closeProbe() {
        const p = this.probe;
        this.probe = null;
        if (p) {
            p.onopen = p.onclose = p.onmessage = null;
            try {
                p.close(CloseCode.NORMAL);
            }
            catch {
                // already closed
            }
        }
    }
    /** A connection attempt failed or a connection broke: back off and retry. */
    failed(why) {
        if (this.stopped())
            return;
        this.errors++;
        const delay = this.delayFor(this.errors);
        this.log(`${why}; retry ${this.errors} in ${delay} ms`);
        if (this.errors >= BACKEND_POLL_AFTER)
            this.startBackendPoll();
        this.setStatus("offline", { retryIn: delay, reason: why });
        this.reconnectTimer.set(delay, () => void this.connect());
    }
    /** Closes the current connection (its callbacks are ignored from now on). */
    disconnect(code, reason) {
        this.gen++;
        this.lpTimersClear();
        const ws = this.ws;
        this.ws = null;
        if (ws) {
            ws.onopen = ws.onclose = ws.onmessage = null;
            try {
                ws.close(code, reason);
            }
            catch {
                // already closed
            }
        }
        this.lp?.abort();
        this.lp = null;
    }
    /** Drops the connection and opens a new one at once (same config, same mid). */
    reconnectNow(why) {
        this.disconnect(CloseCode.CONFIG_REPLACED, why);
        this.errors = 0;
        this.log(`reconnecting: ${why}`);
        void this.connect();
    }
    /** Drops the connection, waits, fetches a new config and connects. */
    restart(delay, why) {
        this.disconnect(CloseCode.NORMAL, why);
        this.needConfig = true;
        this.log(`restart in ${delay} ms: ${why}`);
        this.setStatus("offline", { retryIn: delay, reason: why });
        this.reconnectTimer.set(delay, () => void this.connect());
    }
    networkOffline() {
        if (this.stopped() || this.statusValue === "idle")
            return;
        this.disconnect(CloseCode.NORMAL, "offline");
        this.reconnectTimer.clear();
        this.setStatus("offline", { reason: "network offline" });
    }
    networkOnline() {
        if (this.stopped() || this.statusValue === "idle")
            return;
        if (this.statusValue === "online" || this.statusValue === "connecting")
            return;
        this.errors = 0;
        this.log("network online: reconnecting");
        void this.connect();
    }
    // Channel lifetime -------------------------------------------------------
    /** Fetches a new config shortly before the first channel ends. */
    scheduleRefresh() {
        this.refreshTimer.clear();
        if (!this.config || !this.canRefetch())
            return;
        const now = this.timers.now();
        let due = Infinity;
        for (const ch of channelList(this.config)) {
            const end = timeOf(ch.end);
            if (end === null)
                continue;
            const margin = Math.min(REFRESH_MARGIN, Math.max(0, (end - now) / 2));
            due = Math.min(due, end - margin);
        }
        if (due === Infinity)
            return;
        this.refreshTimer.set(Math.max(due - now, 1000), () => void this.refresh());
    }
    async refresh() {
        if (this.stopped())
            return;
        const before = channelIds(this.config);
        try {
            await this.loadConfig();
        }
        catch (err) {
            this.log(`channel refresh failed: ${errorText(err)}`);
            this.refreshTimer.set(60000, () => void this.refresh());
            return;
        }
        if (this.stopped())
            return;
        if (channelIds(this.config) !== before && this.statusValue !== "polling") {
            this.reconnectNow("channels refreshed");
        }
    }
    canRefetch() {
        return typeof this.opts.config === "function" || (!this.opts.config && !!this.opts.configUrl);
    }
    // Messages ---------------------------------------------------------------
    receive(data, source) {
        const gen = this.gen;
        for (const env of parseFrame(data)) {
            if (gen !== this.gen)
                return; // a command switched the connection: the rest comes again
            this.handleEnvelope(env, source);
        }
    }
    handleEnvelope(env, source) {
        if (env.mid) {
            if (!this.lastMid || env.mid.length !== this.lastMid.length || env.mid > this.lastMid) {
                this.lastMid = env.mid;
            }
            if (this.seenSet.has(env.mid))
                return;
            this.remember(env.mid);
        }
        const ev = { ...env.text, source };
        if (env.mid)
            ev.mid = env.mid;
        if (env.channel)
            ev.channel = env.channel;
        if (ev.module_id === "pull")
            this.system(ev);
        this.emit(ev);
    }
    deliverPolled(messages) {
        for (const m of messages) {
            if (!m || typeof m.module_id !== "string" || typeof m.command !== "string")
                continue;
            const { mid, ...text } = m;
            this.handleEnvelope({ mid, text: { ...text, params: text.params ?? {} } }, "backend");
        }
    }
    remember(mid) {
        this.seen.push(mid);
        this.seenSet.add(mid);
        while (this.seen.length > SEEN_IDS)
            this.seenSet.delete(this.seen.shift());
    }
    /** The server's own commands (module_id "pull"). */
    system(ev) {
        const p = ev.params ?? {};
        switch (ev.command.toLowerCase()) {
            case "channel_expire": {
                const next = p.new_channel;
                const old = p.channel;
                if (p.action === "reconnect" && next && typeof next.id === "string" && this.config) {
                    const type = old?.type ?? next.type ?? "private";
                    this.config.channels[type] = next;
                    this.scheduleRefresh();
                    this.reconnectNow("channel_expire: new channel");
                }
                else {
                    this.restart(0, "channel_expire: get config");
                }
                break;
            }
            case "config_expire":
                this.restart(this.wait(Waits.restart), "config_expire");
                break;
            case "server_restart":
                this.restart(this.wait(Waits.restart), "server_restart");
                break;
        }
    }
    emit(ev) {
        const params = ev.params ?? {};
        const extra = ev.extra ?? {};
        for (const key of [`${ev.module_id}\u0000${ev.command.toLowerCase()}`, `${ev.module_id}\u0000*`]) {
            for (const h of [...(this.handlers.get(key) ?? [])])
                this.call(() => h(params, ev));
        }
        for (const h of [...this.allHandlers])
            this.call(() => h(ev.module_id, ev.command, params, extra, ev));
    }
    call(fn) {
        try {
            fn();
        }
        catch (err) {
            // A failing subscriber must not stop delivery to the others.
            this.log(`handler threw: ${errorText(err)}`);
        }
    }
    // Backend poll -----------------------------------------------------------
    startBackendPoll() {
        if (this.poller && !this.poller.active) {
            this.log("no push server: polling the backend");
            this.poller.start();
        }
    }
    // Helpers ----------------------------------------------------------------
    setStatus(status, extra = {}) {
        this.statusValue = status;
        const e = {
            status,
            transport: status === "polling" ? null : this.transportValue,
            errors: this.errors,
            websocketErrors: this.wsErrors,
            backendPolling: this.poller?.active ?? false,
            ...extra,
        };
        this.lastStatus = e;
        for (const h of [...this.statusHandlers])
            this.call(() => h(e));
    }
    stopped() {
        return this.statusValue === "stopped";
    }
    wait(range) {
        return between(range[0], range[1], this.random);
    }
    wsCtor() {
        return this.opts.WebSocket ?? globalThis.WebSocket;
    }
    secure() {
        if (this.opts.secure !== undefined)
            return this.opts.secure;
        return globalThis.location?.protocol === "https:";
    }
    networkTarget() {
        if (this.opts.networkEvents !== undefined)
            return this.opts.networkEvents;
        const w = globalThis.window;
        return w && typeof w.addEventListener === "function" ? w : null;
    }
    log(line) {
        this.opts.log?.(line);
    }
}
/**
 * Builds the subscribe URL the stock clients build (PROTOCOL.md 2.3) for
 * protocol-3 text mode: `CHANNEL_ID=<private>/<shared>` (or `token=` when
 * the config has only a JWT), `clientId` in shared mode, `mid` to resume,
 * `revision=19`. Relative URLs are resolved against the page.
 */
export function connectionUrl(cfg, t, o = {}) {
    const s = cfg.server;
    let base = t === "websocket"
        ? (o.secure && s.websocket_secure) || s.websocket
        : (o.secure && s.long_pooling_secure) || s.long_polling;
    if (!base)
        throw new Error(`config has no ${t} URL`);
    base = absolute(base.replace("#DOMAIN#", pageHost()), t);
    const q = [];
    const ids = channelList(cfg).map((c) => c.id);
    if (ids.length > 0)
        q.push("CHANNEL_ID=" + encodeURIComponent(ids.join("/")));
    else if (cfg.jwt)
        q.push("token=" + encodeURIComponent(cfg.jwt));
    if (o.format === "json")
        q.push("format=json");
    if (s.mode === "shared" && cfg.clientId)
        q.push("clientId=" + encodeURIComponent(cfg.clientId));
    if (o.mid)
        q.push("mid=" + encodeURIComponent(o.mid));
    q.push("revision=" + REVISION);
    return base + (base.includes("?") ? "&" : "?") + q.join("&");
}
/** The private channel first, then shared, then any other typed channel. */
function channelList(cfg) {
    const out = [];
    const ch = cfg.channels ?? {};
    for (const key of ["private", "shared", ...Object.keys(ch).filter((k) => k !== "private" && k !== "shared")]) {
        const c = ch[key];
        if (c && typeof c.id === "string" && c.id !== "" && !out.some((o) => o.id === c.id))
            out.push(c);
    }
    return out;
}
function channelIds(cfg) {
    return cfg ? channelList(cfg).map((c) => c.id).join("/") : "";
}
/** Milliseconds since the epoch of a config time: unix seconds or a date string. */
export function timeOf(v) {
    if (typeof v === "number" && isFinite(v))
        return v < 1e11 ? v * 1000 : v;
    if (typeof v === "string" && v !== "") {
        if (/^\d+$/.test(v))
            return timeOf(Number(v));
        const t = Date.parse(v);
        return isNaN(t) ? null : t;
    }
    return null;
}
function validConfig(raw) {
    let v = raw;
    if (v && typeof v === "object" && !("server" in v) && v.result && typeof v.result === "object") {
        v = v.result;
    }
    if (!v || typeof v !== "object" || !v.server || typeof v.server !== "object") {
        throw new Error("config has no server section");
    }
    const cfg = v;
    if (!cfg.channels || typeof cfg.channels !== "object")
        cfg.channels = {};
    if (cfg.server.server_enabled !== false && channelList(cfg).length === 0 && !cfg.jwt) {
        throw new Error("config has no channel");
    }
    return cfg;
}
function absolute(url, t) {
    const loc = globalThis.location;
    if (/^[a-z][a-z0-9+.-]*:/i.test(url) || !loc)
        return url;
    const u = new URL(url, loc.href);
    if (t === "websocket")
        u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
}
function pageHost() {
    return globalThis.location?.host ?? "";
}
function structuredCloneJSON(v) {
    return JSON.parse(JSON.stringify(v));
}
function errorText(err) {
    return err instanceof Error ? err.message : String(err);
}
