/**
 * The config a client connects with: the answer of the Bitrix REST method
 * `pull.config.get` (and of pushpull's backend config endpoint). Only the
 * fields this client reads are typed; others are kept as given.
 */
export interface PullConfig {
    server: ServerConfig;
    api?: {
        revision_web?: number;
        revision_mobile?: number;
    };
    channels: {
        private?: PullChannel;
        shared?: PullChannel;
        [type: string]: PullChannel | undefined;
    };
    /**
     * Protocols 4-5: public channels of users, by user id, as `pull.config.get`
     * gives the user's own (`{user_id, public_id, signature, start, end}`);
     * sendMessage to users needs them in protocol 4.
     */
    publicChannels?: Record<string, PublicChannelInfo> | unknown;
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
    /** Protocol 4: the URL a long-polling client POSTs its publishes to. */
    publish?: string;
    publish_secure?: string;
    /** Protocol 4: client publishes are allowed (the stock clients need true). */
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
/** A user's public channel: what clients publish to (protocols 4-5). */
export interface PublicChannelInfo {
    user_id?: string | number;
    public_id: string;
    /** The signature of "public:<public_id>"; empty when the server has no key. */
    signature: string;
    start?: string | number;
    end?: string | number;
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
    /**
     * Protocols 4-5: who published it, also in `extra.sender` as the stock
     * clients put it: type 1 a client (`id` its public channel), 2 the backend.
     */
    sender?: Sender;
}
/** The publisher of a message: type 1 a client (`id` its public channel), 2 the backend. */
export interface Sender {
    type: number;
    id?: string;
}
