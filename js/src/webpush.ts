// Web Push in the page: subscribe through a service worker and hand the
// subscription to the application, which registers it with pushpull's
// backend API (push/subscribe). The page never holds the backend key: it
// gets the VAPID public key from the application (push/key) and gives
// the subscription back to it.

/** PushSubscription.toJSON(): what push/subscribe takes as `subscription`. */
export interface WebPushSubscription {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}

export interface WebPushOptions {
  /** The VAPID public key, base64url, as push/key answers it. */
  applicationServerKey: string;
  /**
   * The service worker: a registration, or the URL of a script to register
   * (as a module; default "sw.js", the client's dist/sw.js, which shows the
   * notifications).
   */
  serviceWorker?: ServiceWorkerRegistration | string;
  /** The scope to register the script with (default: the browser's). */
  scope?: string;
  /** Hands the subscription to the application (which calls push/subscribe). */
  register: (subscription: WebPushSubscription) => Promise<void> | void;
}

/** Reports whether this browser can receive Web Push notifications. */
export function webPushSupported(): boolean {
  return typeof navigator !== "undefined" && "serviceWorker" in navigator && typeof PushManager !== "undefined" && typeof Notification !== "undefined";
}

/** Decodes base64url (padded or not) to bytes. */
export function base64UrlToBytes(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

async function registration(o: { serviceWorker?: ServiceWorkerRegistration | string; scope?: string }): Promise<ServiceWorkerRegistration> {
  if (o.serviceWorker && typeof o.serviceWorker !== "string") return o.serviceWorker;
  const reg = await navigator.serviceWorker.register(o.serviceWorker ?? "sw.js", {
    type: "module",
    ...(o.scope ? { scope: o.scope } : {}),
  });
  // Pushes reach an activated worker only.
  const sw = reg.installing ?? reg.waiting ?? reg.active;
  if (sw && sw.state !== "activated") {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (sw.state === "activated") resolve();
        if (sw.state === "redundant") reject(new Error("the service worker failed to install"));
      };
      sw.addEventListener("statechange", check);
      check();
    });
  }
  return reg;
}

/**
 * Subscribes this browser to Web Push with the application's key (asking
 * for the notification permission if need be), hands the subscription to
 * o.register, and returns it. A subscription already there with the same
 * key is handed over again (registering is idempotent); one with another
 * key is replaced.
 */
export async function subscribeWebPush(o: WebPushOptions): Promise<WebPushSubscription> {
  if (!webPushSupported()) throw new Error("this browser has no Web Push (service workers, PushManager, Notification)");
  if (Notification.permission !== "granted" && (await Notification.requestPermission()) !== "granted") {
    throw new Error("notifications are not permitted");
  }
  const reg = await registration(o);
  const key = base64UrlToBytes(o.applicationServerKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const json = sub.toJSON() as WebPushSubscription;
  if (!json.endpoint || !json.keys?.p256dh || !json.keys?.auth) throw new Error("the push service gave a subscription without keys");
  await o.register(json);
  return json;
}

/**
 * Ends this browser's subscription, after handing its endpoint to
 * unregister (which calls push/unsubscribe). Resolves to false when there
 * was none.
 */
export async function unsubscribeWebPush(o: {
  serviceWorker?: ServiceWorkerRegistration | string;
  scope?: string;
  unregister: (endpoint: string) => Promise<void> | void;
}): Promise<boolean> {
  const reg = await registration(o);
  const sub = await reg.pushManager.getSubscription();
  if (!sub) return false;
  await o.unregister(sub.endpoint);
  return sub.unsubscribe();
}
