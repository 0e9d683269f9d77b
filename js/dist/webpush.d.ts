/** PushSubscription.toJSON(): what push/subscribe takes as `subscription`. */
export interface WebPushSubscription {
    endpoint: string;
    expirationTime?: number | null;
    keys: {
        p256dh: string;
        auth: string;
    };
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
export declare function webPushSupported(): boolean;
/** Decodes base64url (padded or not) to bytes. */
export declare function base64UrlToBytes(s: string): Uint8Array<ArrayBuffer>;
/**
 * Subscribes this browser to Web Push with the application's key (asking
 * for the notification permission if need be), hands the subscription to
 * o.register, and returns it. A subscription already there with the same
 * key is handed over again (registering is idempotent); one with another
 * key is replaced.
 */
export declare function subscribeWebPush(o: WebPushOptions): Promise<WebPushSubscription>;
/**
 * Ends this browser's subscription, after handing its endpoint to
 * unregister (which calls push/unsubscribe). Resolves to false when there
 * was none.
 */
export declare function unsubscribeWebPush(o: {
    serviceWorker?: ServiceWorkerRegistration | string;
    scope?: string;
    unregister: (endpoint: string) => Promise<void> | void;
}): Promise<boolean>;
