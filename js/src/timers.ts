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

export const realTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
  now: () => Date.now(),
};

/**
 * setTimeout overflows above 2^31-1 ms (about 24.8 days) and fires at
 * once; longer waits are made of several timers.
 */
export const MAX_TIMER = 2_147_483_647;

/** A single-shot timer slot: arming it again cancels the previous timer. */
export class Timer {
  private handle: unknown = null;
  constructor(private readonly timers: Timers) {}

  /** Runs fn after ms, however long ms is. */
  set(ms: number, fn: () => void): void {
    this.clear();
    const due = this.timers.now() + Math.max(0, ms);
    const arm = (): void => {
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

  clear(): void {
    if (this.handle !== null) {
      this.timers.clearTimeout(this.handle);
      this.handle = null;
    }
  }

  get armed(): boolean {
    return this.handle !== null;
  }
}
