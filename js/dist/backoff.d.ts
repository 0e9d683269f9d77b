/**
 * Reconnect delays, in milliseconds, after `errors` failed connection
 * attempts in a row (errors >= 1). The schedule of the Push & Pull clients:
 *
 * | errors in a row | delay  |
 * |-----------------|--------|
 * | 1               | 100 ms |
 * | 2               | 15 s   |
 * | 3, 4            | 45 s   |
 * | 5 to 10         | 10 min |
 * | more than 10    | 1 h    |
 *
 * plus 0-20 % random jitter, so that the clients of a server that went
 * away do not all come back in the same instant.
 */
export declare function reconnectDelay(errors: number, random?: () => number): number;
/** The delay without jitter. */
export declare function baseDelay(errors: number): number;
/** Largest share of the delay added at random. */
export declare const JITTER = 0.2;
/**
 * More WebSocket errors in a row than this switch the client to long
 * polling.
 */
export declare const MAX_WEBSOCKET_ERRORS = 4;
/** A uniformly random duration in [min, max] milliseconds. */
export declare function between(min: number, max: number, random?: () => number): number;
