export const realTimers = {
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (h) => globalThis.clearTimeout(h),
    now: () => Date.now(),
};
/**
 * setTimeout overflows above 2^31-1 ms (about 24.8 days) and fires at
 * once; longer waits are made of several timers.
 */
export const MAX_TIMER = 2147483647;
/** A single-shot timer slot: arming it again cancels the previous timer. */
export class Timer {
    constructor(timers) {
        this.timers = timers;
        this.handle = null;
    }
    /** Runs fn after ms, however long ms is. */
    set(ms, fn) {
        this.clear();
        const due = this.timers.now() + Math.max(0, ms);
        const arm = () => {
            const left = due - this.timers.now();
            if (left > MAX_TIMER) {
                this.handle = this.timers.setTimeout(arm, MAX_TIMER);
                return;
            }
            this.handle = this.timers.setTimeout(() => {
                this.handle = null;
                fn();
            }, Math.max(0, left));
        };
        arm();
    }
    clear() {
        if (this.handle !== null) {
            this.timers.clearTimeout(this.handle);
            this.handle = null;
        }
    }
    get armed() {
        return this.handle !== null;
    }
}
