// dist/ is committed so that the server embeds the client without a JS
// build; this test fails when it does not match a fresh build of src/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("dist/ is the build of src/", () => {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  assert.ok(existsSync(tsc), "typescript is not installed: run `npm ci` in js/");
  const out = mkdtempSync(join(tmpdir(), "pushpull-client-"));
  try {
    execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", out], { stdio: "pipe" });
    const built = readdirSync(out).sort();
    const committed = readdirSync(join(root, "dist")).sort();
    assert.deepEqual(committed, built, "dist/ holds other files than a build: run `npm run build` in js/");
    for (const f of built) {
      assert.equal(readFileSync(join(root, "dist", f), "utf8"), readFileSync(join(out, f), "utf8"), `dist/${f} is stale: run \`npm run build\` in js/`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
