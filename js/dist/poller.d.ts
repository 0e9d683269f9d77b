import type { PullMessage } from "./types.js";
import { type Timers } from "./timers.js";
/** A message the backend poll returns; `mid` lets the client drop repeats. */
export interface PolledMessage extends PullMessage {
    mid?: string;
}
/**
 * Asks the application's backend for the messages of this user, for when no
 * push server can be reached (the Bitrix module's own fallback: its pages
 * poll the site). `lastMid` is the newest message id the client has seen.
 */
export type BackendPoll = (ctx: {
    lastMid: string | null;
}) => Promise<PolledMessage[] | void>;
/** Delays of the backend poll schedule, in milliseconds. */
export declare const POLL_IDLE = 60000;
export declare const POLL_FAST = 20000;
export declare const POLL_VERY_FAST = 10000;
/**
 * Runs a BackendPoll on the Bitrix module's 60-20-10 schedule: every 60 s
 * while nothing happens; after a poll that returned messages, the next poll
 * comes in 10 s, the four after it every 20 s, then back to 60 s. New
 * messages restart that sequence. The first poll runs at once.
 */
export declare class BackendPoller {
    private readonly poll;
    private readonly deliver;
    private readonly lastMid;
    private readonly onError;
    private veryFast;
    private fast;
    private running;
    private readonly timer;
    constructor(poll: BackendPoll, timers: Timers, deliver: (messages: PolledMessage[]) => void, lastMid: () => string | null, onError?: (err: unknown) => void);
    get active(): boolean;
    start(): void;
    stop(): void;
    /** The wait before the next poll; each call consumes one step. */
    nextDelay(): number;
    /** Data flowed: poll again soon, then calm down step by step. */
    private busy;
    private run;
}
