// Protocol 5: JSON-RPC 2.0 frames.
import { isMessage, isObject, parseFrame, type Envelope } from "./parse.js";

/** The notification that carries a message to the client. */
export const INCOMING_MESSAGE = "incoming.message";

/** A JSON-RPC error as the server answers it. */
export class RpcError extends Error {
  readonly code: number;
  readonly data?: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    if (data !== undefined) this.data = data;
  }
}

/** What one item of a JSON-RPC frame is. */
export type RpcItem =
  /** incoming.message: a message (`id` when the server wants an answer). */
  | { kind: "message"; envelope: Envelope | null; id?: RpcId }
  /** Another method called by the server. */
  | { kind: "call"; method: string; id?: RpcId }
  /** The answer to one of the client's requests. */
  | { kind: "response"; id: RpcId; result?: unknown; error?: RpcError }
  /** A protocol-3 envelope object (a server that answers text). */
  | { kind: "envelope"; envelope: Envelope };

export type RpcId = number | string | null;

/**
 * Reads a protocol-5 frame or long-polling answer: one JSON-RPC object or
 * an array of them. Text envelopes (`#!NGINXNMS!#...`), or envelope objects
 * inside the JSON, are read as protocol 3: a server that answers a
 * JSON-RPC long poll in text is understood too. Items that are none of
 * these are skipped.
 */
export function parseRpcFrame(data: string): { items: RpcItem[]; batch: boolean } {
  const t = data.trimStart();
  if (!t.startsWith("[") && !t.startsWith("{")) {
    return { items: parseFrame(data).map((envelope) => ({ kind: "envelope", envelope })), batch: false };
  }
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { items: [], batch: false };
  }
  const batch = Array.isArray(v);
  const items: RpcItem[] = [];
  for (const x of batch ? (v as unknown[]) : [v]) {
    const item = rpcItem(x);
    if (item) items.push(item);
  }
  return { items, batch };
}

function rpcItem(x: unknown): RpcItem | null {
  if (!isObject(x)) return null;
  const id = rpcId(x.id);
  if (typeof x.method === "string") {
    const withId = "id" in x && id !== undefined ? { id } : {};
    if (x.method !== INCOMING_MESSAGE) return { kind: "call", method: x.method, ...withId };
    return { kind: "message", envelope: incomingEnvelope(x.params), ...withId };
  }
  if (id !== undefined && id !== null && ("result" in x || "error" in x)) {
    if ("error" in x) {
      const e = isObject(x.error) ? x.error : {};
      const code = typeof e.code === "number" ? e.code : 0;
      const msg = typeof e.message === "string" ? e.message : "JSON-RPC error";
      return { kind: "response", id, error: new RpcError(code, msg, e.data) };
    }
    return { kind: "response", id, result: x.result };
  }
  if ("text" in x) {
    // An envelope object, as format=json writes them.
    const [envelope] = parseFrame(JSON.stringify([x]));
    if (envelope) return { kind: "envelope", envelope };
  }
  return null;
}

function rpcId(v: unknown): RpcId | undefined {
  if (typeof v === "number" || typeof v === "string" || v === null) return v;
  return undefined;
}

/**
 * The message of an incoming.message notification: `body` (an object) with
 * `user_params` and then `dictionary` merged into its params, as the stock
 * clients do, and `sender` copied to `extra.sender`.
 */
export function incomingEnvelope(p: unknown): Envelope | null {
  if (!isObject(p)) return null;
  let body = p.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      return null;
    }
  }
  if (!isMessage(body)) return null;
  for (const extra of [p.user_params, p.dictionary]) {
    if (isObject(extra)) Object.assign(body.params, extra);
  }
  const e: Envelope = { text: body };
  if (typeof p.mid === "string" && p.mid !== "") e.mid = p.mid;
  if (isObject(p.sender) && typeof p.sender.type === "number") {
    e.sender = { type: p.sender.type };
    if (typeof p.sender.id === "string" && p.sender.id !== "") e.sender.id = p.sender.id;
  }
  return e;
}

/** A request of the client. */
export function request(method: string, params: unknown, id: number): string {
  return JSON.stringify({ jsonrpc: "2.0", method, params, id });
}

/** The client's answer to a call of the server that carried an id. */
export function answer(id: RpcId, result: unknown, error?: { code: number; message: string }): Record<string, unknown> {
  return error ? { jsonrpc: "2.0", id, error } : { jsonrpc: "2.0", id, result };
}

/** JSON-RPC's "method not found". */
export const METHOD_NOT_FOUND = { code: -32601, message: "Method not found" };
