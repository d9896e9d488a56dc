/*
 * Builds the package once per test run into a private directory, for the
 * suites that run the built package in child processes (process signals,
 * unref'd timers, HTTP fixtures). They read its path from CANCELKIT_DIST.
 * A private directory, not dist/, so `npm run build` elsewhere cannot pull
 * files from under a running child.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export default function setup(): () => void {
  const outDir = mkdtempSync(join(tmpdir(), "cancelkit-test-dist-"));
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", outDir], { cwd: root, stdio: "pipe" });
  } catch (error) {
    // tsc still emits on type errors, which the typecheck step reports; only
    // a build that produced nothing stops the run.
    if (!existsSync(join(outDir, "index.js"))) throw error;
  }
  process.env["CANCELKIT_DIST"] = outDir;
  return () => rmSync(outDir, { recursive: true, force: true });
}
