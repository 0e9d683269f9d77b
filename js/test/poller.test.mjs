import { test } from "node:test";
import assert from "node:assert/strict";
import { BackendPoller, PullClient } from "../dist/index.js";
import { FakeClock, fakeWebSocket, config, settle } from "./fakes.mjs";

function poller(answers) {
  const clock = new FakeClock();
  const at = [];
  const got = [];
  const p = new BackendPoller(
    async () => {
      at.push(clock.now());
      return answers.shift() ?? [];
    },
    clock,
    (m) => got.push(...m),
    () => null,
  );
  return { clock, p, at, got };
}

const msg = (n) => ({ module_id: "im", command: "message", params: { n }, mid: String(n).padStart(26, "0") });

test("idle: every 60 s, the first poll at once", async () => {
  const { clock, p, at } = poller([]);
  p.start();
  await clock.advance(180_000);
  assert.deepEqual(at.map((t) => t - at[0]), [0, 60_000, 120_000, 180_000]);
});

test("data: 10 s, then 20 s four times, then 60 s", async () => {
  const { clock, p, at, got } = poller([[msg(1)]]);
  p.start();
  await clock.advance(200_000);
  const gaps = at.slice(1).map((t, i) => t - at[i]);
  assert.deepEqual(gaps.slice(0, 6), [10_000, 20_000, 20_000, 20_000, 20_000, 60_000]);
  assert.equal(got.length, 1);
});

test("new data restarts the fast sequence", async () => {
  const { clock, p, at } = poller([[msg(1)], [], [msg(2)]]);
  p.start();
  await clock.advance(150_000);
  const gaps = at.slice(1).map((t, i) => t - at[i]);
  assert.deepEqual(gaps.slice(0, 5), [10_000, 20_000, 10_000, 20_000, 20_000]);
});

test("stop stops", async () => {
  const { clock, p, at } = poller([]);
  p.start();
  await settle();
  p.stop();
  await clock.advance(600_000);
  assert.equal(at.length, 1);
});

test("client: server_enabled false polls the backend only", async () => {
  const clock = new FakeClock();
  const ws = fakeWebSocket();
  const events = [];
  let polls = 0;
  const c = new PullClient({
    config: config({ server: { server_enabled: false } }),
    timers: clock,
    WebSocket: ws.WebSocket,
    networkEvents: null,
    backendPoll: async () => (polls++ === 0 ? [msg(1), msg(1)] : []),
  });
  c.onPullEvent((m, cmd, params) => events.push(params.n));
  await c.start();
  await settle();
  assert.equal(c.status, "polling");
  assert.equal(ws.sockets.length, 0);
  assert.deepEqual(events, [1], "repeated mid dropped");
  await clock.advance(10_000);
  assert.equal(polls, 2);
});

test("client: backend poll runs after 3 failed attempts and stops when the push server is back", async () => {
  const clock = new FakeClock();
  const ws = fakeWebSocket();
  let polls = 0;
  const c = new PullClient({
    config: config(),
    timers: clock,
    random: () => 0,
    transport: "websocket",
    WebSocket: ws.WebSocket,
    networkEvents: null,
    backendPoll: async () => (polls++, []),
  });
  await c.start();
  ws.last().end(1006);
  await clock.advance(100);
  ws.last().end(1006);
  await clock.advance(15_000);
  assert.equal(polls, 0);
  ws.last().end(1006);
  await settle();
  assert.equal(polls, 1);
  await clock.advance(45_000);
  assert.equal(polls, 1, "next poll only after 60 s");
  ws.last().open();
  await clock.advance(3600_000);
  assert.equal(polls, 1, "stopped while connected");
});
