import { test } from "node:test";
import assert from "node:assert/strict";
import { reconnectDelay, baseDelay, between, JITTER } from "../dist/index.js";

test("reconnect delays follow the documented table", () => {
  const want = { 1: 100, 2: 15_000, 3: 45_000, 4: 45_000, 5: 600_000, 6: 600_000, 10: 600_000, 11: 3_600_000, 50: 3_600_000 };
  for (const [n, ms] of Object.entries(want)) {
    assert.equal(baseDelay(Number(n)), ms, `errors=${n}`);
    assert.equal(reconnectDelay(Number(n), () => 0), ms, `errors=${n}, no jitter`);
  }
});

test("jitter adds up to 20 %", () => {
  assert.equal(JITTER, 0.2);
  assert.equal(reconnectDelay(2, () => 0.5), 16_500);
  assert.equal(reconnectDelay(11, () => 0.999999), Math.round(3_600_000 * (1 + 0.2 * 0.999999)));
  // A broken random source never shortens nor explodes the delay.
  assert.equal(reconnectDelay(2, () => NaN), 15_000);
  assert.equal(reconnectDelay(2, () => 7), 18_000);
});

test("between covers its range", () => {
  assert.equal(between(10_000, 120_000, () => 0), 10_000);
  assert.equal(between(10_000, 120_000, () => 1), 120_000);
  assert.equal(between(10_000, 120_000, () => 0.5), 65_000);
});
