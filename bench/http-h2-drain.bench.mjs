// HTTP/2 drain under load, h2load as the client (issue 5: scenario 9 for
// h2c and h2). A server in a child process (bench/http/h2-drain-server.mjs)
// answers every stream after 5–20 ms, so streams are in flight when SIGTERM
// arrives 0.7 s into the load; h2load (8 connections × 10 concurrent streams)
// keeps its connections open for the whole load, as a browser or a gRPC
// channel would. Per round we classify every stream h2load started — ok,
// lost (started, then reset or dropped), refused (never reached the handler:
// excluded by GOAWAY, safe to retry) — count the clients that stopped because
// GOAWAY told them to, and time how long the process took to exit.
//
// Servers: ours (serve() from dist/http on http2.createServer /
// createSecureServer) and the http2 server's own close() (Node ≤ 22 leaves
// sessions alone: it hangs while a client keeps its connection; Node 24
// closes each session with one GOAWAY). Same 3 s deadline for ours; a server
// still alive 4 s after SIGTERM is killed and reported as such.
//
// Env: HTTP_H2_DRAIN_ROUNDS (ours, default 3), HTTP_H2_DRAIN_PEER_ROUNDS
// (default 1), HTTP_H2_DRAIN_SERVERS / HTTP_H2_DRAIN_PROTOCOLS (comma lists:
// ours,close / h2c,h2), HTTP_H2_DRAIN_SECONDS (h2load -D, default 5),
// HTTP_H2_DRAIN_CLIENTS / HTTP_H2_DRAIN_STREAMS (h2load -c / -m, 8 / 10).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { header, bound, info } from "./harness.mjs";
import { startServer } from "./http/child.mjs";
import { findH2load, runH2load, makeCert } from "./http/h2load.mjs";

const LOAD_SECONDS = Number(process.env.HTTP_H2_DRAIN_SECONDS ?? 5); // h2load -D: longer than SIGTERM_AT + EXIT_CAP
const SIGTERM_AT_MS = 700;
const EXIT_CAP_MS = 4000;
const DRAIN_TIMEOUT_MS = 3000;
const CLIENTS = Number(process.env.HTTP_H2_DRAIN_CLIENTS ?? 8); // h2load -c
const STREAMS = Number(process.env.HTTP_H2_DRAIN_STREAMS ?? 10); // h2load -m

const oursRounds = Number(process.env.HTTP_H2_DRAIN_ROUNDS ?? 3);
const peerRounds = Number(process.env.HTTP_H2_DRAIN_PEER_ROUNDS ?? 1);
const pick = (env, all) => (process.env[env] ? all.filter((x) => process.env[env].split(",").includes(x)) : all);
const script = fileURLToPath(new URL("./http/h2-drain-server.mjs", import.meta.url));

header(`HTTP/2 drain under h2load (${CLIENTS} connections × ${STREAMS} streams)`);

if (findH2load() === null) {
  info("h2load", "h2load not installed: skipped (Debian: apt-get install -y nghttp2-client)");
  process.exit(0);
}
const haveOurs = existsSync(new URL("../dist/http/index.js", import.meta.url)) && typeof (await import("../dist/http/index.js")).serve === "function";
if (!haveOurs) info("ours", "skipped: dist/http has no serve() yet (npm run build after src/http lands)");

let protocols = pick("HTTP_H2_DRAIN_PROTOCOLS", ["h2c", "h2"]);
let cert = null;
if (protocols.includes("h2")) {
  cert = makeCert();
  if (cert === null) {
    info("h2 (TLS)", "skipped: openssl could not make a self-signed certificate");
    protocols = protocols.filter((p) => p !== "h2");
  }
}
const servers = pick("HTTP_H2_DRAIN_SERVERS", ["ours", "close"]).filter((s) => s !== "ours" || haveOurs);
const names = { ours: "cancelkit serve()", close: "http2 server.close()" };

/** `promise`, or null after `ms` (the timer is cleared either way). */
function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), null)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function round(strategy, protocol) {
  const options = { protocol, drainTimeoutMs: DRAIN_TIMEOUT_MS, ...(protocol === "h2" ? { cert: cert.cert, key: cert.key } : {}) };
  const server = startServer(strategy, options, { script });
  const port = await server.ready;
  const load = runH2load(`${protocol === "h2" ? "https" : "http"}://127.0.0.1:${port}/`, { clients: CLIENTS, streams: STREAMS, seconds: LOAD_SECONDS });
  await sleep(SIGTERM_AT_MS);
  const termAt = server.term();
  const exitedInTime = await within(server.exited, termAt + EXIT_CAP_MS - performance.now());
  // About to be killed: take the server's own stream counts first.
  if (exitedInTime === null) await within(server.stats(), 300);
  const exit = await server.waitExit(termAt, EXIT_CAP_MS);
  const h2load = await load.done;
  const resolved = await within(server.resolved, 0);
  return classify({ strategy, protocol, exit, resolved, h2load, h2: server.h2, stderr: server.stderr });
}

/**
 * Per round, from h2load's summary (client) and the server's own counts:
 *   S  = h2load succeeded (2xx/3xx, response received in full)
 *   D  = started − done: streams open when their connection closed
 *   R  = streams that reached the server's handler
 * lost    = R − S (reached the handler, response not received in full: reset,
 *           aborted, or finished but never delivered), or D if larger (a
 *           stream dropped with its connection may never have reached the
 *           server); for a killed server, every started stream not ok (no
 *           GOAWAY covered them: the client cannot know their fate)
 * refused = started − S − lost: started by h2load, never reached the handler,
 *           closed with REFUSED_STREAM (above the GOAWAY's last-stream-id, or
 *           no longer sendable after GOAWAY) — the client was told, safe to retry
 */
function classify(r) {
  const c = r.h2load.parsed;
  const h2 = r.h2;
  const row = { ...r, ok: null, lost: null, refused: null, dropped: null, closedWithError: null, aborted: h2?.aborted ?? null };
  if (!c.parsed) return row;
  const S = c.succeeded;
  row.ok = S;
  row.dropped = c.started - c.done;
  row.closedWithError = c.done - S;
  if (r.exit.killed || h2 === null) row.lost = c.started - S;
  else row.lost = Math.max(h2.received - S, row.dropped);
  row.refused = c.started - S - row.lost;
  return row;
}

const rows = [];
let oursLost = 0;
let oursRoundsRun = 0;
let oursOk = true;
const problems = [];
for (const protocol of protocols) {
  for (const strategy of servers) {
    const n = strategy === "ours" ? oursRounds : peerRounds;
    const results = [];
    for (let i = 0; i < n; i++) results.push(await round(strategy, protocol));
    for (const r of results) {
      const where = `[${strategy}/${protocol}]`;
      if (r.stderr.trim()) console.error(`${where} server stderr: ${r.stderr.trim().split("\n").slice(0, 5).join(" | ")}`);
      if (!r.h2load.parsed.parsed) problems.push(`${where} h2load printed no summary (exit ${r.h2load.code ?? r.h2load.signal}${r.h2load.killed ? ", killed" : ""}): ${r.h2load.out.trim().split("\n").slice(-3).join(" | ")}`);
      else if (r.h2load.parsed.protocol !== protocol) problems.push(`${where} h2load negotiated ${r.h2load.parsed.protocol}, expected ${protocol}`);
      if (strategy === "ours") {
        oursLost += r.lost ?? 0;
        oursRoundsRun++;
        const report = r.resolved?.value;
        // No report: the process exited before graceful.shutdown() resolved.
        if (r.lost === null || r.lost > 0 || r.dropped > 0 || r.aborted !== 0 || r.exit.killed || r.exit.code !== 0 || !report || report.deadlineHit) {
          oursOk = false;
          problems.push(`${where} lost ${r.lost}, dropped ${r.dropped}, aborted ${r.aborted}, exit ${JSON.stringify(r.exit)}, server ${JSON.stringify(r.h2)}, report ${JSON.stringify(report ?? null)}${report ? "" : " (process exited before shutdown() resolved)"}, h2load: ${r.h2load.out.match(/requests: .*/)?.[0]}`);
        }
      }
    }
    const sum = (k) => (results.some((r) => r[k] === null) ? "?" : results.reduce((a, r) => a + r[k], 0));
    const perRound = (values) => (values.length <= 3 ? values.join("/") : `${values.reduce((a, v) => a + (Number(v) || 0), 0)} (max ${Math.max(...values.map((v) => Number(v) || 0))})`);
    const exits = results.map((r) => (r.exit.killed ? `>${EXIT_CAP_MS} killed` : `${Math.round(r.exit.ms)}`));
    rows.push({
      server: names[strategy],
      proto: protocol,
      rounds: n,
      ok: sum("ok"),
      lost: perRound(results.map((r) => r.lost ?? "?")),
      refused: perRound(results.map((r) => r.refused ?? "?")),
      "goaway stops": perRound(results.map((r) => r.h2load.parsed.goawayStops)),
      "h2load drop:err": perRound(results.map((r) => `${r.dropped ?? "?"}:${r.closedWithError ?? "?"}`)),
      "srv aborted": perRound(results.map((r) => r.aborted ?? "?")),
      "drained srv:rep": perRound(results.map((r) => `${r.h2?.closedOkAfterTerm ?? "?"}:${r.resolved?.value?.requestsCompletedWhileDraining ?? "-"}`)),
      "resolved ms": perRound(results.map((r) => (r.resolved ? Math.round(r.resolved.ms) : "-"))),
      "exit ms": perRound(exits),
    });
  }
}
cert?.remove();

const widths = { server: 20, proto: 5, rounds: 6, ok: 7, lost: 10, refused: 9, "goaway stops": 12, "h2load drop:err": 16, "srv aborted": 11, "drained srv:rep": 18, "resolved ms": 13, "exit ms": 26 };
info("", "");
console.log(Object.keys(widths).map((k) => k.padEnd(widths[k])).join(" "));
for (const row of rows) console.log(Object.entries(row).map(([k, v]) => String(v).padEnd(widths[k] ?? 10)).join(" "));

console.log("");
info("ok: streams h2load got a full 2xx response for (its 'succeeded')", "");
info("lost: started, then reset or dropped = streams that reached the server's", "");
info("  handler minus ok (reset, aborted, or finished but never delivered), or", "");
info("  h2load's started − done if larger; for a killed server, every started", "");
info("  stream not ok (no GOAWAY covered them). Streams h2load sent on a", "");
info("  connection still in the listen backlog when the listener closed (reset", "");
info("  by the kernel, never a session) are dropped, hence lost", "");
info("refused: started by h2load, never reached the handler, closed with", "");
info("  REFUSED_STREAM (above the GOAWAY's last-stream-id, or unsendable after", "");
info("  GOAWAY): the client was told, safe to retry", "");
info("goaway stops: h2load clients whose next request was never started because", "");
info("  their session had received GOAWAY (h2load 'Process Request Failure'; in", "");
info("  -D mode h2load does not count those requests one by one)", "");
info("h2load drop:err: started − done (open when the connection closed) :", "");
info("  done − ok (closed with an error code: RST_STREAM or REFUSED_STREAM)", "");
info("srv aborted: streams that reached the handler and closed without a full", "");
info("  response or with an RST code (server's own count; killed: just before)", "");
info("drained srv:rep: streams closed with a full response after SIGTERM, by the", "");
info("  server's count : by the ShutdownReport (requestsCompletedWhileDraining;", "");
info("  '-' when no report: server.close(), or ours exited before shutdown()", "");
info("  resolved — see the problems listed below)", "");
info(`h2load -c ${CLIENTS} -m ${STREAMS} -D ${LOAD_SECONDS}; SIGTERM at ${SIGTERM_AT_MS} ms; deadline ${DRAIN_TIMEOUT_MS} ms; exit capped at ${EXIT_CAP_MS} ms`, "");
for (const p of problems) console.log(`  ${p}`);
if (haveOurs && servers.includes("ours")) {
  bound(`ours: streams lost (started then reset) = 0, ${oursRoundsRun} rounds`, oursLost, 1, (v) => String(v));
  info("ours, every round: 0 dropped/aborted, exit 0 on its own, report resolved", oursOk ? "PASS" : "MISS");
}
