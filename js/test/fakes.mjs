// Fakes for the unit tests: a clock whose time moves only when told, a
// WebSocket and a fetch the test answers by hand.

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
      this.onopen = this.onclose = this.onmessage = null;
      sockets.push(this);
    }
    close(code, reason) {
      this.closed = { code, reason };
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
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: { get: (k) => h.get(k.toLowerCase()) ?? null },
            text: async () => body,
            json: async () => JSON.parse(body),
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
