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
export function reconnectDelay(errors: number, random: () => number = Math.random): number {
  return Math.round(baseDelay(errors) * (1 + JITTER * clamp01(random())));
}

/** The delay without jitter. */
export function baseDelay(errors: number): number {
  if (errors <= 1) return 100;
  if (errors === 2) return 15_000;
  if (errors <= 4) return 45_000;
  if (errors <= 10) return 600_000;
  return 3_600_000;
}

/** Largest share of the delay added at random. */
export const JITTER = 0.2;

/**
 * More WebSocket errors in a row than this switch the client to long
 * polling.
 */
export const MAX_WEBSOCKET_ERRORS = 4;

/** A uniformly random duration in [min, max] milliseconds. */
export function between(min: number, max: number, random: () => number = Math.random): number {
  return Math.round(min + (max - min) * clamp01(random()));
}

function clamp01(x: number): number {
  if (!(x >= 0)) return 0;
  return x >= 1 ? 1 : x;
}
