import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFrame } from "../dist/index.js";
import { envelope, mid } from "./fakes.mjs";

test("several envelopes in one frame, in order", () => {
  const got = parseFrame(envelope(1) + envelope(2) + envelope(3));
  assert.deepEqual(got.map((e) => e.mid), [mid(1), mid(2), mid(3)]);
  assert.equal(got[0].text.module_id, "im");
  assert.deepEqual(got[2].text.params, { n: 3 });
  assert.equal(got[0].id, 1);
  assert.equal(got[0].channel, "0123456789abcdef0123456789abcdef");
});

test("escaped delimiters and line breaks inside a body", () => {
  const body = { module_id: "im", command: "m", params: { s: "a #!NGINXNME!# b\nc\u2028" } };
  const raw = JSON.stringify({ id: 1, mid: mid(1), channel: "c", tag: "", time: "", text: body }).replace(/#!NGINXNM/g, "\\u0023!NGINXNM");
  const got = parseFrame("#!NGINXNMS!#" + raw + "#!NGINXNME!#" + envelope(2));
  assert.equal(got.length, 2);
  assert.equal(got[0].text.params.s, body.params.s);
});

test("bad envelopes are skipped, the good ones kept", () => {
  const frame =
    "#!NGINXNMS!#{not json}#!NGINXNME!#" +
    envelope(1) +
    '#!NGINXNMS!#{"id":2,"mid":"x","text":{"no":"command"}}#!NGINXNME!#' +
    "#!NGINXNMS!##!NGINXNME!#" +
    envelope(3) +
    "#!NGINXNMS!#{unterminated";
  assert.deepEqual(parseFrame(frame).map((e) => e.id), [1, 3]);
  assert.deepEqual(parseFrame(""), []);
  assert.deepEqual(parseFrame("garbage"), []);
  assert.deepEqual(parseFrame("[1,2"), []);
});

test("format=json arrays", () => {
  const arr = [1, 2].map((n) => ({ id: n, mid: mid(n), channel: "c", tag: "t", time: "x", text: { module_id: "m", command: "c", params: {} } }));
  assert.deepEqual(parseFrame(JSON.stringify(arr)).map((e) => e.mid), [mid(1), mid(2)]);
});

test("a command given as a JSON string and missing params", () => {
  const got = parseFrame('#!NGINXNMS!#{"id":1,"mid":"' + mid(1) + '","text":"{\\"module_id\\":\\"a\\",\\"command\\":\\"b\\"}"}#!NGINXNME!#');
  assert.equal(got.length, 1);
  assert.deepEqual(got[0].text, { module_id: "a", command: "b", params: {} });
});
