import type { PullMessage } from "./types.js";
/** One message as the server delivers it in protocol 3. */
export interface Envelope {
    id?: number;
    mid?: string;
    channel?: string;
    tag?: string;
    time?: string;
    text: PullMessage;
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
