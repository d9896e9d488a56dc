// npm run build: compiles src/ into a fresh directory, joins its modules into
// one (scripts/bundle.js), then swaps it in for dist/, so a benchmark or child
// process reading dist/ meanwhile never sees it half-written or missing for
// more than the instant of a rename.
//
//   node scripts/build.js [--out <dir>]   (default: dist/, swapped in as above)
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bundle } from "./bundle.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outIndex = process.argv.indexOf("--out");
if (outIndex > 0 && process.argv[outIndex + 1] === undefined) throw new TypeError("build.js: --out needs a directory, received nothing");
const out = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : null;

/** The entry points, from package.json "exports", relative to dist/. */
function entries() {
  const { exports } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  return Object.values(exports)
    .filter((target) => typeof target === "object")
    .map((target) => target.default.replace(/^\.\/dist\//, ""));
}

const fresh = mkdtempSync(join(out === null ? root : dirname(out), ".dist-"));
try {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", fresh], { cwd: root, stdio: "inherit" });
  bundle(fresh, entries());
} catch (error) {
  rmSync(fresh, { recursive: true, force: true });
  throw error;
}
const dist = out ?? join(root, "dist");
const old = `${fresh}-old`;
if (existsSync(dist)) renameSync(dist, old);
renameSync(fresh, dist);
rmSync(old, { recursive: true, force: true });
