// npm run mutate: mutation testing of the core with StrykerJS
// (stryker.config.mjs, vitest.mutate.config.ts; docs/mutation.md).
//
//   npm run mutate                                  every core file
//   npm run mutate -- src/cancel/task-tracker.ts    one file (or several)
//   npm run mutate -- --incremental                 reuse the last run's results where
//                                                   neither the code nor its tests changed
//
// Arguments ending in .ts are files; the others go to `stryker run` as they
// are (`--concurrency 1`). After the run, prints each
// file's score counting only the mutants not marked equivalent (a
// `// Stryker disable …: why` comment in the file), lists the ones marked,
// and exits 1 when a file is under the goal.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const GOAL = 95;
const CORE = ["src/cancel", "src/channels", "src/signals"];

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const files = args.filter((a) => a.endsWith(".ts"));
const passed = args.filter((a) => !a.endsWith(".ts"));

for (const file of files) {
  if (!existsSync(join(root, file))) {
    console.error(`mutate: no such file: ${file}`);
    process.exit(2);
  }
}
// Entry points only re-export: nothing in them to mutate.
const targets = files.length > 0 ? files : CORE.flatMap((dir) => readdirSync(join(root, dir)).filter((f) => f.endsWith(".ts") && f !== "index.ts").map((f) => `${dir}/${f}`));

// The suites that run the built package in a child process read it from
// CANCELKIT_DIST. Built once here, not once per test process Stryker
// restarts: a child runs the unmutated build either way.
const prebuilt = mkdtempSync(join(tmpdir(), "cancelkit-mutate-dist-"));
let run;
try {
  execFileSync(process.execPath, [join(root, "scripts", "build.js"), "--out", prebuilt], { cwd: root, stdio: "inherit" });
  const stryker = join(root, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js");
  run = spawnSync(process.execPath, [stryker, "run", "--mutate", targets.join(","), ...passed], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, CANCELKIT_PREBUILT_DIST: prebuilt },
  });
} finally {
  rmSync(prebuilt, { recursive: true, force: true });
}
if (run.status !== 0) process.exit(run.status ?? 1);

const report = JSON.parse(readFileSync(join(root, "reports", "mutation", "mutation.json"), "utf8"));
const DETECTED = new Set(["Killed", "Timeout"]);
const UNDETECTED = new Set(["Survived", "NoCoverage"]);
let below = 0;
const ignored = [];
console.log(`\nmutate: score per file (goal ${GOAL}%; mutants marked equivalent left out)`);
for (const [name, file] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
  const path = relative(root, join(root, name));
  let detected = 0;
  let undetected = 0;
  for (const m of file.mutants) {
    if (DETECTED.has(m.status)) detected++;
    else if (UNDETECTED.has(m.status)) undetected++;
    else if (m.status === "Ignored") ignored.push({ path, m });
  }
  const total = detected + undetected;
  const score = total === 0 ? 100 : (100 * detected) / total;
  if (score < GOAL) below++;
  const verdict = score >= GOAL ? "ok" : "UNDER";
  console.log(`  ${path.padEnd(36)} ${score.toFixed(1).padStart(5)}%  ${String(detected).padStart(4)} detected / ${String(total).padStart(4)}  ${verdict}`);
}
if (ignored.length > 0) {
  console.log(`\nmutate: ${ignored.length} mutants marked equivalent`);
  for (const { path, m } of ignored) {
    console.log(`  ${path}:${m.location.start.line} ${m.mutatorName}${m.replacement ? ` → ${JSON.stringify(m.replacement).slice(0, 40)}` : ""}: ${m.statusReason ?? ""}`);
  }
}
process.exitCode = below > 0 ? 1 : 0;
