// Fakes for the unit tests: a clock whose time moves only when told, a
// WebSocket and a fetch the test answers by hand, and frames of each
// protocol.
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

export class FakeClock {
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.seq = 0;
    this.timers = new Map();
  }
  setTimeout = (fn, ms) => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn, id });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  now = () => this.t;
  /** The delays of the pending timers, soonest first. */
  pending() {
    return [...this.timers.values()].sort((a, b) => a.at - b.at || a.id - b.id).map((x) => x.at - this.t);
  }
  /** Moves time forward by ms, running each timer that falls due. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = [...this.timers.values()].sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next || next.at > end) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise callbacks run. */
export async function settle() {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

export function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.closed = null;
      this.sent = [];
      this.binaryType = "blob";
      this.onopen = this.onclose = this.onmessage = null;
      sockets.push(this);
    }
    close(code, reason) {
      this.closed = { code, reason };
    }
    send(data) {
      if (this.closed) throw new Error("closed");
      this.sent.push(data);
    }
    /** The server accepts the connection. */
    open() {
      this.onopen?.({});
    }
    message(data) {
      this.onmessage?.({ data });
    }
    /** The connection ends with code (1006: it broke or never opened). */
    end(code = 1006, reason = "") {
      this.onclose?.({ code, reason });
    }
  }
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

export function fakeFetch() {
  const requests = [];
  const fetch = (url, init = {}) =>
    new Promise((resolve, reject) => {
      const req = {
        url: String(url),
        init,
        done: false,
        respond(status, body = "", headers = {}) {
          req.done = true;
          const h = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
          const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
          const text = typeof body === "string" ? body : new TextDecoder().decode(body);
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: { get: (k) => h.get(k.toLowerCase()) ?? null },
            text: async () => text,
            json: async () => JSON.parse(text),
            arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
          });
        },
        fail(err = new TypeError("Failed to fetch")) {
          req.done = true;
          reject(err);
        },
      };
      init.signal?.addEventListener("abort", () => {
        if (!req.done) req.fail(Object.assign(new Error("aborted"), { name: "AbortError" }));
      });
      requests.push(req);
    });
  return { fetch, requests, last: () => requests[requests.length - 1], open: () => requests.filter((r) => !r.done) };
}

export const CH = "0123456789abcdef0123456789abcdef.sig";

export function config(extra = {}) {
  return {
    server: {
      version: 3,
      server_enabled: true,
      websocket_enabled: true,
      websocket: "ws://push.test/bitrix/subws/",
      long_polling: "http://push.test/bitrix/sub/",
      ...extra.server,
    },
    api: { revision_web: 19 },
    channels: { private: { id: CH, start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z", type: "private" } },
    ...extra.top,
  };
}

let counter = 0;
/** A 26-digit mid: a fixed start time and the counter n. */
export function mid(n) {
  return "1767225600" + String(n).padStart(16, "0");
}

export function envelope(n, module = "im", command = "message", params = { n }) {
  counter++;
  return (
    "#!NGINXNMS!#" +
    JSON.stringify({
      id: n,
      mid: mid(n),
      channel: CH.split(".")[0],
      tag: "1",
      time: "Thu, 01 Jan 2026 00:00:00 GMT",
      text: { module_id: module, command, params, extra: {} },
    }) +
    "#!NGINXNME!#"
  );
}

/** A protocol-4 ResponseBatch frame holding messages {n, module, command, params, senderType, senderId}. */
export function responseBatch(list) {
  const w = new BinaryWriter();
  w.uint32(10).fork(); // responses[0]
  w.uint32(10).fork(); // .outgoingMessages
  for (const m of list) {
    const body = m.body ?? JSON.stringify({ module_id: m.module ?? "im", command: m.command ?? "message", params: m.params ?? { n: m.n }, extra: {} });
    w.uint32(10).fork(); // messages[]
    w.uint32(10).bytes(hexBytes(mid(m.n)));
    w.uint32(18).string(body);
    w.uint32(24).uint32(86400);
    w.uint32(37).fixed32(1767225600);
    w.uint32(42).fork();
    w.uint32(8).int32(m.senderType ?? 2);
    if (m.senderId) w.uint32(18).bytes(hexBytes(m.senderId));
    w.join();
    w.join();
  }
  w.join();
  w.join();
  return w.finish();
}

/** Reads a client's RequestBatch: [{receivers: [{id, signature, isPrivate}], body, expiry}]. */
export function readRequestBatch(bytes) {
  const out = [];
  const fields = (b, fn) => {
    const r = new BinaryReader(b);
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      fn(no, wt, r);
    }
  };
  fields(bytes, (no, wt, r) => {
    if (no !== 1) return r.skip(wt);
    fields(r.bytes(), (no, wt, r) => {
      if (no !== 1) return r.skip(wt);
      fields(r.bytes(), (no, wt, r) => {
        if (no !== 1) return r.skip(wt);
        const m = { receivers: [], body: undefined, expiry: undefined };
        fields(r.bytes(), (no, wt, r) => {
          if (no === 1) {
            const rc = {};
            fields(r.bytes(), (no, wt, r) => {
              if (no === 1) rc.id = hex(r.bytes());
              else if (no === 2) rc.isPrivate = r.bool();
              else if (no === 3) rc.signature = hex(r.bytes());
              else r.skip(wt);
            });
            m.receivers.push(rc);
          } else if (no === 3) m.body = r.string();
          else if (no === 4) m.expiry = r.uint32();
          else r.skip(wt);
        });
        out.push(m);
      });
    });
  });
  return out;
}

function hexBytes(s) {
  return Uint8Array.from(s.match(/../g), (x) => parseInt(x, 16));
}

function hex(b) {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** A protocol-5 incoming.message notification object for message n. */
export function rpcMessage(n, module = "im", command = "message", params = { n }, more = {}) {
  return {
    jsonrpc: "2.0",
    method: "incoming.message",
    params: { mid: mid(n), body: { module_id: module, command, params, extra: {} }, sender: { type: 2 }, expiry: 86400, created: 1767225600, ...more },
  };
}
