import { type Envelope } from "./parse.js";
/** The notification that carries a message to the client. */
export declare const INCOMING_MESSAGE = "incoming.message";
/** A JSON-RPC error as the server answers it. */
export declare class RpcError extends Error {
    readonly code: number;
    readonly data?: unknown;
    constructor(code: number, message: string, data?: unknown);
}
/** What one item of a JSON-RPC frame is. */
export type RpcItem = 
/** incoming.message: a message (`id` when the server wants an answer). */
{
    kind: "message";
    envelope: Envelope | null;
    id?: RpcId;
}
/** Another method called by the server. */
 | {
    kind: "call";
    method: string;
    id?: RpcId;
}
/** The answer to one of the client's requests. */
 | {
    kind: "response";
    id: RpcId;
    result?: unknown;
    error?: RpcError;
}
/** A protocol-3 envelope object (a server that answers text). */
 | {
    kind: "envelope";
    envelope: Envelope;
};
export type RpcId = number | string | null;
/**
 * Reads a protocol-5 frame or long-polling answer: one JSON-RPC object or
 * an array of them. Text envelopes (`#!NGINXNMS!#...`), or envelope objects
 * inside the JSON, are read as protocol 3: a server that answers a
 * JSON-RPC long poll in text is understood too. Items that are none of
 * these are skipped.
 */
export declare function parseRpcFrame(data: string): {
    items: RpcItem[];
    batch: boolean;
};
/**
 * The message of an incoming.message notification: `body` (an object) with
 * `user_params` and then `dictionary` merged into its params, as the stock
 * clients do, and `sender` copied to `extra.sender`.
 */
export declare function incomingEnvelope(p: unknown): Envelope | null;
/** A request of the client. */
export declare function request(method: string, params: unknown, id: number): string;
/** The client's answer to a call of the server that carried an id. */
export declare function answer(id: RpcId, result: unknown, error?: {
    code: number;
    message: string;
}): Record<string, unknown>;
/** JSON-RPC's "method not found". */
export declare const METHOD_NOT_FOUND: {
    code: number;
    message: string;
};
