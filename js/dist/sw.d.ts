/** What pushpull sends (docs/webpush.md): the push event's JSON data. */
export interface PushPayload {
    message?: string;
    tag?: string;
    subTag?: string;
    badge?: number;
    params?: unknown;
    advancedParams?: {
        senderName?: string;
        notificationsToCancel?: string[];
        [k: string]: unknown;
    };
    sound?: string;
    appId?: string;
    important?: boolean;
    silent?: boolean;
    time?: number;
}
/** The title and options of the notification a payload shows. */
export declare function notificationOf(p: PushPayload): {
    title: string;
    options: NotificationOptions & Record<string, unknown>;
};
interface Registration {
    showNotification(title: string, options?: NotificationOptions): Promise<void>;
    getNotifications(filter?: {
        tag?: string;
    }): Promise<Notification[]>;
}
interface WorkerScope {
    registration: Registration;
    navigator: {
        setAppBadge?: (n: number) => Promise<void>;
    };
    clients: {
        matchAll(o: object): Promise<{
            url: string;
            focus(): Promise<unknown>;
            postMessage(m: unknown): void;
        }[]>;
        openWindow(url: string): Promise<unknown>;
    };
    addEventListener(type: string, listener: (event: any) => void): void;
}
/** The message open pages get once a notification is shown. */
export declare const SHOWN = "pushpull:notification";
/**
 * Shows the notification of payload p: closes those its
 * notificationsToCancel names, then shows it (replacing one with its
 * tag), sets the badge, and tells the pages of the scope
 * ({type: SHOWN, payload}), so that an open page can update itself.
 */
export declare function showPush(scope: WorkerScope, p: PushPayload): Promise<void>;
/** Installs the push and notificationclick handlers in scope. */
export declare function installPushHandlers(scope: WorkerScope): void;
export {};
