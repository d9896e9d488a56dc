// Drain under keep-alive load (scenario 9 of issue 5): a server in a child
// process answers keep-alive load from one client; SIGTERM arrives mid-load;
// we count, per request, what the client saw — lost (reset, EPIPE, "socket
// hang up", UND_ERR_SOCKET) apart from refused (ECONNREFUSED, harmless) — and
// how long the process took to exit after SIGTERM.
//
// Servers: ours (serve() from dist/http), plain server.close(),
// http-terminator 3.2 and stoppable 1.1 (same 3 s deadline where they have
// one). Clients: http.Agent keep-alive (32 loops), undici Pool (32 loops),
// autocannon (32 connections) and wrk (32 connections, skipped with a note
// when the binary is missing).
//
// Env: HTTP_DRAIN_ROUNDS (ours, default 3), HTTP_DRAIN_PEER_ROUNDS (default 1),
// HTTP_DRAIN_SERVERS / HTTP_DRAIN_CLIENTS (comma lists to run a subset),
// HTTP_DRAIN_BODY (bytes: POST a body of that size instead of GET).
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { header, bound, info } from "./harness.mjs";
import { startServer } from "./http/child.mjs";
import { agentLoad, undiciLoad, autocannonLoad, wrkLoad, findWrk } from "./http/clients.mjs";

const LOAD_MS = 2000; // each client stops issuing requests after this
const SIGTERM_AT_MS = 700; // shutdown starts mid-load
const EXIT_CAP_MS = 4000; // a server still alive this long after SIGTERM is killed and reported as such
const DRAIN_TIMEOUT_MS = 3000;
const IDLE_GRACE_MS = 500;

const oursRounds = Number(process.env.HTTP_DRAIN_ROUNDS ?? 3);
const peerRounds = Number(process.env.HTTP_DRAIN_PEER_ROUNDS ?? 1);
const bodyBytes = Number(process.env.HTTP_DRAIN_BODY ?? 0);
const pick = (env, all) => (process.env[env] ? all.filter((x) => process.env[env].split(",").includes(x)) : all);

header(`HTTP drain under keep-alive load (scenario 9)${bodyBytes ? `, POST ${bodyBytes} B bodies` : ""}`);

const haveOurs = existsSync(new URL("../dist/http/index.js", import.meta.url)) && typeof (await import("../dist/http/index.js")).serve === "function";
if (!haveOurs) info("ours", "skipped: dist/http has no serve() yet (npm run build after src/http lands)");
const haveWrk = findWrk() !== null;
if (!haveWrk) info("wrk", "skipped: binary not found (Debian: apt-get install -y wrk)");

const servers = pick("HTTP_DRAIN_SERVERS", ["ours", "close", "terminator", "stoppable"]).filter((s) => s !== "ours" || haveOurs);
const clients = pick("HTTP_DRAIN_CLIENTS", ["agent", "undici", "autocannon", "wrk"]).filter((c) => c !== "wrk" || haveWrk);
const drivers = { agent: agentLoad, undici: undiciLoad, autocannon: autocannonLoad, wrk: wrkLoad };
const names = { ours: "cancelkit serve()", close: "server.close()", terminator: "http-terminator 3.2", stoppable: "stoppable 1.1" };

async function round(strategy, client) {
  const server = startServer(strategy, { drainTimeoutMs: DRAIN_TIMEOUT_MS, idleGraceMs: IDLE_GRACE_MS });
  const port = await server.ready;
  const load = await drivers[client](port, { connections: 32, durationMs: LOAD_MS, bodyBytes });
  await sleep(SIGTERM_AT_MS);
  const termAt = server.term();
  const [exit] = await Promise.all([server.waitExit(termAt, EXIT_CAP_MS), load.done]);
  // The child's stdout is fully read once waitExit returned.
  const resolved = await Promise.race([server.resolved, sleep(0).then(() => null)]);
  await load.close();
  // Responses the server finished that the client never received (only known
  // when the server exited on its own).
  const unreceived = server.answered === null ? null : server.answered - (load.tally.ok + load.tally.non2xx);
  return { ...load.tally, exit, resolved, unreceived, stderr: server.stderr };
}

let oursLost = 0;
let oursRoundsRun = 0;
let oursOk = true;
for (const client of clients) {
  for (const strategy of servers) {
    const n = strategy === "ours" ? oursRounds : peerRounds;
    const results = [];
    for (let i = 0; i < n; i++) results.push(await round(strategy, client));
    const sum = (k) => results.reduce((a, r) => a + r[k], 0);
    const exits = results.map((r) => (r.exit.killed ? `>${EXIT_CAP_MS} killed` : `${Math.round(r.exit.ms)}`));
    // Up to 3 rounds: every value; more: the sum or the median, and the worst.
    const perRound = (values, fold) => (values.length <= 3 ? values.join("/") : fold(values));
    const sumMax = (vs) => `${vs.reduce((a, v) => a + (Number(v) || 0), 0)} (max ${Math.max(...vs.map((v) => Number(v) || 0))})`;
    const medMax = (vs) => (vs.some((v) => String(v).startsWith(">")) ? vs.filter((v) => String(v).startsWith(">")).length + " killed" : `${median(vs.map(Number))} (max ${Math.max(...vs.map(Number))})`);
    const codes = {};
    for (const r of results) for (const [c, k] of Object.entries(r.codes)) codes[c] = (codes[c] ?? 0) + k;
    if (strategy === "ours") {
      oursLost += sum("lost");
      oursRoundsRun += n;
      for (const r of results) if (r.exit.killed || r.exit.code !== 0 || r.lost > 0 || r.timeout > 0 || r.other > 0 || r.unreceived !== 0) oursOk = false;
    }
    for (const r of results) if (r.stderr.trim()) console.error(`[${strategy}/${client}] stderr: ${r.stderr.trim().split("\n").slice(0, 5).join(" | ")}`);
    printRow({
      server: names[strategy],
      client: clientName(client),
      rounds: n,
      ok: sum("ok"),
      lost: perRound(results.map((r) => r.lost), sumMax),
      refused: sum("refused"),
      "timeout/other": `${sum("timeout")}/${sum("other")}`,
      unreceived: perRound(results.map((r) => r.unreceived ?? "-"), sumMax),
      "conn:close": client === "autocannon" || client === "wrk" ? "-" : sum("connectionClose"),
      "resolved ms": perRound(results.map((r) => (r.resolved ? Math.round(r.resolved.ms) : "-")), medMax),
      "exit ms": perRound(exits, medMax),
      codes: Object.entries(codes).map(([c, k]) => `${c}×${k}`).join(" ") || "-",
    });
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : Math.round((s[m - 1] + s[m]) / 2);
}

function clientName(c) {
  return { agent: "http.Agent", undici: "undici Pool", autocannon: "autocannon", wrk: "wrk" }[c];
}

function printRow(row) {
  if (!printRow.done) {
    printRow.done = true;
    info("", "");
    console.log(Object.keys(row).map((k) => k.padEnd(width(k))).join(" "));
  }
  console.log(Object.entries(row).map(([k, v]) => String(v).padEnd(width(k))).join(" "));
}
function width(k) {
  return { server: 20, client: 12, rounds: 6, ok: 7, lost: 9, refused: 8, "timeout/other": 13, unreceived: 10, "conn:close": 10, "resolved ms": 16, "exit ms": 22 }[k] ?? 10;
}

console.log("");
info("lost: reset/EPIPE/hang-up/UND_ERR_SOCKET per request (wrk: read errors)", "");
info("refused: ECONNREFUSED (wrk: connect + write errors — wrk reports a refused", "");
info("  non-blocking connect as a write error; 'unreceived' cross-checks it)", "");
info("unreceived: responses the server finished minus responses the client got", "");
info("  (a client still running at the end of its load abandons its in-flight", "");
info("  requests, which counts here too; '-' when the server had to be killed)", "");
info(`SIGTERM at ${SIGTERM_AT_MS} ms into ${LOAD_MS} ms of load; deadline ${DRAIN_TIMEOUT_MS} ms; exit capped at ${EXIT_CAP_MS} ms`, "");
if (haveOurs) {
  bound(`ours: lost requests over ${oursRoundsRun} rounds, every client`, oursLost, 1, (v) => String(v));
  info("ours, every round: 0 lost/timeout/other, 0 unreceived, exit 0 on its own", oursOk ? "PASS" : "MISS");
}
