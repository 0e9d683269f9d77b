import { Timer } from "./timers.js";
/** Delays of the backend poll schedule, in milliseconds. */
export const POLL_IDLE = 60000;
export const POLL_FAST = 20000;
export const POLL_VERY_FAST = 10000;
/**
 * Runs a BackendPoll on the Bitrix module's 60-20-10 schedule: every 60 s
 * while nothing happens; after a poll that returned messages, the next poll
 * comes in 10 s, the four after it every 20 s, then back to 60 s. New
 * messages restart that sequence. The first poll runs at once.
 */
export class BackendPoller {
    constructor(poll, timers, deliver, lastMid, onError = () => { }) {
        this.poll = poll;
        this.deliver = deliver;
        this.lastMid = lastMid;
        this.onError = onError;
        this.veryFast = 0;
        this.fast = 0;
        this.running = false;
        this.timer = new Timer(timers);
    }
    get active() {
        return this.running;
    }
    start() {
        if (this.running)
            return;
        this.running = true;
        this.veryFast = 0;
        this.fast = 0;
        void this.run();
    }
    stop() {
        this.running = false;
        this.timer.clear();
    }
    /** The wait before the next poll; each call consumes one step. */
    nextDelay() {
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
    busy() {
        this.veryFast = 1;
        this.fast = 4;
    }
    async run() {
        let got = undefined;
        try {
            got = await this.poll({ lastMid: this.lastMid() });
        }
        catch (err) {
            this.onError(err);
        }
        if (!this.running)
            return;
        if (Array.isArray(got) && got.length > 0) {
            this.busy();
            this.deliver(got);
            if (!this.running)
                return;
        }
        this.timer.set(this.nextDelay(), () => void this.run());
    }
}
