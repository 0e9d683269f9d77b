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
export const CONTROL = need("PUSHPULL_CONTROL"); // POST /restart restarts the server
export const ARTIFACTS = process.env.PUSHPULL_ARTIFACTS || join(dirname(fileURLToPath(import.meta.url)), "artifacts");
const CHROMIUM = process.env.PUSHPULL_CHROMIUM || "/usr/bin/chromium";

/** Bounds a hung wait; never a measure of speed. */
export const WAIT = 30_000;

export function newChannel() {
  return randomBytes(16).toString("hex");
}

function sign(value) {
  return createHmac("sha1", KEY).update(value).digest("hex");
}

/** The channel id as a client presents it: signed when the server has a key. */
export function signed(id) {
  return KEY ? `${id}.${sign(id)}` : id;
}

/**
 * A private channel with a public id, as protocols 4-5 have them: `id` the
 * signed pair a client connects with, `ref` the signed public channel
 * others publish to.
 */
export function pair() {
  const priv = newChannel();
  const pub = newChannel();
  return { priv, pub, id: signed(`${priv}:${pub}`), ref: `${pub}.${sign("public:" + pub)}` };
}

/** A protocol-5 token (HS256 with the server's key) for user sub and channels chan. */
export function jwtFor({ sub, chan }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "browser-tests", iat: now, exp: now + 3600, chan: [].concat(chan).join(",") };
  if (sub !== undefined) claims.sub = String(sub);
  const unsigned = `${b64({ typ: "JWT", alg: "HS256" })}.${b64(claims)}`;
  return `${unsigned}.${createHmac("sha256", KEY).update(unsigned).digest("base64url")}`;
}

/** Restarts the server (SIGTERM, then the same config and ports); resolves once it listens again. */
export async function restartServer() {
  const r = await fetch(`${CONTROL}/restart`, { method: "POST" });
  if (r.status !== 204) throw new Error(`restart: HTTP ${r.status}`);
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
    const { fast, retry, ...rest } = opts;
    const t = { events: [], statuses: [], urls: [], users: [] };
    window.t = t;
    const delay = fast ? 50 : retry;
    const c = new PullClient({ ...rest, ...(delay ? { reconnectDelay: () => delay } : {}), log: (l) => console.debug(l) });
    c.onStatus((s) => {
      t.statuses.push(s);
      if (s.url) t.urls.push(s.url);
    });
    c.onPullEvent((module, command, params, extra, ev) =>
      t.events.push({ module, command, params, mid: ev.mid, source: ev.source, sender: ev.sender ?? null }),
    );
    t.client = c;
    await c.start();
  }, opts);
}

/**
 * A config for signed channel ids (privateId, and shared when given; none
 * with only a jwt), pointing at the server under test: protocol version
 * (default 3), WebSocket unless websocket is false, client publishes
 * enabled from version 4.
 */
export function configFor(
  privateId,
  { ws = SUB.replace(/^http/, "ws") + "/bitrix/subws/", end, version = 3, websocket = true, shared, jwt } = {},
) {
  const channel = (id, type) => ({
    id,
    start: new Date().toISOString(),
    end: end ?? new Date(Date.now() + 12 * 3600e3).toISOString(),
    type,
  });
  const channels = {};
  if (privateId) channels.private = channel(privateId, "private");
  if (shared) channels.shared = channel(shared, "shared");
  return {
    server: {
      version,
      server_enabled: true,
      websocket_enabled: websocket,
      websocket: ws,
      long_polling: `${SUB}/bitrix/sub/`,
      publish: `${SUB}/bitrix/rest/`,
      publish_enabled: version >= 4,
    },
    api: { revision_web: 19 },
    channels,
    ...(jwt ? { jwt } : {}),
  };
}

/** Calls the page's client: t.client[method](...args), its result or its error message. */
export function call(page, method, ...args) {
  return page.evaluate(
    async ([method, args]) => {
      try {
        const value = await window.t.client[method](...args);
        return value === undefined ? { ok: true } : { ok: true, value };
      } catch (err) {
        return { ok: false, error: String(err?.message ?? err), code: err?.code };
      }
    },
    [method, args],
  );
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
