// Protocols 4 (protobuf) and 5 (JSON-RPC) on fake timers, WebSocket and fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PullClient, connectionUrl, RpcError, tokenExpiry, PING_TIMEOUT } from "../dist/index.js";
import {
  FakeClock, fakeWebSocket, fakeFetch, config, envelope, mid, settle, CH,
  responseBatch, readRequestBatch, rpcMessage,
} from "./fakes.mjs";

const PUB = "fedcba9876543210fedcba9876543210";
const SIG = "00112233445566778899aabbccddeeff00112233";

function setup(version, { server = {}, top = {}, ...opts } = {}) {
  const clock = new FakeClock();
  const ws = fakeWebSocket();
  const http = fakeFetch();
  const statuses = [];
  const events = [];
  const client = new PullClient({
    config: config({ server: { version, ...server }, top }),
    timers: clock,
    random: () => 0,
    WebSocket: ws.WebSocket,
    fetch: http.fetch,
    networkEvents: null,
    ...opts,
  });
  client.onStatus((s) => statuses.push(s));
  client.onPullEvent((module, command, params, extra, ev) => events.push({ module, command, params, extra, mid: ev.mid, sender: ev.sender, source: ev.source }));
  return { clock, ws, http, client, statuses, events, lastStatus: () => statuses[statuses.length - 1] };
}

/** The JSON frames the client sent on socket s, parsed. */
function rpcSent(s) {
  return s.sent.filter((d) => typeof d === "string" && d.startsWith("{")).map((d) => JSON.parse(d));
}

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.c2ln`;
}

// URLs -------------------------------------------------------------------

test("the mode follows server.version: 3 text, 4 binaryMode, 5 jsonRpc; token instead of CHANNEL_ID", () => {
  const ch = "CHANNEL_ID=" + encodeURIComponent(CH);
  const url = (server, top = {}, o = {}) => connectionUrl(config({ server, top }), "websocket", o);
  assert.equal(url({ version: 3 }), `ws://push.test/bitrix/subws/?${ch}&revision=19`);
  assert.equal(url({ version: 3 }, {}, { format: "json" }), `ws://push.test/bitrix/subws/?${ch}&format=json&revision=19`);
  assert.equal(url({ version: 2 }), `ws://push.test/bitrix/subws/?${ch}&revision=19`);
  assert.equal(url({ version: 4 }, {}, { format: "json", mid: mid(7) }), `ws://push.test/bitrix/subws/?${ch}&binaryMode=true&mid=${mid(7)}&revision=19`);
  assert.equal(url({ version: "4" }), `ws://push.test/bitrix/subws/?${ch}&binaryMode=true&revision=19`);
  assert.equal(url({ version: 5 }), `ws://push.test/bitrix/subws/?${ch}&jsonRpc=true&revision=19`);
  assert.equal(url({ version: 6 }), `ws://push.test/bitrix/subws/?${ch}&jsonRpc=true&revision=19`);
  // The stock clients send the token whenever the config has one.
  assert.equal(url({ version: 5, mode: "shared" }, { jwt: "a.b.c", clientId: "cid" }), "ws://push.test/bitrix/subws/?token=a.b.c&jsonRpc=true&clientId=cid&revision=19");
});

test("protocols 4-5 keep the rules: backoff, fallback to long polling in the same protocol, 304 and resume", async () => {
  const EXPIRES = "Thu, 01 Jan 1973 11:11:01 GMT";
  for (const [version, flag] of [[4, "binaryMode=true"], [5, "jsonRpc=true"]]) {
    const { ws, http, clock, client, lastStatus, events } = setup(version);
    await client.start();
    ws.last().open();
    ws.last().message(version === 4 ? responseBatch([{ n: 1 }]) : JSON.stringify(rpcMessage(1)));
    const delays = [];
    for (let i = 1; i <= 5; i++) {
      ws.last().end(1006);
      if (i < 5) {
        delays.push(lastStatus().retryIn);
        await clock.advance(clock.pending()[0]);
      }
    }
    assert.deepEqual(delays, [100, 15e3, 45e3, 45e3], `protocol ${version}`);
    assert.equal(client.transport, "longpolling");
    assert.match(http.last().url, new RegExp(`\\?CHANNEL_ID=[^&]+&${flag}&mid=${mid(1)}&revision=19$`));
    http.last().respond(304, "", { Expires: EXPIRES, "Last-Message-Id": mid(5) });
    await settle();
    assert.equal(lastStatus().status, "online");
    assert.match(http.last().url, new RegExp(`&${flag}&mid=${mid(5)}&`));
    const body = version === 4 ? responseBatch([{ n: 5 }, { n: 6 }]) : JSON.stringify([rpcMessage(5), rpcMessage(6)]);
    http.last().respond(200, body);
    await settle();
    assert.equal(client.mid, mid(6));
    // random() = 0: WebSocket is tried again after 10 min, beside the long poll.
    await clock.advance(600_000);
    const probe = ws.last();
    assert.match(probe.url, new RegExp(`&${flag}&mid=${mid(6)}&`));
    probe.open();
    assert.equal(client.transport, "websocket");
    ws.last().open();
    ws.last().message(version === 4 ? responseBatch([{ n: 6 }, { n: 7 }]) : JSON.stringify([rpcMessage(6), rpcMessage(7)]));
    assert.equal(client.mid, mid(7));
    assert.deepEqual(events.map((e) => e.params.n), [1, 5, 6, 7], "each once");
    client.stop();
  }
});

// Protocol 4 ---------------------------------------------------------------

test("protocol 4: binary frames are delivered with their mid and sender, once", async () => {
  const { ws, clock, client, events } = setup(4);
  await client.start();
  assert.equal(client.protocol, 4);
  assert.match(ws.last().url, /&binaryMode=true&revision=19$/);
  assert.equal(ws.last().binaryType, "arraybuffer");
  ws.last().open();
  const frame = responseBatch([{ n: 1 }, { n: 2, senderType: 1, senderId: PUB }]);
  ws.last().message(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength));
  ws.last().message(responseBatch([{ n: 2 }, { n: 3 }]));
  assert.deepEqual(events.map((e) => e.params.n), [1, 2, 3]);
  assert.deepEqual(events.map((e) => e.mid), [mid(1), mid(2), mid(3)]);
  assert.deepEqual(events[0].sender, { type: 2 });
  assert.deepEqual(events[1].extra.sender, { type: 1, id: PUB }, "extra.sender as the stock clients set it");
  assert.equal(client.mid, mid(3));
  // A text frame (a server that answers text) is read too; garbage is skipped.
  ws.last().message(envelope(4));
  ws.last().message(new Uint8Array([0x0a, 0xff, 0xff]));
  ws.last().message(responseBatch([{ n: 5, body: "not json" }, { n: 6 }]));
  assert.deepEqual(events.map((e) => e.params.n), [1, 2, 3, 4, 6]);
  ws.last().end(1006);
  await clock.advance(100);
  assert.match(ws.last().url, new RegExp(`&binaryMode=true&mid=${mid(6)}&revision=19$`), "resumes by mid");
});

test("protocols 4-5: pull commands published by a client are delivered but not obeyed", async () => {
  for (const version of [4, 5]) {
    const { ws, client, events, lastStatus } = setup(version);
    await client.start();
    ws.last().open();
    const params = { action: "get_config" };
    if (version === 4) ws.last().message(responseBatch([{ n: 1, module: "pull", command: "channel_expire", params, senderType: 1, senderId: PUB }]));
    else ws.last().message(JSON.stringify(rpcMessage(1, "pull", "channel_expire", params, { sender: { type: 1, id: PUB } })));
    assert.equal(events.length, 1);
    assert.equal(ws.sockets.length, 1);
    assert.equal(lastStatus().status, "online");
    // From the backend it is obeyed.
    if (version === 4) ws.last().message(responseBatch([{ n: 2, module: "pull", command: "channel_expire", params }]));
    else ws.last().message(JSON.stringify(rpcMessage(2, "pull", "channel_expire", params)));
    assert.equal(lastStatus().status, "offline");
    assert.equal(ws.last().closed.code, 1000);
    client.stop();
  }
});

test("protocol 4 over long polling: protobuf answers, text answers, empty and broken ones", async () => {
  const { http, client, events } = setup(4, { server: { websocket_enabled: false } });
  await client.start();
  assert.match(http.last().url, /\?CHANNEL_ID=[^&]+&binaryMode=true&revision=19$/);
  http.last().respond(200, responseBatch([{ n: 1 }, { n: 2 }]), { "Content-Type": "application/octet-stream" });
  await settle();
  assert.deepEqual(events.map((e) => [e.params.n, e.source]), [[1, "longpolling"], [2, "longpolling"]]);
  assert.match(http.last().url, new RegExp(`&binaryMode=true&mid=${mid(2)}&revision=19$`));
  http.last().respond(200, envelope(3));
  await settle();
  http.last().respond(200, new Uint8Array());
  await settle();
  http.last().respond(200, new Uint8Array([0x0a, 0x05, 0x0a]));
  await settle();
  assert.deepEqual(events.map((e) => e.params.n), [1, 2, 3]);
  assert.match(http.last().url, new RegExp(`&mid=${mid(3)}&`), "an empty or broken answer keeps the mid");
  assert.equal(client.status, "online");
});

test("protocol 4: publish to public channels over WebSocket as a RequestBatch", async () => {
  const { ws, client } = setup(4, { server: { publish_enabled: true } });
  await client.start();
  await assert.rejects(client.sendMessageToChannels([`${PUB}.${SIG}`], "im", "x"), /not connected by WebSocket, and the config has no publish URL/);
  ws.last().open();
  await client.sendMessageToChannels([`${PUB}.${SIG}`, { publicId: PUB.toUpperCase(), signature: "" }], "im", "typing", { n: 1 }, 60);
  const sent = ws.last().sent.at(-1);
  assert.ok(sent instanceof Uint8Array);
  assert.deepEqual(readRequestBatch(sent), [
    {
      // An empty signature (a server without a key) is not written.
      receivers: [{ id: PUB, signature: SIG }, { id: PUB }],
      body: JSON.stringify({ module_id: "im", command: "typing", params: { n: 1 } }),
      expiry: 60,
    },
  ]);
  await assert.rejects(client.sendMessageToChannels(["xyz.00"], "im", "x"), /not a hex id/);
  await assert.rejects(client.sendMessageToChannels([], "im", "x"), /no receivers/);
  await assert.rejects(client.getUsersLastSeen([1]), /needs protocol 5/);
});

test("protocol 4: publishing needs publish_enabled; users through publicChannels; long polling POSTs to server.publish", async () => {
  const off = setup(4);
  await off.client.start();
  off.ws.last().open();
  await assert.rejects(off.client.sendMessageToChannels([`${PUB}.${SIG}`], "im", "x"), /publish_enabled/);

  const { http, client } = setup(4, {
    server: { websocket_enabled: false, publish_enabled: true, publish: "http://push.test/bitrix/rest/" },
    top: { publicChannels: { 42: { user_id: 42, public_id: PUB, signature: SIG } } },
  });
  await client.start();
  const poll = http.last();
  await assert.rejects(client.sendMessage([43], "im", "x"), /no public channel of user 43/);
  const done = client.sendMessage([42], "im", "hello", { a: 1 });
  await settle();
  const post = http.last();
  assert.notEqual(post, poll);
  assert.equal(post.url, "http://push.test/bitrix/rest/?CHANNEL_ID=" + encodeURIComponent(CH));
  assert.equal(post.init.method, "POST");
  assert.equal(post.init.headers, undefined, "no headers: no CORS preflight");
  assert.deepEqual(readRequestBatch(post.init.body)[0].receivers, [{ id: PUB, signature: SIG }]);
  post.respond(200, "");
  await done;
  const refused = client.sendMessage([42], "im", "hello");
  await settle();
  http.last().respond(403, "bad channel signature");
  await assert.rejects(refused, /HTTP 403 bad channel signature/);
});

// Protocol 5 ---------------------------------------------------------------

test("protocol 5: incoming.message notifications, single and batched, merged params, mack, answers", async () => {
  const { ws, client, events } = setup(5);
  await client.start();
  assert.match(ws.last().url, /&jsonRpc=true&revision=19$/);
  ws.last().open();
  const s = ws.last();
  s.message(JSON.stringify(rpcMessage(1)));
  s.message(JSON.stringify([rpcMessage(2, "im", "message", { n: 2, a: 1 }, { user_params: { a: 2, u: true }, dictionary: { d: 1 } }), rpcMessage(1)]));
  assert.deepEqual(events.map((e) => e.params), [{ n: 1 }, { n: 2, a: 2, u: true, d: 1 }]);
  assert.deepEqual(events[0].extra.sender, { type: 2 });
  assert.deepEqual(s.sent, [`mack:${mid(1)}`, `mack:${mid(2)}`, `mack:${mid(1)}`]);
  // Calls with an id are answered: incoming.message with {}, others "method not found".
  s.sent.length = 0;
  s.message(JSON.stringify({ ...rpcMessage(3), id: 7 }));
  s.message(JSON.stringify([{ jsonrpc: "2.0", method: "nope", id: 8 }, { jsonrpc: "2.0", method: "nope" }]));
  s.message(JSON.stringify({ jsonrpc: "2.0", id: 99, result: true })); // nobody asked
  s.message("{broken");
  assert.deepEqual(s.sent, [
    `mack:${mid(3)}`,
    JSON.stringify({ jsonrpc: "2.0", id: 7, result: {} }),
    JSON.stringify([{ jsonrpc: "2.0", id: 8, error: { code: -32601, message: "Method not found" } }]),
  ]);
  assert.equal(events.length, 3);
  assert.equal(client.mid, mid(3));
});

test("protocol 5: ping is answered with pong; 20 s without one closes with 3005 and reconnects", async () => {
  const { ws, clock, client, lastStatus } = setup(5);
  await client.start();
  ws.last().open();
  const s = ws.last();
  s.message("ping");
  assert.deepEqual(s.sent, ["pong"]);
  await clock.advance(PING_TIMEOUT - 1000);
  s.message("ping");
  await clock.advance(PING_TIMEOUT - 1000);
  assert.equal(s.closed, null, "each ping restarts the wait");
  await clock.advance(1000);
  assert.equal(s.closed.code, 3005);
  assert.equal(lastStatus().status, "offline");
  assert.equal(lastStatus().retryIn, 100);
  assert.equal(lastStatus().websocketErrors, 0, "a stuck connection is not a blocked WebSocket");
  await clock.advance(100);
  assert.equal(ws.sockets.length, 2);
});

test("protocol 5: requests get their answers; errors, timeouts and disconnects reject", async () => {
  const { ws, clock, client } = setup(5);
  await client.start();
  await assert.rejects(client.ping(), /not connected by WebSocket/);
  ws.last().open();
  const s = ws.last();
  const seen = client.getUsersLastSeen([1, 2, 3]);
  const pinged = client.ping();
  const [a, b] = rpcSent(s);
  assert.deepEqual(a, { jsonrpc: "2.0", method: "getUsersLastSeen", params: { userList: [1, 2, 3] }, id: 1 });
  assert.deepEqual(b, { jsonrpc: "2.0", method: "ping", params: {}, id: 2 });
  s.message(JSON.stringify([{ jsonrpc: "2.0", id: 2, result: "pong" }, { jsonrpc: "2.0", id: 1, result: { 1: 0, 3: 120 } }]));
  assert.deepEqual(await seen, { 1: 0, 3: 120 });
  await pinged;

  const refused = client.sendMessageToChannels(["bad.sig"], "im", "x");
  const [p] = rpcSent(s).slice(-1);
  assert.deepEqual(p.params, { channelList: ["bad.sig"], body: { module_id: "im", command: "x", params: {} } });
  s.message(JSON.stringify({ jsonrpc: "2.0", id: p.id, error: { code: -32602, message: "bad channel signature" } }));
  await assert.rejects(refused, (err) => err instanceof RpcError && err.code === -32602 && /bad channel signature/.test(err.message));

  const slow = assert.rejects(client.ping(), /ping: no answer/);
  await clock.advance(4_999);
  const late = client.sendMessage([5], "im", "hi", {}, 30);
  assert.deepEqual(rpcSent(s).at(-1).params, { userList: [5], body: { module_id: "im", command: "hi", params: {} }, expiry: 30 });
  await clock.advance(1);
  await slow;
  s.end(1006);
  await assert.rejects(late, /connection closed/);
});

test("protocol 5: status subscriptions are made, reported, made again after a reconnect, and ended", async () => {
  const { ws, clock, client } = setup(5);
  const got = [];
  const h = (st) => got.push(st);
  await client.start();
  await client.subscribeUserStatusChange(9, h); // not connected: made on connect
  ws.last().open();
  let s = ws.last();
  assert.deepEqual(rpcSent(s).map((r) => [r.method, r.params]), [["subscribeStatusChange", { userId: 9 }]]);
  s.message(JSON.stringify({ jsonrpc: "2.0", id: rpcSent(s)[0].id, result: {} }));
  const second = client.subscribeUserStatusChange(10, h);
  s.message(JSON.stringify({ jsonrpc: "2.0", id: rpcSent(s)[1].id, result: {} }));
  await second;
  s.message(JSON.stringify(rpcMessage(1, "online", "userStatusChange", { user_id: 9, online: true })));
  s.message(JSON.stringify(rpcMessage(2, "online", "userStatusChange", { user_id: 10, online: false })));
  s.message(JSON.stringify(rpcMessage(3, "online", "userStatusChange", { user_id: 11, online: true })));
  // Another client cannot fake a status change.
  s.message(JSON.stringify(rpcMessage(4, "online", "userStatusChange", { user_id: 9, online: false }, { sender: { type: 1, id: PUB } })));
  assert.deepEqual(got, [{ userId: 9, isOnline: true }, { userId: 10, isOnline: false }]);

  s.end(1006);
  await clock.advance(100);
  ws.last().open();
  s = ws.last();
  assert.deepEqual(rpcSent(s).map((r) => r.params.userId).sort((a, b) => a - b), [9, 10], "made again on the new connection");
  const ended = client.unsubscribeUserStatusChange(9, h);
  assert.deepEqual(rpcSent(s).at(-1).method, "unsubscribeStatusChange");
  s.message(JSON.stringify({ jsonrpc: "2.0", id: rpcSent(s).at(-1).id, result: {} }));
  await ended;
  s.message(JSON.stringify(rpcMessage(5, "online", "userStatusChange", { user_id: 9, online: false })));
  assert.equal(got.length, 2);
  // A refused subscription is not kept.
  const refused = client.subscribeUserStatusChange(12, h);
  s.message(JSON.stringify({ jsonrpc: "2.0", id: rpcSent(s).at(-1).id, error: { code: -32602, message: "no" } }));
  await assert.rejects(refused, RpcError);
  s.end(1006);
  await clock.advance(100);
  ws.last().open();
  assert.deepEqual(rpcSent(ws.last()).map((r) => r.params.userId), [10]);
});

test("protocol 5 over long polling: JSON-RPC answers and text answers, resumed by mid; no requests", async () => {
  const { http, client, events } = setup(5, { server: { websocket_enabled: false } });
  await client.start();
  assert.match(http.last().url, /&jsonRpc=true&revision=19$/);
  http.last().respond(200, JSON.stringify([rpcMessage(1), rpcMessage(2, "im", "message", { n: 2 }, { dictionary: { d: 1 } })]));
  await settle();
  assert.match(http.last().url, new RegExp(`&jsonRpc=true&mid=${mid(2)}&revision=19$`));
  // Today's pushpull answers a JSON-RPC long poll in text.
  http.last().respond(200, envelope(2) + envelope(3));
  await settle();
  http.last().respond(200, JSON.stringify(rpcMessage(4)));
  await settle();
  assert.deepEqual(events.map((e) => e.params), [{ n: 1 }, { n: 2, d: 1 }, { n: 3 }, { n: 4 }]);
  assert.match(http.last().url, new RegExp(`&mid=${mid(4)}&`));
  await assert.rejects(client.ping(), /not connected by WebSocket/);
  assert.equal(http.requests.filter((r) => r.init.method === "POST").length, 0);
});

test("protocol 5 with a token: fetches the next config before the token expires; channel_expire refetches", async () => {
  const clock = new FakeClock();
  const ws = fakeWebSocket();
  let n = 0;
  const exp = clock.now() / 1000 + 3600;
  const client = new PullClient({
    config: async () => {
      n++;
      const c = config({ server: { version: 5 }, top: { jwt: jwt({ exp, n }) } });
      c.channels = {};
      return c;
    },
    timers: clock,
    random: () => 0,
    WebSocket: ws.WebSocket,
    networkEvents: null,
  });
  assert.equal(tokenExpiry(jwt({ exp })), exp * 1000);
  assert.equal(tokenExpiry("x"), null);
  await client.start();
  ws.last().open();
  assert.match(ws.last().url, /\?token=[^&]+&jsonRpc=true&revision=19$/);
  assert.ok(clock.pending().includes(3600_000 - 5 * 60_000), `refresh 5 min before exp: ${clock.pending()}`);
  await clock.advance(3600_000 - 5 * 60_000);
  assert.equal(n, 2);
  assert.equal(ws.sockets.length, 2, "the new token is used at once");
  ws.last().open();
  const params = { action: "reconnect", channel: { type: "private" }, new_channel: { id: "abc", type: "private" } };
  ws.last().message(JSON.stringify(rpcMessage(1, "pull", "channel_expire", params)));
  await clock.advance(0);
  assert.equal(n, 3, "a token names the channels: a new config, not a swapped channel");
  assert.equal(client.currentConfig.channels.private, undefined);
  client.stop();
});
