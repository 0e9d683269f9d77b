import type { PullMessage, Sender } from "./types.js";
/**
 * One message as the server delivers it: a protocol-3 envelope, or what
 * the client reads out of a protocol-4 OutgoingMessage or a protocol-5
 * incoming.message (mid, text and sender only).
 */
export interface Envelope {
    id?: number;
    mid?: string;
    channel?: string;
    tag?: string;
    time?: string;
    text: PullMessage;
    /** Protocols 4 and 5: who published it (type 1 a client, 2 the backend). */
    sender?: Sender;
}
/**
 * Parses what one WebSocket frame or long-polling answer holds: any number
 * of text envelopes `#!NGINXNMS!#{...}#!NGINXNME!#` (the server may put
 * several in one frame), or a JSON array of envelope objects
 * (`format=json`). Envelopes that are not valid JSON or carry no command
 * are skipped: one bad message must not cost the others. Unlike the stock
 * clients' pattern match, an envelope spanning lines is still read.
 */
export declare function parseFrame(data: string): Envelope[];
/** Whether v has the shape of a command: module_id and command strings. */
export declare function isMessage(v: unknown): v is PullMessage;
export declare function isObject(v: unknown): v is Record<string, unknown>;
