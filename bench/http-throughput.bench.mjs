// Throughput while serving (no shutdown): ours (serve() attached to the
// server) vs a bare node:http server with the same handler, each in its own
// child process, driven by autocannon (in this process) and wrk when it is
// installed. The goal is ours ≥ 97% of bare, on the median of per-pair ratios.
//
// How it is measured, and why: the servers (bare, ours and a control) run
// for a generation of rounds: started together, warmed up, then measured in
// short windows that take turns (A B C, C B A, ...), so a pair's two windows
// are seconds apart and machine noise hits both sides alike. A new
// generation of processes is started every HTTP_TP_PER_GEN rounds, so one
// process's own luck (two identical servers differ by 1–2% for as long as
// they live: where the heap landed, how JIT and GC heuristics settled) is
// spread over the median instead of deciding it. Besides requests per
// second, the server's CPU time per request over the same window is
// printed: on a machine shared with other jobs it moves less. Next to the
// verdict, a 95% confidence interval of the mean ratio, taken across
// generations, says whether one run can tell the goal apart from the noise.
// Process luck is the larger part of the noise, so the default spends the
// time on many short generations (16 of 2 pairs) rather than long ones.
// HTTP_TP_CONTROL=1 adds a control server (the package loaded and
// shutdown() installed, no serve()) that separates serve()'s cost from the
// process set-up; it costs a third more time per pair, so it is off by
// default.
//
// HTTP_TP_SUBSCRIBED=1 adds "subscribed": ours with a subscriber on every
// cancelkit diagnostics channel (cancelkit:serve:state, …:serve:report,
// cancelkit:shutdown, cancelkit:watchdog), and prints its row against bare
// and against ours: the cost of publishing lifecycle events while serving.
// Without it, "ours" is the no-subscriber row.
//
// Env: HTTP_TP_ROUNDS (pairs per client, default 32), HTTP_TP_PER_GEN (rounds per
// generation of processes, default 2), HTTP_TP_SECONDS (window, default 1),
// HTTP_TP_CONTROL (1: add the control server).
import { existsSync } from "node:fs";
import { header, info } from "./harness.mjs";
import { startServer } from "./http/child.mjs";
import { runWrk, findWrk } from "./http/clients.mjs";

const ROUNDS = Number(process.env.HTTP_TP_ROUNDS ?? 32);
const SECONDS = Number(process.env.HTTP_TP_SECONDS ?? 1);
const PER_GEN = Number(process.env.HTTP_TP_PER_GEN ?? 2);
const CONTROL = process.env.HTTP_TP_CONTROL === "1";
const SUBSCRIBED = process.env.HTTP_TP_SUBSCRIBED === "1";
const CONNECTIONS = 32;
const GOAL = 0.97;

header("HTTP throughput while serving (ours vs bare node:http)");
const haveOurs = existsSync(new URL("../dist/http/index.js", import.meta.url)) && typeof (await import("../dist/http/index.js")).serve === "function";
if (!haveOurs) {
  info("ours", "skipped: dist/http has no serve() yet (npm run build after src/http lands)");
  process.exit(0);
}
const haveWrk = findWrk() !== null;
if (!haveWrk) info("wrk", "skipped: binary not found (Debian: apt-get install -y wrk)");

const { default: autocannon } = await import("autocannon");

const STRATEGIES = [...(CONTROL ? ["bare", "loaded", "ours"] : ["bare", "ours"]), ...(SUBSCRIBED ? ["subscribed"] : [])];

/**
 * Starts the servers (maxDelayMs 0: the handler answers at once, so
 * per-request overhead shows). Which one starts first rotates with each
 * generation, so no strategy always gets the same place. (Checked: three
 * bare servers started in a fixed order measure 99.6–101.7% of each other.)
 */
async function startAll(generation) {
  const servers = {};
  const first = generation % STRATEGIES.length;
  for (const strategy of [...STRATEGIES.slice(first), ...STRATEGIES.slice(0, first)]) {
    const server = startServer(strategy, { maxDelayMs: 0, drainTimeoutMs: 1000 });
    servers[strategy] = { server, port: await server.ready };
  }
  return servers;
}

async function stopAll(servers) {
  for (const { server } of Object.values(servers)) {
    server.child.kill("SIGKILL");
    await server.exited;
  }
}

/** One measurement window on a running server: req/s and server CPU µs per request. */
async function window({ server, port }, measure) {
  const before = await server.stats();
  const rps = await measure(port);
  const after = await server.stats();
  return { rps, cpuPerReq: (after.cpuMicros - before.cpuMicros) / Math.max(1, after.answered - before.answered) };
}

async function autocannonRps(port) {
  const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, duration: SECONDS });
  if (result.errors || result.non2xx) throw new Error(`autocannon saw errors: ${result.errors} errors, ${result.non2xx} non-2xx`);
  return result.requests.total / SECONDS;
}

async function wrkRps(port) {
  const { parsed, out } = await runWrk(port, { connections: CONNECTIONS, durationMs: SECONDS * 1000 }).done;
  if (!parsed.rps) throw new Error(`wrk output not understood:\n${out}`);
  return parsed.rps;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Two-sided 95% Student t quantiles by degrees of freedom: a table to 10, then z + (z³ + z) / 4df (at most 1.2% low there, at 11). */
const T95 = [NaN, 12.71, 4.3, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
const t95 = (df) => T95[df] ?? 1.96 + (1.96 ** 3 + 1.96) / (4 * df);

/**
 * The mean ratio with a 95% confidence interval. Pairs of one generation
 * share their processes, and so their luck: they are averaged into one
 * value per generation first, and the interval is taken across those, so
 * it counts process-to-process spread as well as window noise.
 */
function interval(ratios) {
  const gens = [];
  for (let i = 0; i < ratios.length; i += PER_GEN) {
    const g = ratios.slice(i, i + PER_GEN);
    gens.push(g.reduce((a, b) => a + b, 0) / g.length);
  }
  const k = gens.length;
  const mean = gens.reduce((a, b) => a + b, 0) / k;
  if (k < 2) return { mean, low: NaN, high: NaN, k };
  const sd = Math.sqrt(gens.reduce((a, g) => a + (g - mean) ** 2, 0) / (k - 1));
  const half = t95(k - 1) * (sd / Math.sqrt(k));
  return { mean, low: mean - half, high: mean + half, k };
}
const fmtRps = (v) => `${Math.round(v).toLocaleString("en-US")} req/s`;

let allOk = true;
/** The running generation of servers; stopped on the way out whatever happens. */
let servers = null;
process.once("exit", () => {
  for (const { server } of Object.values(servers ?? {})) server.child.kill("SIGKILL");
});
for (const [name, measure] of [["autocannon", autocannonRps], ...(haveWrk ? [["wrk", wrkRps]] : [])]) {
  const bare = [];
  const ours = [];
  const ratios = [];
  const cpuRatios = [];
  // Control (HTTP_TP_CONTROL=1): "loaded" is the same process as "ours"
  // without serve() (the package imported, shutdown() installed), to tell
  // serve()'s own cost from the process set-up's. It does not enter the goal.
  const controlCpu = [];
  const serveCpu = [];
  // HTTP_TP_SUBSCRIBED=1: the same server with a subscriber on cancelkit's channels.
  const subscribed = [];
  const subscribedRatios = [];
  const subscribedVsOurs = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i % PER_GEN === 0) {
      if (servers !== null) await stopAll(servers);
      servers = await startAll(i / PER_GEN);
      // One discarded warm-up window each.
      for (const s of STRATEGIES) await window(servers[s], measure);
    }
    // The order flips every other round so neither side always runs first.
    const order = i % 2 === 0 ? STRATEGIES : [...STRATEGIES].reverse();
    const got = {};
    for (const s of order) got[s] = await window(servers[s], measure);
    bare.push(got.bare);
    ours.push(got.ours);
    ratios.push(got.ours.rps / got.bare.rps);
    cpuRatios.push(got.bare.cpuPerReq / got.ours.cpuPerReq);
    if (SUBSCRIBED) {
      subscribed.push(got.subscribed);
      subscribedRatios.push(got.subscribed.rps / got.bare.rps);
      subscribedVsOurs.push(got.subscribed.rps / got.ours.rps);
    }
    if (CONTROL) {
      controlCpu.push(got.bare.cpuPerReq / got.loaded.cpuPerReq);
      serveCpu.push(got.loaded.cpuPerReq / got.ours.cpuPerReq);
    }
  }
  await stopAll(servers);
  servers = null;
  const ratio = median(ratios);
  const cpuRatio = median(cpuRatios);
  const ok = ratio >= GOAL;
  allOk &&= ok;
  const pct = (rs) => rs.map((r) => `${(r * 100).toFixed(1)}%`).join("  ");
  info(`${name}: per pair, ours/bare req/s`, pct(ratios));
  info(`${name}: per pair, bare/ours server CPU per request`, pct(cpuRatios));
  const ci = interval(ratios);
  const side = ci.low >= GOAL ? "goal below the interval" : ci.high < GOAL ? "goal above the interval" : "goal inside the interval: this run cannot tell";
  info(
    `${name}: ours/bare req/s, mean by generation`,
    ci.k < 2
      ? `${(ci.mean * 100).toFixed(1)}% (one generation of processes: no interval)`
      : `${(ci.mean * 100).toFixed(1)}%, 95% CI ${(ci.low * 100).toFixed(1)}–${(ci.high * 100).toFixed(1)}% over ${ci.k} generations of processes (${side})`,
  );
  row(`${name}, ${CONNECTIONS} conns, ${ROUNDS} pairs of ${SECONDS} s: req/s`, fmtRps(median(ours.map((o) => o.rps))), fmtRps(median(bare.map((b) => b.rps))), ratio);
  row(`${name}: server CPU per request (inverse, noise-resistant)`, fmtCpu(median(ours.map((o) => o.cpuPerReq))), fmtCpu(median(bare.map((b) => b.cpuPerReq))), cpuRatio);
  if (SUBSCRIBED) {
    row(`${name}: with a cancelkit:* subscriber: req/s`, fmtRps(median(subscribed.map((o) => o.rps))), fmtRps(median(bare.map((b) => b.rps))), median(subscribedRatios));
    info(`${name}: subscribed/ours req/s (the subscriber's own cost)`, `${(median(subscribedVsOurs) * 100).toFixed(1)}%  (per pair: ${pct(subscribedVsOurs)})`);
  }
  if (CONTROL) {
    info(`${name}: control, bare/loaded CPU per request (no serve())`, `${(median(controlCpu) * 100).toFixed(1)}%  (per pair: ${pct(controlCpu)})`);
    info(`${name}: serve() alone, loaded/ours CPU per request`, `${(median(serveCpu) * 100).toFixed(1)}%  (per pair: ${pct(serveCpu)})`);
  }
}

function row(label, oursText, bareText, ratio) {
  const ok = ratio >= GOAL;
  console.log(`${label.padEnd(58)} ours ${oursText.padStart(14)} | bare ${bareText.padStart(14)} | ratio ${(ratio * 100).toFixed(1).padStart(6)}% | goal ≥ ${GOAL * 100}% ${ok ? "PASS" : "MISS"}`);
}
function fmtCpu(us) {
  return `${us.toFixed(2)} µs/req`;
}
process.exitCode = 0;
if (!allOk) info("throughput", "MISS on at least one client (noisy machines: see the intervals; HTTP_TP_ROUNDS=72 HTTP_TP_PER_GEN=1 narrows them, ≈ 15 min per Node version)");
