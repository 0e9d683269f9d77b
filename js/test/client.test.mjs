import { test } from "node:test";
import assert from "node:assert/strict";
import { PullClient } from "../dist/index.js";
import { FakeClock, fakeWebSocket, fakeFetch, config, envelope, mid, settle, CH } from "./fakes.mjs";

const EXPIRES = "Thu, 01 Jan 1973 11:11:01 GMT";

function setup(opts = {}) {
  const clock = new FakeClock();
  const ws = fakeWebSocket();
  const http = fakeFetch();
  const statuses = [];
  const events = [];
  const client = new PullClient({
    config: config(),
    timers: clock,
    random: () => 0,
    WebSocket: ws.WebSocket,
    fetch: http.fetch,
    networkEvents: null,
    ...opts,
  });
  client.onStatus((s) => statuses.push(s));
  client.onPullEvent((module, command, params, extra, ev) => events.push({ module, command, params, mid: ev.mid }));
  return { clock, ws, http, client, statuses, events, lastStatus: () => statuses[statuses.length - 1] };
}

test("connects by WebSocket first, with the channel and revision", async () => {
  const { ws, client, lastStatus } = setup();
  await client.start();
  assert.equal(ws.sockets.length, 1);
  assert.equal(ws.last().url, "ws://push.test/bitrix/subws/?CHANNEL_ID=" + encodeURIComponent(CH) + "&revision=19");
  assert.equal(lastStatus().status, "connecting");
  ws.last().open();
  assert.equal(lastStatus().status, "online");
  assert.equal(lastStatus().transport, "websocket");
});

test("subscribe by module and command, unsubscribe, catch-all", async () => {
  const { ws, client, events } = setup();
  const byCommand = [];
  const byModule = [];
  const off = client.subscribe("im", "message", (params, ev) => byCommand.push([params.n, ev.mid]));
  client.subscribe("im", (params, ev) => byModule.push(ev.command));
  await client.start();
  ws.last().open();
  ws.last().message(envelope(1) + envelope(2, "im", "typing"));
  off();
  ws.last().message(envelope(3) + envelope(4, "tasks", "add"));
  assert.deepEqual(byCommand, [[1, mid(1)]]);
  assert.deepEqual(byModule, ["message", "typing", "message"]);
  assert.deepEqual(events.map((e) => `${e.module}/${e.command}`), ["im/message", "im/typing", "im/message", "tasks/add"]);
});

test("a throwing subscriber does not stop the others", async () => {
  const { ws, client, events } = setup();
  client.subscribe("im", () => {
    throw new Error("boom");
  });
  await client.start();
  ws.last().open();
  ws.last().message(envelope(1));
  assert.equal(events.length, 1);
});

test("drops repeated ids and reconnects from the last mid", async () => {
  const { ws, clock, client, events } = setup();
  await client.start();
  ws.last().open();
  ws.last().message(envelope(1) + envelope(2));
  ws.last().message(envelope(2) + envelope(3));
  assert.deepEqual(events.map((e) => e.params.n), [1, 2, 3]);
  assert.equal(client.mid, mid(3));
  ws.last().end(1006);
  assert.deepEqual(clock.pending(), [100]);
  await clock.advance(100);
  assert.equal(ws.sockets.length, 2);
  assert.match(ws.last().url, new RegExp(`&mid=${mid(3)}&revision=19$`));
  ws.last().open();
  ws.last().message(envelope(3) + envelope(4));
  assert.deepEqual(events.map((e) => e.params.n), [1, 2, 3, 4]);
});

test("backoff: 100 ms, 15 s, 45 s, 45 s, 10 min ... 1 h, reset on success", async () => {
  // Only WebSocket, so that the errors do not switch to long polling.
  const { ws, clock, client, statuses } = setup({ transport: "websocket" });
  await client.start();
  ws.last().open();
  const delays = [];
  for (let i = 0; i < 12; i++) {
    ws.last().end(1006);
    const s = statuses[statuses.length - 1];
    assert.equal(s.status, "offline");
    delays.push(s.retryIn);
    assert.deepEqual(clock.pending(), [s.retryIn]);
    await clock.advance(s.retryIn - 1);
    assert.equal(ws.sockets.length, i + 1, "no attempt before the delay");
    await clock.advance(1);
    assert.equal(ws.sockets.length, i + 2);
  }
  assert.deepEqual(delays, [100, 15e3, 45e3, 45e3, 600e3, 600e3, 600e3, 600e3, 600e3, 600e3, 3600e3, 3600e3]);
  ws.last().open();
  ws.last().end(1006);
  assert.equal(statuses[statuses.length - 1].retryIn, 100, "success resets the count");
});

test("more than 4 WebSocket errors, never connected: long polling for good", async () => {
  const { ws, http, clock, client, lastStatus } = setup();
  await client.start();
  for (let i = 1; i <= 5; i++) {
    ws.last().end(1006);
    if (i < 5) await clock.advance(clock.pending()[0]);
  }
  assert.equal(ws.sockets.length, 5);
  assert.equal(client.transport, "longpolling");
  assert.equal(http.requests.length, 1);
  assert.equal(http.last().url, "http://push.test/bitrix/sub/?CHANNEL_ID=" + encodeURIComponent(CH) + "&revision=19");
  http.last().respond(200, envelope(1));
  await settle();
  assert.equal(lastStatus().status, "online");
  assert.equal(lastStatus().transport, "longpolling");
  assert.equal(http.requests.length, 2);
  assert.match(http.last().url, new RegExp(`&mid=${mid(1)}&`));
  // No WebSocket is tried again, however long it runs.
  assert.deepEqual(clock.pending(), [5_000, 60_000]);
  await clock.advance(3 * 3600e3);
  assert.equal(ws.sockets.length, 5);
});

test("more than 4 WebSocket errors after it had worked: long polling for 10-30 min", async () => {
  const { ws, http, clock, client } = setup();
  await client.start();
  ws.last().open();
  for (let i = 1; i <= 5; i++) {
    ws.last().end(i === 1 ? 1006 : 1008);
    if (i < 5) await clock.advance(clock.pending()[0]);
  }
  assert.equal(client.transport, "longpolling");
  http.last().respond(304, "", { Expires: EXPIRES, "Last-Message-Id": "" });
  await settle();
  // random() = 0: the restore probe comes after 10 min.
  assert.ok(clock.pending().includes(600_000), `pending ${clock.pending()}`);
  const before = ws.sockets.length;
  await clock.advance(600_000);
  assert.equal(ws.sockets.length, before + 1, "probe");
  const probe = ws.last();
  probe.open();
  assert.deepEqual(probe.closed?.code, 1000);
  assert.equal(client.transport, "websocket");
  assert.equal(ws.sockets.length, before + 2);
  ws.last().open();
  assert.equal(client.status, "online");
  assert.equal(http.open().length, 0, "long poll ended");
});

test("long polling: 304 with the exact Expires moves the mid; empty 200 keeps it; 60 s timeout re-polls", async () => {
  const { http, clock, client, lastStatus } = setup({ transport: "longpolling" });
  await client.start();
  http.last().respond(304, "", { Expires: EXPIRES, "Last-Message-Id": mid(7) });
  await settle();
  assert.equal(client.mid, mid(7));
  http.last().respond(304, "", { Expires: "Thu, 01 Jan 1970 00:00:00 GMT", "Last-Message-Id": mid(9) });
  await settle();
  assert.equal(client.mid, mid(7), "other Expires: header ignored");
  http.last().respond(200, "");
  await settle();
  assert.equal(client.mid, mid(7), "empty 200 keeps the position");
  assert.match(http.last().url, new RegExp(`mid=${mid(7)}`));
  const n = http.requests.length;
  await clock.advance(60_000);
  assert.equal(http.requests.length, n + 1, "abandoned after 60 s and sent again");
  assert.equal(lastStatus().status, "online");
  assert.equal(lastStatus().errors, 0);
  http.last().respond(502, "");
  await settle();
  assert.equal(lastStatus().status, "offline");
  assert.equal(lastStatus().retryIn, 100);
});

test("a held long poll counts as online after 5 s", async () => {
  const { http, clock, client } = setup({ transport: "longpolling" });
  await client.start();
  assert.equal(client.status, "connecting");
  await clock.advance(5_000);
  assert.equal(client.status, "online");
  assert.equal(http.requests.length, 1);
});

test("channel_expire with new_channel: reconnect at once on the new channel", async () => {
  const { ws, client } = setup();
  await client.start();
  ws.last().open();
  const next = { id: "ffffffffffffffffffffffffffffffff.sig2", start: "2026-01-01T00:00:00Z", end: "2026-01-03T00:00:00Z", type: "private" };
  ws.last().message(envelope(5, "pull", "channel_expire", { action: "reconnect", channel: { id: CH, type: "private" }, new_channel: next }));
  assert.equal(ws.sockets[0].closed?.code, 3000);
  assert.equal(ws.sockets.length, 2);
  assert.match(ws.last().url, new RegExp(`CHANNEL_ID=${encodeURIComponent(next.id)}&mid=${mid(5)}`));
});

test("channel_expire get_config: fetch a new config and reconnect", async () => {
  let calls = 0;
  const { ws, clock, client } = setup({
    config: async () => {
      calls++;
      const c = config();
      c.channels.private.id = calls === 1 ? CH : "22222222222222222222222222222222";
      return c;
    },
  });
  await client.start();
  ws.last().open();
  ws.last().message(envelope(1, "pull", "CHANNEL_EXPIRE", { action: "get_config" }));
  assert.ok(ws.sockets[0].closed, "disconnected at once");
  await clock.advance(0);
  assert.equal(calls, 2);
  assert.equal(ws.sockets.length, 2);
  assert.match(ws.last().url, /CHANNEL_ID=22222222222222222222222222222222&/);
});

for (const command of ["config_expire", "server_restart"]) {
  test(`${command}: disconnect, wait 10-120 s, fetch a new config, reconnect`, async () => {
    let calls = 0;
    const { ws, clock, client, lastStatus } = setup({
      random: () => 0.5,
      config: async () => (calls++, config()),
    });
    await client.start();
    ws.last().open();
    ws.last().message(envelope(1, "pull", command));
    assert.ok(ws.sockets[0].closed, "disconnected");
    assert.equal(lastStatus().status, "offline");
    assert.equal(lastStatus().retryIn, 65_000);
    await clock.advance(64_999);
    assert.equal(calls, 1);
    assert.equal(ws.sockets.length, 1);
    await clock.advance(1);
    assert.equal(calls, 2);
    assert.equal(ws.sockets.length, 2);
  });
}

test("close 4010 (wrong channel id): wait 5-35 s and fetch a new config", async () => {
  let calls = 0;
  const { ws, clock, client, lastStatus } = setup({ config: async () => (calls++, config()) });
  await client.start();
  ws.last().end(4010);
  assert.equal(lastStatus().retryIn, 5_000);
  await clock.advance(5_000);
  assert.equal(calls, 2);
});

test("channels are refreshed before they end", async () => {
  let calls = 0;
  const clock = new FakeClock(Date.parse("2026-01-01T23:00:00Z"));
  const { ws, client } = setup({
    timers: clock,
    config: async () => {
      calls++;
      const c = config();
      if (calls > 1) c.channels.private = { id: "33333333333333333333333333333333", end: "2026-01-05T00:00:00Z" };
      return c;
    },
  });
  await client.start();
  ws.last().open();
  // The channel ends at midnight: refreshed 5 min before.
  await clock.advance(55 * 60_000 - 1);
  assert.equal(calls, 1);
  await clock.advance(1);
  assert.equal(calls, 2);
  assert.equal(ws.sockets.length, 2);
  assert.match(ws.last().url, /CHANNEL_ID=33333333333333333333333333333333&/);
});

test("config from a URL, wrapped in result", async () => {
  const { http, ws, client } = setup({ config: undefined, configUrl: "http://backend.test/pushpull/config" });
  const started = client.start();
  await settle();
  assert.equal(http.last().url, "http://backend.test/pushpull/config");
  http.last().respond(200, JSON.stringify({ result: config() }));
  await started;
  assert.equal(ws.sockets.length, 1);
});

test("a failing config fetch is retried with backoff", async () => {
  const { http, ws, clock, client, lastStatus } = setup({ config: undefined, configUrl: "http://backend.test/c" });
  const started = client.start();
  await settle();
  http.last().respond(500, "");
  await started;
  assert.equal(lastStatus().status, "offline");
  assert.equal(lastStatus().retryIn, 100);
  await clock.advance(100);
  http.last().respond(200, JSON.stringify(config()));
  await settle();
  assert.equal(ws.sockets.length, 1);
});

test("network offline disconnects; online reconnects at once", async () => {
  const net = new EventTarget();
  const { ws, client, lastStatus } = setup({ networkEvents: net });
  await client.start();
  ws.last().open();
  ws.last().message(envelope(1));
  net.dispatchEvent(new Event("offline"));
  assert.ok(ws.sockets[0].closed);
  assert.equal(lastStatus().status, "offline");
  net.dispatchEvent(new Event("online"));
  await settle();
  assert.equal(ws.sockets.length, 2);
  assert.match(ws.last().url, new RegExp(`mid=${mid(1)}`));
});

test("stop ends everything", async () => {
  const { ws, clock, client } = setup();
  await client.start();
  ws.last().open();
  client.stop();
  assert.equal(client.status, "stopped");
  assert.ok(ws.last().closed);
  assert.deepEqual(clock.pending(), []);
});
