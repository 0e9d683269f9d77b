// The service worker of pushpull's Web Push: register dist/sw.js as a
// module worker (subscribeWebPush does) and it shows each notification
// pushpull sends. An application with a worker of its own imports
// notificationOf and showPush from it instead.

/** What pushpull sends (docs/webpush.md): the push event's JSON data. */
export interface PushPayload {
  message?: string;
  tag?: string;
  subTag?: string;
  badge?: number;
  params?: unknown;
  advancedParams?: { senderName?: string; notificationsToCancel?: string[]; [k: string]: unknown };
  sound?: string;
  appId?: string;
  important?: boolean;
  silent?: boolean;
  time?: number;
}

/** The title and options of the notification a payload shows. */
export function notificationOf(p: PushPayload): { title: string; options: NotificationOptions & Record<string, unknown> } {
  const title = p.advancedParams?.senderName || p.message || "New notification";
  const body = p.advancedParams?.senderName ? p.message ?? "" : "";
  return {
    title,
    options: {
      body,
      tag: p.tag || undefined,
      silent: !!p.silent,
      requireInteraction: !!p.important,
      timestamp: p.time ? p.time * 1000 : undefined,
      data: p,
    },
  };
}

// The parts of the service worker scope used here (the DOM library has no
// ServiceWorkerGlobalScope).
interface Registration {
  showNotification(title: string, options?: NotificationOptions): Promise<void>;
  getNotifications(filter?: { tag?: string }): Promise<Notification[]>;
}
interface WorkerScope {
  registration: Registration;
  navigator: { setAppBadge?: (n: number) => Promise<void> };
  clients: {
    matchAll(o: object): Promise<{ url: string; focus(): Promise<unknown>; postMessage(m: unknown): void }[]>;
    openWindow(url: string): Promise<unknown>;
  };
  addEventListener(type: string, listener: (event: any) => void): void;
}

/** The message open pages get once a notification is shown. */
export const SHOWN = "pushpull:notification";

/**
 * Shows the notification of payload p: closes those its
 * notificationsToCancel names, then shows it (replacing one with its
 * tag), sets the badge, and tells the pages of the scope
 * ({type: SHOWN, payload}), so that an open page can update itself.
 */
export async function showPush(scope: WorkerScope, p: PushPayload): Promise<void> {
  for (const tag of p.advancedParams?.notificationsToCancel ?? []) {
    for (const n of await scope.registration.getNotifications({ tag })) n.close();
  }
  if (typeof p.badge === "number" && scope.navigator.setAppBadge) await scope.navigator.setAppBadge(p.badge).catch(() => {});
  const { title, options } = notificationOf(p);
  await scope.registration.showNotification(title, options);
  for (const c of await scope.clients.matchAll({ type: "window", includeUncontrolled: true })) c.postMessage({ type: SHOWN, payload: p });
}

function readPayload(data: { json(): unknown; text(): string } | null): PushPayload {
  if (!data) return {};
  try {
    const v = data.json();
    return v && typeof v === "object" ? (v as PushPayload) : { message: String(v) };
  } catch {
    return { message: data.text() };
  }
}

/** Installs the push and notificationclick handlers in scope. */
export function installPushHandlers(scope: WorkerScope): void {
  scope.addEventListener("push", (event) => {
    event.waitUntil(showPush(scope, readPayload(event.data)));
  });
  scope.addEventListener("notificationclick", (event) => {
    event.notification.close();
    event.waitUntil(
      scope.clients.matchAll({ type: "window", includeUncontrolled: true }).then((list) => list[0]?.focus()),
    );
  });
}

declare const self: unknown;
// Loaded as the worker itself: handle the events.
if (typeof self === "object" && self !== null && "registration" in self) installPushHandlers(self as WorkerScope);
