// Shared setup of the browser tests: the server's URLs come from the
// environment (test/e2e/browser_test.go starts pushpull and sets them);
// Chromium is the system's (Debian package), driven by playwright-core.
import { chromium } from "playwright-core";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test ./test/e2e -run Browser`);
  return v;
}

export const SUB = need("PUSHPULL_SUB"); // http://127.0.0.1:port (sub routes and /demo/)
export const PUB = need("PUSHPULL_PUB"); // http://127.0.0.1:port/bitrix/pub/
export const KEY = process.env.PUSHPULL_KEY ?? "";
export const CLOSED_PORT = need("PUSHPULL_CLOSED_PORT"); // nothing listens there
export const ARTIFACTS = process.env.PUSHPULL_ARTIFACTS || join(dirname(fileURLToPath(import.meta.url)), "artifacts");
const CHROMIUM = process.env.PUSHPULL_CHROMIUM || "/usr/bin/chromium";

/** Bounds a hung wait; never a measure of speed. */
export const WAIT = 30_000;

export function newChannel() {
  return randomBytes(16).toString("hex");
}

/** The channel id as a client presents it: signed when the server has a key. */
export function signed(id) {
  return KEY ? `${id}.${createHmac("sha1", KEY).update(id).digest("hex")}` : id;
}

/** Publishes a command to channel ids as the backend does. */
export async function publish(ids, module_id, command, params = {}) {
  const body = JSON.stringify({ module_id, command, params, extra: { server_time_unix: Math.floor(Date.now() / 1000) } });
  const r = await fetch(`${PUB}?CHANNEL_ID=${[].concat(ids).join("/")}`, { method: "POST", body });
  if (r.status !== 200) throw new Error(`publish: HTTP ${r.status} ${await r.text()}`);
}

/** How many subscribers the server reports on channel id. */
export async function online(id) {
  const r = await fetch(`${PUB}?CHANNEL_ID=${id}`);
  const j = await r.json();
  return j.infos?.find((i) => i.channel === id)?.subscribers ?? 0;
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "pushpull-chromium-"));
  mkdirSync(ARTIFACTS, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the demo page without connecting and starts a client there with
 * opts (a JSON-able object; `fast: true` replaces the reconnect delays by
 * 50 ms so that five WebSocket failures do not take minutes). Events,
 * statuses and the URLs opened are collected in window.t.
 */
export async function startClient(page, opts) {
  await page.goto(`${SUB}/demo/`);
  await page.waitForFunction(() => window.pushpullDemo?.ready === true);
  await page.evaluate(async (opts) => {
    const { PullClient } = await import("/demo/client/index.js");
    const { fast, ...rest } = opts;
    const t = { events: [], statuses: [], urls: [] };
    window.t = t;
    const c = new PullClient({ ...rest, ...(fast ? { reconnectDelay: () => 50 } : {}), log: (l) => console.debug(l) });
    c.onStatus((s) => {
      t.statuses.push(s);
      if (s.url) t.urls.push(s.url);
    });
    c.onPullEvent((module, command, params, extra, ev) => t.events.push({ module, command, params, mid: ev.mid, source: ev.source }));
    t.client = c;
    await c.start();
  }, opts);
}

/** A protocol-3 config for signed channel ids, pointing at the server under test. */
export function configFor(privateId, { ws = SUB.replace(/^http/, "ws") + "/bitrix/subws/", end } = {}) {
  return {
    server: { version: 3, server_enabled: true, websocket_enabled: true, websocket: ws, long_polling: `${SUB}/bitrix/sub/` },
    api: { revision_web: 19 },
    channels: {
      private: {
        id: privateId,
        start: new Date().toISOString(),
        end: end ?? new Date(Date.now() + 12 * 3600e3).toISOString(),
        type: "private",
      },
    },
  };
}

export function waitStatus(page, status, transport) {
  return page.waitForFunction(
    ([status, transport]) => {
      const s = window.t.statuses.at(-1);
      return s && s.status === status && (!transport || s.transport === transport);
    },
    [status, transport],
    { timeout: WAIT },
  );
}

export function waitEvents(page, n) {
  return page.waitForFunction((n) => window.t.events.filter((e) => e.module !== "pull").length >= n, n, { timeout: WAIT });
}

export function events(page) {
  return page.evaluate(() => window.t.events.filter((e) => e.module !== "pull"));
}
