// @pushpull/client in headless Chromium against a real pushpull, in every
// protocol (3 text, 4 protobuf, 5 JSON-RPC) over WebSocket and long polling.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  WAIT, CLOSED_PORT, launch, newChannel, signed, pair, jwtFor, publish, online, restartServer,
  startClient, configFor, waitStatus, waitEvents, events, call,
} from "./harness.mjs";

let browser;
before(async () => {
  browser = await launch();
}, { timeout: 60_000 });
after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

async function newPage() {
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  return page;
}

const MODES = [
  { version: 3, transport: "websocket" },
  { version: 4, transport: "websocket" },
  { version: 5, transport: "websocket" },
  { version: 3, transport: "longpolling" },
  { version: 4, transport: "longpolling" },
  // Long polling with jsonRpc=true: the client reads JSON-RPC answers, and
  // the text answers of a server that gives those.
  { version: 5, transport: "longpolling" },
];
const FLAG = { 3: null, 4: "binaryMode=true", 5: "jsonRpc=true" };

function name({ version, transport }) {
  return `protocol ${version} over ${transport === "websocket" ? "WebSocket" : "long polling"}`;
}

function modeConfig({ version, transport }, privateId, more = {}) {
  return configFor(privateId, { version, websocket: transport === "websocket", ...more });
}

function until(what, fn) {
  return (async () => {
    const end = Date.now() + WAIT;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
}

function checkUrl(url, { version }) {
  const flag = FLAG[version];
  for (const f of Object.values(FLAG)) {
    if (f) assert.equal(url.includes(f), f === flag, `${url}: ${flag ?? "no mode flag"} expected`);
  }
}

for (const mode of MODES) {
  test(`${name(mode)}: two channels, each message once, resumed by mid after a network drop`, async () => {
    const page = await newPage();
    const a = newChannel();
    const b = newChannel();
    await startClient(page, { config: modeConfig(mode, signed(a), { shared: signed(b) }) });
    await waitStatus(page, "online", mode.transport);
    const first = await page.evaluate(() => window.t.urls[0]);
    checkUrl(first, mode);
    assert.equal(await page.evaluate(() => window.t.client.protocol), mode.version);

    await publish(a, "im", "message", { n: 1 });
    await publish(b, "im", "message", { n: 2 });
    await publish([a, b], "im", "message", { n: 3 }); // one mid on both channels: delivered once
    await waitEvents(page, 3);

    await page.context().setOffline(true);
    await waitStatus(page, "offline");
    if (mode.transport === "websocket") {
      // What is published now is missed live: only the resume brings it.
      await until("the server to see the subscriber go", async () => (await online(a)) === 0);
    }
    await publish(a, "im", "message", { n: 4 });
    await publish(b, "im", "message", { n: 5 });
    await page.context().setOffline(false);
    await waitEvents(page, 5);
    await publish([a, b], "im", "message", { n: 6 });
    await waitEvents(page, 6);

    const got = await events(page);
    assert.deepEqual(got.map((e) => e.params.n), [1, 2, 3, 4, 5, 6]);
    assert.ok(got.every((e) => e.source === mode.transport && /^\d{26}$/.test(e.mid)), JSON.stringify(got));
    // Protocols 4-5 name the sender; a text answer to a protocol-5 long
    // poll (what pushpull gives today) does not.
    for (const e of got) {
      if (mode.version >= 4 && (e.sender || mode.transport === "websocket" || mode.version === 4)) {
        assert.deepEqual(e.sender, { type: 2 }, "sender: the backend");
      }
    }
    const urls = await page.evaluate(() => window.t.urls);
    const resumed = urls.at(-1);
    checkUrl(resumed, mode);
    assert.match(resumed, new RegExp(`[?&]mid=${got[2].mid}&`), "reconnected from the last mid");
    await page.close();
  });
}

for (const version of [4, 5]) {
  test(`protocol ${version}: falls back to long polling in the same protocol when WebSocket is blocked`, async () => {
    const page = await newPage();
    const ch = newChannel();
    const ws = `ws://127.0.0.1:${CLOSED_PORT}/bitrix/subws/`;
    await startClient(page, { config: configFor(signed(ch), { version, ws }), fast: true });
    await waitStatus(page, "online", "longpolling");
    const urls = await page.evaluate(() => window.t.urls);
    assert.equal(urls.filter((u) => u.startsWith("ws")).length, 5, "more than 4 WebSocket errors switch to long polling");
    checkUrl(urls.at(-1), { version });
    await publish(ch, "im", "message", { n: 1 });
    await waitEvents(page, 1);
    const got = await events(page);
    assert.deepEqual(got.map((e) => [e.params.n, e.source]), [[1, "longpolling"]]);
    await page.close();
  });
}

test("every mode follows a server restart and resumes by mid", async () => {
  const pages = [];
  for (const mode of MODES) {
    const page = await newPage();
    const ch = newChannel();
    // Back 4 s after server_restart (instead of 10-120 s), retrying every
    // 300 ms while the server is still away.
    await startClient(page, { config: modeConfig(mode, signed(ch)), waits: { restart: [4000, 4000] }, retry: 300 });
    pages.push({ mode, page, ch });
  }
  for (const { mode, page, ch } of pages) {
    await waitStatus(page, "online", mode.transport);
    await publish(ch, "im", "message", { n: 1 });
    await waitEvents(page, 1);
  }
  await restartServer();
  // Published before the clients are back, as a rule: they get it by resuming.
  for (const { ch } of pages) await publish(ch, "im", "message", { n: 2 });
  for (const { mode, page } of pages) {
    await waitEvents(page, 2);
    const all = await page.evaluate(() => window.t.events);
    assert.ok(all.some((e) => e.module === "pull" && e.command === "server_restart"), `${name(mode)} got server_restart`);
    assert.deepEqual((await events(page)).map((e) => e.params.n), [1, 2], name(mode));
    const restartMid = all.find((e) => e.command === "server_restart").mid;
    const urls = await page.evaluate(() => window.t.urls);
    assert.ok(urls.length >= 2, `${name(mode)} reconnected`);
    assert.match(urls[1], new RegExp(`[?&]mid=${restartMid}&`), `${name(mode)} resumed after server_restart`);
    checkUrl(urls[1], mode);
    await page.close();
  }
});

test("protocol 5: a token connection, last seen, status subscriptions, ping", async () => {
  const a = pair();
  const userA = 500 + Math.floor(Math.random() * 1e6);
  const userC = userA + 1;
  const pageA = await newPage();
  const token = jwtFor({ sub: userA, chan: `${a.priv}:${a.pub}` });
  await startClient(pageA, { config: configFor(null, { version: 5, jwt: token }) });
  await waitStatus(pageA, "online", "websocket");
  const url = await pageA.evaluate(() => window.t.urls[0]);
  assert.match(url, /\?token=[^&]+&jsonRpc=true&revision=19$/, "token instead of CHANNEL_ID");
  await publish(a.priv, "im", "message", { n: 1 });
  await waitEvents(pageA, 1);

  assert.deepEqual(await call(pageA, "ping"), { ok: true });
  const seen = await call(pageA, "getUsersLastSeen", [userA, userC]);
  assert.deepEqual(seen, { ok: true, value: { [userA]: 0 } }, "online now: 0; never seen: left out");

  // A follows C's status; C comes and goes.
  await pageA.evaluate((u) => window.t.client.subscribeUserStatusChange(u, (s) => window.t.users.push(s)), userC);
  const pageC = await newPage();
  const c = newChannel();
  await startClient(pageC, { config: configFor(null, { version: 5, jwt: jwtFor({ sub: userC, chan: c }) }) });
  await waitStatus(pageC, "online", "websocket");
  await pageA.waitForFunction((u) => window.t.users.some((s) => s.userId === u && s.isOnline), userC, { timeout: WAIT });
  await pageC.evaluate(() => window.t.client.stop());
  await pageA.waitForFunction((u) => window.t.users.some((s) => s.userId === u && !s.isOnline), userC, { timeout: WAIT });
  assert.deepEqual(await pageA.evaluate(() => window.t.users), [
    { userId: userC, isOnline: true },
    { userId: userC, isOnline: false },
  ]);
  const later = await call(pageA, "getUsersLastSeen", [userC]);
  assert.ok(later.ok && typeof later.value[userC] === "number" && later.value[userC] >= 0, JSON.stringify(later));

  // The subscription is made again after a reconnect.
  await pageA.context().setOffline(true);
  await waitStatus(pageA, "offline");
  await pageA.context().setOffline(false);
  await waitStatus(pageA, "online", "websocket");
  // C comes and goes until A hears of it, which it does only once it has
  // subscribed again.
  await until("A to hear of C on its new connection", async () => {
    if ((await pageA.evaluate(() => window.t.users.length)) > 2) return true;
    await pageC.evaluate(async () => {
      window.t.client.stop();
      await window.t.client.start();
    });
    await waitStatus(pageC, "online", "websocket");
    return false;
  });
  await pageA.close();
  await pageC.close();
});

test("protocol 5: client publishes to a public channel and to a user, refusals", async () => {
  const a = pair();
  const b = pair();
  const userA = 2_000_000 + Math.floor(Math.random() * 1e6);
  const pageA = await newPage();
  const pageB = await newPage();
  await startClient(pageA, { config: configFor(null, { version: 5, jwt: jwtFor({ sub: userA, chan: `${a.priv}:${a.pub}` }) }) });
  // B connects with CHANNEL_ID (no token): it may publish to channels, not to users.
  await startClient(pageB, { config: configFor(b.id, { version: 5 }) });
  await waitStatus(pageA, "online", "websocket");
  await waitStatus(pageB, "online", "websocket");

  assert.deepEqual(await call(pageB, "sendMessageToChannels", [a.ref], "im", "hello", { n: 1 }), { ok: true });
  await waitEvents(pageA, 1);
  const [got] = await events(pageA);
  assert.deepEqual(got.params, { n: 1 });
  assert.deepEqual(got.sender, { type: 1, id: b.pub }, "sent by a client: B's public id");

  const bad = await call(pageB, "sendMessageToChannels", [`${a.pub}.${"0".repeat(40)}`], "im", "hello", {});
  assert.equal(bad.ok, false);
  assert.equal(bad.code, -32602, JSON.stringify(bad));
  const noToken = await call(pageB, "sendMessage", [userA], "im", "hello", {});
  assert.equal(noToken.ok, false);
  assert.match(noToken.error, /token/);

  // A (with a token) publishes to its own user and to B's public channel.
  assert.deepEqual(await call(pageA, "sendMessage", [userA], "im", "self", { n: 2 }), { ok: true });
  assert.deepEqual(await call(pageA, "sendMessageToChannels", [{ publicId: b.pub, signature: b.ref.split(".")[1] }], "im", "to b", { n: 3 }), { ok: true });
  await waitEvents(pageA, 2);
  await waitEvents(pageB, 1);
  assert.deepEqual((await events(pageA)).map((e) => e.params.n), [1, 2]);
  assert.deepEqual((await events(pageB)).map((e) => [e.params.n, e.sender.type, e.sender.id]), [[3, 1, a.pub]]);
  // Neither connection was dropped for it.
  assert.equal(await pageA.evaluate(() => window.t.urls.length), 1);
  assert.equal(await pageB.evaluate(() => window.t.urls.length), 1);
  await pageA.close();
  await pageB.close();
});

test("protocol 4: client publishes over WebSocket (binary) and over long polling (POST)", async () => {
  const a = pair();
  const b = pair();
  const pageA = await newPage();
  const pageB = await newPage();
  await startClient(pageA, { config: configFor(a.id, { version: 4 }) });
  await startClient(pageB, { config: configFor(b.id, { version: 4, websocket: false }) });
  await waitStatus(pageA, "online", "websocket");
  await waitStatus(pageB, "online", "longpolling");

  assert.deepEqual(await call(pageA, "sendMessageToChannels", [b.ref, a.ref], "im", "ws", { n: 1 }), { ok: true });
  assert.deepEqual(await call(pageB, "sendMessageToChannels", [a.ref], "im", "lp", { n: 2 }), { ok: true });
  await waitEvents(pageA, 2);
  await waitEvents(pageB, 1);
  const gotA = await events(pageA);
  assert.deepEqual(gotA.map((e) => e.params.n).sort(), [1, 2], "the sender receives its own publish too");
  assert.deepEqual(gotA.find((e) => e.params.n === 2).sender, { type: 1, id: b.pub });
  assert.deepEqual((await events(pageB)).map((e) => [e.params.n, e.source, e.sender.id]), [[1, "longpolling", a.pub]]);

  const bad = await call(pageB, "sendMessageToChannels", [`${a.pub}.${"0".repeat(40)}`], "im", "lp", {});
  assert.equal(bad.ok, false);
  assert.match(bad.error, /HTTP 400 4021/, "refused as the original does: 400, 4021 (bad signature)");
  // Over WebSocket a refused publish closes the connection (4021, bad
  // signature); the client connects again and goes on receiving.
  assert.deepEqual(await call(pageA, "sendMessageToChannels", [`${b.pub}.${"0".repeat(40)}`], "im", "ws", {}), { ok: true });
  await pageA.waitForFunction(() => window.t.urls.length === 2, null, { timeout: WAIT });
  await waitStatus(pageA, "online", "websocket");
  await publish(a.priv, "im", "message", { n: 3 });
  await waitEvents(pageA, 3);
  assert.deepEqual((await events(pageA)).map((e) => e.params.n).sort(), [1, 2, 3]);
  assert.equal((await events(pageB)).length, 1, "nothing of the refused publish arrived");
  await pageA.close();
  await pageB.close();
});
