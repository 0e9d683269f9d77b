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

const START = "#!NGINXNMS!#";
const END = "#!NGINXNME!#";

/**
 * Parses what one WebSocket frame or long-polling answer holds: any number
 * of text envelopes `#!NGINXNMS!#{...}#!NGINXNME!#` (the server may put
 * several in one frame), or a JSON array of envelope objects
 * (`format=json`). Envelopes that are not valid JSON or carry no command
 * are skipped: one bad message must not cost the others. Unlike the stock
 * clients' pattern match, an envelope spanning lines is still read.
 */
export function parseFrame(data: string): Envelope[] {
  const out: Envelope[] = [];
  const trimmed = data.trimStart();
  if (trimmed.startsWith("[")) {
    let list: unknown;
    try {
      list = JSON.parse(trimmed);
    } catch {
      return out;
    }
    if (Array.isArray(list)) {
      for (const item of list) pushEnvelope(out, item);
    }
    return out;
  }
  let pos = 0;
  for (;;) {
    const start = data.indexOf(START, pos);
    if (start < 0) break;
    const end = data.indexOf(END, start + START.length);
    if (end < 0) break;
    const body = data.slice(start + START.length, end);
    pos = end + END.length;
    let obj: unknown;
    try {
      obj = JSON.parse(body);
    } catch {
      continue;
    }
    pushEnvelope(out, obj);
  }
  return out;
}

function pushEnvelope(out: Envelope[], v: unknown): void {
  if (!isObject(v)) return;
  let text = v.text;
  if (typeof text === "string") {
    // Some publishers send the command as a JSON string.
    try {
      text = JSON.parse(text);
    } catch {
      return;
    }
  }
  if (!isMessage(text)) return;
  const e: Envelope = { text };
  if (typeof v.id === "number") e.id = v.id;
  if (typeof v.mid === "string" && v.mid !== "") e.mid = v.mid;
  if (typeof v.channel === "string") e.channel = v.channel;
  if (typeof v.tag === "string") e.tag = v.tag;
  if (typeof v.time === "string") e.time = v.time;
  out.push(e);
}

/** Whether v has the shape of a command: module_id and command strings. */
export function isMessage(v: unknown): v is PullMessage {
  if (!isObject(v) || typeof v.module_id !== "string" || typeof v.command !== "string") return false;
  if (!isObject(v.params)) v.params = {};
  return true;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
