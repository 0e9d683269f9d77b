// dist/ is committed so that the server embeds the client without a JS
// build, and src/gen is committed so that a build needs no code generator:
// these tests fail when either does not match a fresh build or generation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function files(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
    .sort();
}

function sameTree(committed, built, what, fix) {
  assert.deepEqual(files(committed), files(built), `${what} holds other files than a fresh one: ${fix}`);
  for (const f of files(built)) {
    // Not assert.equal: a diff of minified code would fill the report.
    assert.ok(readFileSync(join(committed, f), "utf8") === readFileSync(join(built, f), "utf8"), `${what}/${f} is stale: ${fix}`);
  }
}

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), "pushpull-client-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("dist/ is the build of src/", (t) => {
  assert.ok(existsSync(join(root, "node_modules", "esbuild")), "the build tools are not installed: run `npm ci` in js/");
  const out = join(tmp(t), "dist");
  execFileSync(process.execPath, [join(root, "build.mjs"), out], { stdio: "pipe" });
  sameTree(join(root, "dist"), out, "dist", "run `npm run build` in js/");
});

test("src/gen is generated from protocol/pb/push_server.proto", (t) => {
  const buf = join(root, "node_modules", ".bin", "buf");
  assert.ok(existsSync(buf), "buf is not installed: run `npm ci` in js/");
  const out = tmp(t);
  const env = { ...process.env, PATH: join(root, "node_modules", ".bin") + ":" + process.env.PATH };
  execFileSync(buf, ["generate", "-o", out], { cwd: root, env, stdio: "pipe" });
  sameTree(join(root, "src", "gen"), join(out, "src", "gen"), "src/gen", "run `npm run generate` then `npm run build` in js/");
});
