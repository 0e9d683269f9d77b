// Builds dist/ from src/ (npm run build): dist/index.js, one minified ES
// module holding the client and the part of the protobuf runtime it uses
// (esbuild), dist/sw.js, the Web Push service worker, and the type
// declarations (tsc, which also type-checks).
//
//   node build.mjs [outDir]    default dist/; the dist test builds elsewhere
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(root, "dist"));

rmSync(out, { recursive: true, force: true });
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--emitDeclarationOnly", "--outDir", out], {
  stdio: "inherit",
});
// The protobuf code is internal (no public type names it) and its
// declarations would name @bufbuild/protobuf, which is bundled, not a
// dependency of the package.
rmSync(join(out, "gen"), { recursive: true, force: true });
rmSync(join(out, "protobuf.d.ts"), { force: true });
const protobufNotice = "\n// Includes the binary codec of @bufbuild/protobuf (Copyright Buf Technologies, Inc., Apache-2.0).";
for (const [entry, outfile, what, notice] of [
  ["src/index.ts", "index.js", "@pushpull/client", protobufNotice],
  // The service worker (Web Push): a module of its own, without the client.
  ["src/sw.ts", "sw.js", "@pushpull/client service worker", ""],
]) await build({
  absWorkingDir: root,
  entryPoints: [entry],
  outfile: join(out, outfile),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  charset: "utf8",
  legalComments: "none",
  banner: {
    js:
      `// ${what}, MIT licence. Built from js/src by js/build.mjs; do not edit.` + notice,
  },
  logLevel: "warning",
});
