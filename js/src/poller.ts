import type { PullMessage } from "./types.js";
import { Timer, type Timers } from "./timers.js";

/** A message the backend poll returns; `mid` lets the client drop repeats. */
export interface PolledMessage extends PullMessage {
  mid?: string;
}

/**
 * Asks the application's backend for the messages of this user, for when no
 * push server can be reached (the Bitrix module's own fallback: its pages
 * poll the site). `lastMid` is the newest message id the client has seen.
 */
export type BackendPoll = (ctx: { lastMid: string | null }) => Promise<PolledMessage[] | void>;

/** Delays of the backend poll schedule, in milliseconds. */
export const POLL_IDLE = 60_000;
export const POLL_FAST = 20_000;
export const POLL_VERY_FAST = 10_000;

/**
 * Runs a BackendPoll on the Bitrix module's 60-20-10 schedule: every 60 s
 * while nothing happens; after a poll that returned messages, the next poll
 * comes in 10 s, the four after it every 20 s, then back to 60 s. New
 * messages restart that sequence. The first poll runs at once.
 */
export class BackendPoller {
  private veryFast = 0;
  private fast = 0;
  private running = false;
  private readonly timer: Timer;

  constructor(
    private readonly poll: BackendPoll,
    timers: Timers,
    private readonly deliver: (messages: PolledMessage[]) => void,
    private readonly lastMid: () => string | null,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.timer = new Timer(timers);
  }

  get active(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.veryFast = 0;
    this.fast = 0;
    void this.run();
  }

  stop(): void {
    this.running = false;
    this.timer.clear();
  }

  /** The wait before the next poll; each call consumes one step. */
  nextDelay(): number {
    if (this.veryFast > 0) {
      this.veryFast--;
      return POLL_VERY_FAST;
    }
    if (this.fast > 0) {
      this.fast--;
      return POLL_FAST;
    }
    return POLL_IDLE;
  }

  /** Data flowed: poll again soon, then calm down step by step. */
  private busy(): void {
    this.veryFast = 1;
    this.fast = 4;
  }

  private async run(): Promise<void> {
    let got: PolledMessage[] | void = undefined;
    try {
      got = await this.poll({ lastMid: this.lastMid() });
    } catch (err) {
      this.onError(err);
    }
    if (!this.running) return;
    if (Array.isArray(got) && got.length > 0) {
      this.busy();
      this.deliver(got);
      if (!this.running) return;
    }
    this.timer.set(this.nextDelay(), () => void this.run());
  }
}
