/*
 * Builds the package once per test run into a private directory, for the
 * suites that run the built package in child processes (process signals,
 * unref'd timers, HTTP fixtures). They read its path from CANCELKIT_DIST.
 * A private directory, not dist/, so `npm run build` elsewhere cannot pull
 * files from under a running child.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export default function setup(): () => void {
  // `npm run mutate` builds once for the whole run and says where (its
  // children would run the unmutated build anyway).
  if (process.env["CANCELKIT_PREBUILT_DIST"]) {
    process.env["CANCELKIT_DIST"] = process.env["CANCELKIT_PREBUILT_DIST"];
    return () => {};
  }
  const outDir = mkdtempSync(join(tmpdir(), "cancelkit-test-dist-"));
  // The same build as `npm run build` (tsc, then the modules joined into the
  // bundles the package ships), so the children run what users install.
  execFileSync(process.execPath, [join(root, "scripts", "build.js"), "--out", outDir], { cwd: root, stdio: "pipe" });
  process.env["CANCELKIT_DIST"] = outDir;
  return () => rmSync(outDir, { recursive: true, force: true });
}
