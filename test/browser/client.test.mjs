// @pushpull/client in headless Chromium against a real pushpull.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  SUB, PUB, CLOSED_PORT, ARTIFACTS, WAIT, launch, newChannel, signed, publish, online,
  startClient, configFor, waitStatus, waitEvents, events,
} from "./harness.mjs";

let browser;
// Hooks are bounded like the tests (node --test-timeout covers tests only),
// so a Chromium that will not start or stop fails the run instead of
// stalling it.
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

test("receives over WebSocket, in order, once", async () => {
  const page = await newPage();
  const ch = newChannel();
  await startClient(page, { config: configFor(signed(ch)) });
  await waitStatus(page, "online", "websocket");
  for (let n = 1; n <= 3; n++) await publish(ch, "im", "message", { n });
  await waitEvents(page, 3);
  const got = await events(page);
  assert.deepEqual(got.map((e) => e.params.n), [1, 2, 3]);
  assert.ok(got.every((e) => e.source === "websocket" && /^\d{26}$/.test(e.mid)));
  await page.close();
});

test("falls back to long polling when WebSocket is blocked, and still receives", async () => {
  const page = await newPage();
  const ch = newChannel();
  // Nothing listens on the WebSocket URL: every attempt fails (close 1006).
  const ws = `ws://127.0.0.1:${CLOSED_PORT}/bitrix/subws/`;
  await startClient(page, { config: configFor(signed(ch), { ws }), fast: true });
  await waitStatus(page, "online", "longpolling");
  const tried = await page.evaluate(() => window.t.urls.filter((u) => u.startsWith("ws")).length);
  assert.equal(tried, 5, "more than 4 WebSocket errors switch to long polling");
  await publish(ch, "im", "message", { n: 1 });
  await waitEvents(page, 1);
  const got = await events(page);
  assert.equal(got[0].source, "longpolling");
  assert.equal(got[0].params.n, 1);
  // WebSocket never worked: no further attempt.
  await publish(ch, "im", "message", { n: 2 });
  await waitEvents(page, 2);
  assert.equal(await page.evaluate(() => window.t.urls.filter((u) => u.startsWith("ws")).length), 5);
  await page.close();
});

test("recovers missed messages after a network drop, once each", async () => {
  const page = await newPage();
  const ch = newChannel();
  await startClient(page, { config: configFor(signed(ch)) });
  await waitStatus(page, "online", "websocket");
  await publish(ch, "im", "message", { n: 1 });
  await waitEvents(page, 1);

  await page.context().setOffline(true);
  await waitStatus(page, "offline");
  // The server sees the subscriber go; what is published meanwhile is missed.
  for (let i = 0; i < 300 && (await online(ch)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await online(ch), 0, "the dropped connection is gone on the server");
  await publish(ch, "im", "message", { n: 2 });
  await publish(ch, "im", "message", { n: 3 });
  await page.context().setOffline(false);

  await waitEvents(page, 3);
  await publish(ch, "im", "message", { n: 4 });
  await waitEvents(page, 4);
  const got = await events(page);
  assert.deepEqual(got.map((e) => e.params.n), [1, 2, 3, 4]);
  const urls = await page.evaluate(() => window.t.urls);
  assert.match(urls.at(-1), new RegExp(`[?&]mid=${got[0].mid}&`), "reconnected from the last mid");
  await page.close();
});

test("follows channel_expire to the new channel", async () => {
  const page = await newPage();
  const a = newChannel();
  const b = newChannel();
  await startClient(page, { config: configFor(signed(a)) });
  await waitStatus(page, "online", "websocket");
  const end = new Date(Date.now() + 12 * 3600e3).toISOString();
  await publish(a, "pull", "channel_expire", {
    action: "reconnect",
    channel: { id: a, type: "private" },
    new_channel: { id: signed(b), start: new Date().toISOString(), end, type: "private" },
  });
  await page.waitForFunction((b) => window.t.urls.some((u) => u.includes(b)), b, { timeout: WAIT });
  await waitStatus(page, "online", "websocket");
  await publish(b, "im", "message", { n: 1 });
  await waitEvents(page, 1);
  assert.equal((await events(page))[0].params.n, 1);
  assert.equal(await online(a), 0, "the old channel is left");
  await page.close();
});

test("channel_expire get_config: fetches a new config from the config URL", async () => {
  const page = await newPage();
  const a = newChannel();
  const b = newChannel();
  let served = 0;
  // The application's config endpoint, answered here.
  await page.route(`${SUB}/app/pull-config`, (route) => {
    served++;
    route.fulfill({ contentType: "application/json", body: JSON.stringify({ result: configFor(signed(served === 1 ? a : b)) }) });
  });
  await startClient(page, { configUrl: `${SUB}/app/pull-config` });
  await waitStatus(page, "online", "websocket");
  await publish(a, "pull", "channel_expire", { action: "get_config" });
  await page.waitForFunction((b) => window.t.urls.some((u) => u.includes(b)), b, { timeout: WAIT });
  await waitStatus(page, "online", "websocket");
  assert.equal(served, 2);
  await publish(b, "im", "message", { n: 7 });
  await waitEvents(page, 1);
  assert.equal((await events(page))[0].params.n, 7);
  await page.close();
});

test("demo page: messages arrive live, the page publishes, screenshot", async () => {
  const page = await newPage();
  const ch = newChannel();
  await page.goto(`${SUB}/demo/?channel=${encodeURIComponent(signed(ch))}`);
  await page.waitForFunction(() => document.getElementById("status").dataset.status === "online", null, { timeout: WAIT });
  assert.equal(await page.inputValue("#puburl"), PUB, "the page found the publish route on the other port");
  await publish(ch, "im", "message", { text: "from the backend" });
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 1, null, { timeout: WAIT });
  await page.fill("#text", "from the page");
  await page.click("#publish button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 2, null, { timeout: WAIT });
  assert.equal(await page.textContent("#pubresult"), "published");
  const texts = await page.$$eval("#messages li pre", (els) => els.map((e) => JSON.parse(e.textContent).text));
  assert.deepEqual(texts, ["from the page", "from the backend"]);

  const file = join(ARTIFACTS, "demo.png");
  await page.screenshot({ path: file });
  const png = readFileSync(file);
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  assert.equal(png.readUInt32BE(16), 1000, "width");
  assert.equal(png.readUInt32BE(20), 800, "height");
  assert.ok(png.length > 20_000, `a page with content, not a blank image (${png.length} bytes)`);
  await page.close();
});

test("config from the backend API (/pushpull/config), publish to the user", async () => {
  const backend = process.env.PUSHPULL_BACKEND; // http://127.0.0.1:port/pushpull/
  const bearer = { Authorization: `Bearer ${process.env.PUSHPULL_BACKEND_KEY}`, "Content-Type": "application/json" };
  assert.ok(backend, "PUSHPULL_BACKEND is not set");
  const page = await newPage();
  // The application's own endpoint asks pushpull's backend API for this
  // user's config (the backend key never reaches the browser).
  await page.route(`${SUB}/app/pull-config`, async (route) => {
    const r = await fetch(`${backend}config`, { method: "POST", headers: bearer, body: JSON.stringify({ userId: 42 }) });
    await route.fulfill({ status: r.status, contentType: "application/json", body: await r.text() });
  });
  await startClient(page, { configUrl: `${SUB}/app/pull-config` });
  await waitStatus(page, "online", "websocket");
  const r = await fetch(`${backend}publish`, {
    method: "POST",
    headers: bearer,
    body: JSON.stringify({ users: [42], message: { module_id: "im", command: "message", params: { n: 42 } } }),
  });
  assert.equal(r.status, 200, await r.text());
  await waitEvents(page, 1);
  assert.equal((await events(page))[0].params.n, 42);
  await page.close();
});
