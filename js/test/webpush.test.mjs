// The Web Push service worker's handling of pushpull's payloads, with a
// fake worker scope, and the key decoding of the page helper.
import { test } from "node:test";
import assert from "node:assert/strict";
import { notificationOf, showPush, installPushHandlers } from "../dist/sw.js";
import { base64UrlToBytes } from "../dist/index.js";

function fakeScope() {
  const shown = [];
  const scope = {
    badge: undefined,
    handlers: {},
    registration: {
      async showNotification(title, options) {
        for (const n of shown) if (options.tag && n.options.tag === options.tag) n.closed = true;
        shown.push({ title, options, closed: false, close() { this.closed = true; } });
      },
      async getNotifications({ tag } = {}) {
        return shown.filter((n) => !n.closed && (!tag || n.options.tag === tag));
      },
    },
    navigator: { async setAppBadge(n) { scope.badge = n; } },
    told: [],
    clients: { async matchAll() { return [{ url: "/", focus: async () => {}, postMessage: (m) => scope.told.push(m) }]; }, async openWindow() {} },
    addEventListener(type, f) { scope.handlers[type] = f; },
  };
  return { scope, shown };
}

test("a payload's notification: sender as the title, the message as the body, the tag, silence", () => {
  const { title, options } = notificationOf({ message: "hi", tag: "im:1", advancedParams: { senderName: "Ann" }, silent: true, time: 10 });
  assert.equal(title, "Ann");
  assert.equal(options.body, "hi");
  assert.equal(options.tag, "im:1");
  assert.equal(options.silent, true);
  assert.equal(options.timestamp, 10000);
  assert.equal(notificationOf({ message: "plain" }).title, "plain");
});

test("showPush closes the notifications to cancel, sets the badge, shows", async () => {
  const { scope, shown } = fakeScope();
  await showPush(scope, { message: "a", tag: "t1" });
  await showPush(scope, { message: "b", tag: "t2", badge: 4, advancedParams: { notificationsToCancel: ["t1"] } });
  assert.deepEqual(shown.map((n) => [n.title, n.closed]), [["a", true], ["b", false]]);
  assert.equal(scope.badge, 4);
  assert.deepEqual(scope.told.map((m) => [m.type, m.payload.message]), [["pushpull:notification", "a"], ["pushpull:notification", "b"]]);
});

test("the push handler reads JSON, or text", async () => {
  const { scope, shown } = fakeScope();
  installPushHandlers(scope);
  const waits = [];
  const event = (data) => ({ data, waitUntil: (p) => waits.push(p) });
  scope.handlers.push(event({ json: () => ({ message: "json" }), text: () => "" }));
  scope.handlers.push(event({ json: () => { throw new SyntaxError("x"); }, text: () => "text" }));
  await Promise.all(waits);
  assert.deepEqual(shown.map((n) => n.title), ["json", "text"]);
});

test("base64url keys decode, padded or not", () => {
  assert.deepEqual([...base64UrlToBytes("AQID_-8")], [1, 2, 3, 255, 239]);
  assert.deepEqual([...base64UrlToBytes("AQID_-8=")], [1, 2, 3, 255, 239]);
});
