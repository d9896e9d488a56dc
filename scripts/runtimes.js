// npm run test:runtimes: the runtime matrix the README's entry-point table
// claims (test/runtimes/). On Deno and Bun (devDependencies: npm ci
// installs their binaries) and in headless Chromium
// (Debian's `chromium`): the neutral core's conformance checks; on Deno and
// Bun also a node:http server drained by serve() under load, and a check
// that a pending timeout does not hold the process. The same drain check on
// this Node is the control: it shows the check passes where serve() works.
//
//   node scripts/runtimes.js            builds into a temp dir, runs everything
//   RUNTIMES_JSON=<file>                also writes the counts (.ci/run adds them up)
//
// A runtime that is missing fails under CI=true, and is a loud SKIP
// otherwise. Every child is bounded in time and killed if it overruns.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const here = join(root, "test", "runtimes");
const CI = process.env.CI === "true";

/**
 * Checks known to fail today, each with the issue that fixes it. Such a check
 * is run; if it fails the way it is known to, it is counted as skipped and a
 * loud line says so; if it passes, it fails, so the entry gets removed.
 */
const KNOWN_BROKEN = {
  // Empty: Bun's serve() works since issue 16 (a degraded mode that warns once).
};

function which(name, local) {
  if (local !== undefined && existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const file = join(dir, name);
    if (dir !== "" && existsSync(file) && statSync(file).isFile()) return file;
  }
  return null;
}
// Deno and Bun are devDependencies: `npm ci` puts them in node_modules/.bin.
const deno = which("deno", join(root, "node_modules", ".bin", "deno"));
const bun = which("bun", join(root, "node_modules", ".bin", "bun"));
const chromium = which("chromium") ?? which("chromium-browser") ?? which("google-chrome");

/** Runs a command, at most `ms`; { code, signal, stdout, stderr, timedOut, ms }. */
function exec(command, args, { ms = 30_000, env } = {}) {
  return new Promise((resolvePromise) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, ms);
    child.on("error", (error) => (stderr += String(error)));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, timedOut, ms: Math.round(performance.now() - started) });
    });
  });
}

/** The last line of stdout that parses as JSON, or null. */
function lastJson(stdout) {
  for (const line of stdout.trim().split("\n").reverse()) {
    try {
      return JSON.parse(line);
    } catch {}
  }
  return null;
}

const describeRun = (r) => `exit ${r.code ?? r.signal}${r.timedOut ? " (timed out, killed)" : ""} after ${r.ms} ms\n${r.stdout}${r.stderr}`.trim();

async function conformance(command, args) {
  const r = await exec(command, args, { ms: 60_000 });
  const result = lastJson(r.stdout);
  if (r.code === 0 && result !== null && result.failed.length === 0) return `${result.passed.length} checks passed`;
  if (result !== null && result.failed.length > 0) throw new Error(result.failed.map((f) => `${f.name}: ${f.error}`).join("\n"));
  throw new Error(describeRun(r));
}

async function drain(command, args) {
  const r = await exec(command, args, { ms: 30_000 });
  const result = lastJson(r.stdout);
  if (r.code === 0 && result !== null && result.error === null) {
    return `${result.ok} answered, ${result.slowOk}/3 slow ones finished, ${result.refused} refused after the drain began, 0 lost, exited on its own in ${r.ms} ms`;
  }
  throw new Error(result?.error ?? describeRun(r));
}

async function unref(command, args) {
  const r = await exec(command, args, { ms: 10_000 });
  if (r.code === 0 && r.stdout.trim() === "pending" && r.ms < 5_000) return `exited in ${r.ms} ms with a 30 s timeout pending`;
  throw new Error(`a pending timeout held the process: ${describeRun(r)}`);
}

/** Serves index.html, the conformance checks and dist/ on loopback; Chromium loads the page and dumps its DOM. */
async function browser(dist) {
  const files = { "/": join(here, "index.html"), "/conformance.mjs": join(here, "conformance.mjs") };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const file = files[path] ?? (path.startsWith("/dist/") ? normalize(join(dist, path.slice(6))) : null);
    if (file === null || !file.startsWith(dist) && !Object.values(files).includes(file) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const type = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" }[extname(file)] ?? "application/octet-stream";
    res.writeHead(200, { "content-type": type }).end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const profile = mkdtempSync(join(tmpdir(), "cancelkit-chromium-"));
  try {
    const url = `http://127.0.0.1:${server.address().port}/`;
    const r = await exec(
      chromium,
      ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", `--user-data-dir=${profile}`, "--virtual-time-budget=30000", "--dump-dom", url],
      { ms: 90_000 },
    );
    const match = /<pre id="result">([\s\S]*?)<\/pre>/.exec(r.stdout);
    const text = match?.[1].replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    let result = null;
    try {
      result = JSON.parse(text ?? "");
    } catch {}
    if (result === null) throw new Error(`no result in the page: ${describeRun(r)}`);
    if (result.failed.length > 0) throw new Error(result.failed.map((f) => `${f.name}: ${f.error}`).join("\n"));
    const version = (await exec(chromium, ["--version"], { ms: 10_000 })).stdout.trim();
    return `${result.passed.length} checks passed (${version})`;
  } finally {
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const dist = mkdtempSync(join(tmpdir(), "cancelkit-runtimes-dist-"));
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  execFileSync(process.execPath, [join(root, "scripts", "build.js"), "--out", dist], { cwd: root, stdio: "inherit" });
  const index = pathToFileURL(join(dist, "index.js")).href;
  const distUrl = pathToFileURL(dist).href;
  const file = (name) => join(here, name);
  const denoArgs = ["run", "--quiet", "--no-prompt", "--allow-read", "--allow-net=127.0.0.1", "--allow-env", "--allow-sys"];
  const checks = [
    ["node: node:http drained by serve() (the control)", process.execPath, () => drain(process.execPath, [file("http-drain.mjs"), distUrl])],
    ["deno: neutral core conformance", deno, () => conformance(deno, [...denoArgs, file("neutral-main.mjs"), index])],
    ["deno: node:http drained by serve()", deno, () => drain(deno, [...denoArgs, file("http-drain.mjs"), distUrl])],
    ["deno: a pending timeout does not hold the process", deno, () => unref(deno, [...denoArgs, file("unref-probe.mjs"), index])],
    ["bun: neutral core conformance", bun, () => conformance(bun, [file("neutral-main.mjs"), index])],
    ["bun: node:http drained by serve()", bun, () => drain(bun, [file("http-drain.mjs"), distUrl])],
    ["bun: a pending timeout does not hold the process", bun, () => unref(bun, [file("unref-probe.mjs"), index])],
    ["chromium: neutral core conformance (the bundle over loopback, no bundler)", chromium, () => browser(dist)],
  ];
  for (const [name, tool, fn] of checks) {
    const known = KNOWN_BROKEN[name];
    if (tool === null) {
      const hint = "install it: npm ci (Deno, Bun), apt-get install chromium";
      if (CI) {
        failed++;
        console.log(`runtimes: FAIL ${name}: not installed (${hint})`);
      } else {
        skipped++;
        console.log(`runtimes: !!! SKIP ${name}: not installed (${hint})`);
      }
      continue;
    }
    try {
      const detail = await fn();
      if (known !== undefined) {
        failed++;
        console.log(`runtimes: FAIL ${name}: passes now, but scripts/runtimes.js lists it as known broken ("${known.reason}"): remove the entry`);
      } else {
        passed++;
        console.log(`runtimes: ok   ${name}: ${detail}`);
      }
    } catch (error) {
      const text = String(error?.message ?? error);
      if (known !== undefined && known.matches.test(text)) {
        skipped++;
        console.log("runtimes: " + "!".repeat(72));
        console.log(`runtimes: !!! SKIP ${name}: KNOWN BROKEN: ${known.reason}`);
        console.log(`runtimes: !!! it failed as expected: ${text.split("\n")[0]}`);
        console.log("runtimes: " + "!".repeat(72));
      } else {
        failed++;
        console.log(`runtimes: FAIL ${name}:\n${text.replace(/^/gm, "    ")}`);
      }
    }
  }
} finally {
  rmSync(dist, { recursive: true, force: true });
}
console.log(`runtimes: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (process.env.RUNTIMES_JSON) {
  writeFileSync(resolve(process.env.RUNTIMES_JSON), JSON.stringify({ numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: 0 }));
}
process.exitCode = failed > 0 ? 1 : 0;
