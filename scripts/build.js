// npm run build: compiles src/ into a fresh directory, then swaps it in for
// dist/, so a benchmark or child process reading dist/ meanwhile never sees
// it half-written or missing for more than the instant of a rename.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const fresh = mkdtempSync(join(root, ".dist-"));
try {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", fresh], { cwd: root, stdio: "inherit" });
} catch (error) {
  rmSync(fresh, { recursive: true, force: true });
  throw error;
}
const dist = join(root, "dist");
const old = `${fresh}-old`;
if (existsSync(dist)) renameSync(dist, old);
renameSync(fresh, dist);
rmSync(old, { recursive: true, force: true });
