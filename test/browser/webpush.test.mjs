// Web Push in headless Chromium: the page helper subscribes through the
// client's service worker and hands the subscription to the application,
// which registers it with the backend API; a push message delivered
// through the DevTools protocol (ServiceWorker.deliverPushMessage) is
// shown by the service worker, as its registration's getNotifications
// tells (asked in the worker). Chromium's own push service is out of reach here (it is Google's),
// so PushManager.subscribe answers with a subscription made in the test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createECDH, randomBytes } from "node:crypto";
import { SUB, WAIT, launch } from "./harness.mjs";

const BACKEND = process.env.PUSHPULL_BACKEND; // http://127.0.0.1:port/pushpull/
const BEARER = { Authorization: `Bearer ${process.env.PUSHPULL_BACKEND_KEY}`, "Content-Type": "application/json" };

async function backend(call, body) {
  const r = await fetch(BACKEND + call, { method: "POST", headers: BEARER, body: JSON.stringify(body) });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`${call}: HTTP ${r.status} ${JSON.stringify(j)}`);
  return j;
}

let browser;
before(async () => {
  browser = await launch();
  await browser.context.grantPermissions(["notifications"], { origin: SUB });
}, { timeout: 60_000 });
after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

test("subscribes through the service worker, registers with the backend, shows a delivered push", async () => {
  assert.ok(BACKEND, "PUSHPULL_BACKEND is not set");
  const { publicKey } = await backend("push/key", {});
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const made = {
    endpoint: `https://push.example.invalid/send/${randomBytes(8).toString("hex")}`,
    keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: randomBytes(16).toString("base64url") },
  };
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  await page.goto(`${SUB}/demo/`);
  // What the service worker tells the page once it showed a notification.
  await page.evaluate(() => {
    window.told = [];
    navigator.serviceWorker.addEventListener("message", (e) => window.told.push(e.data));
    navigator.serviceWorker.startMessages();
  });
  const cdp = await browser.context.newCDPSession(page);
  const registrations = [];
  const versions = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
  cdp.on("ServiceWorker.workerVersionUpdated", (e) => versions.push(...e.versions));
  await cdp.send("ServiceWorker.enable");

  // The page subscribes and hands the subscription to "the application",
  // here the test, which registers it for user 42.
  const handed = await page.evaluate(async ({ publicKey, made }) => {
    const asked = {};
    PushManager.prototype.getSubscription = async () => null;
    PushManager.prototype.subscribe = async function (options) {
      asked.userVisibleOnly = options.userVisibleOnly;
      asked.key = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)))
        .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      return { options, toJSON: () => ({ ...made, expirationTime: null }) };
    };
    const { subscribeWebPush } = await import("/demo/client/index.js");
    let registered;
    const sub = await subscribeWebPush({
      applicationServerKey: publicKey,
      serviceWorker: "/demo/client/sw.js",
      scope: "/demo/",
      register: (s) => { registered = s; },
    });
    return { asked, registered, sub };
  }, { publicKey, made });
  assert.equal(handed.asked.key, publicKey, "subscribed with the application's VAPID key");
  assert.equal(handed.asked.userVisibleOnly, true);
  assert.equal(handed.registered.endpoint, made.endpoint);
  const { id } = await backend("push/subscribe", { userId: 42, appId: "web", subscription: handed.registered });
  assert.match(id, /^[0-9a-f]{32}$/);

  // DevTools delivers to a registration whose worker it knows activated.
  const deadline = Date.now() + WAIT;
  let reg;
  const ready = () => {
    reg = registrations.find((r) => r.scopeURL === `${SUB}/demo/` && !r.isDeleted);
    return reg && versions.some((v) => v.registrationId === reg.registrationId && v.status === "activated" && v.runningStatus === "running");
  };
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`no running worker for ${SUB}/demo/: ${JSON.stringify({ registrations, versions })}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const deliver = (payload) =>
    cdp.send("ServiceWorker.deliverPushMessage", { origin: SUB, registrationId: reg.registrationId, data: JSON.stringify(payload) });
  // The notifications shown, as the service worker's registration has them.
  const worker = browser.context.serviceWorkers().find((w) => w.url() === `${SUB}/demo/client/sw.js`);
  assert.ok(worker, "the service worker runs");
  const shown = () =>
    worker.evaluate(async () =>
      (await self.registration.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })),
    );
  const waitTold = (n) =>
    page.waitForFunction((n) => window.told.filter((m) => m.type === "pushpull:notification").length >= n, n, { timeout: WAIT });

  // The payload pushpull sends (docs/webpush.md).
  await deliver({ message: "hi there", tag: "IM_MESS_1", advancedParams: { senderName: "Ann" }, params: { chat: 7 }, time: 1796000000 });
  await waitTold(1);
  let list = await shown();
  assert.equal(list.length, 1, JSON.stringify(list));
  assert.deepEqual(
    { title: list[0].title, body: list[0].body, tag: list[0].tag, chat: list[0].data.params.chat },
    { title: "Ann", body: "hi there", tag: "IM_MESS_1", chat: 7 },
  );
  // A later one cancels it through notificationsToCancel.
  await deliver({ message: "read elsewhere", tag: "IM_MESS_2", advancedParams: { notificationsToCancel: ["IM_MESS_1"] } });
  await waitTold(2);
  list = await shown();
  assert.deepEqual(list.map((n) => [n.tag, n.title]), [["IM_MESS_2", "read elsewhere"]]);
  await page.close();
});
