/**
 * The clock the client runs on. Tests pass a fake one; browsers use the
 * global timers.
 */
export interface Timers {
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
    /** Milliseconds since the epoch. */
    now(): number;
}
export declare const realTimers: Timers;
/**
 * setTimeout overflows above 2^31-1 ms (about 24.8 days) and fires at
 * once; longer waits are made of several timers.
 */
export declare const MAX_TIMER = 2147483647;
/** A single-shot timer slot: arming it again cancels the previous timer. */
export declare class Timer {
    private readonly timers;
    private handle;
    constructor(timers: Timers);
    /** Runs fn after ms, however long ms is. */
    set(ms: number, fn: () => void): void;
    clear(): void;
    get armed(): boolean;
}
