// Time to close 1,000 idle keep-alive sockets (scenario 4 at scale): each
// socket served one request and then sits idle, as a browser or a pooled
// client leaves it. Ours ends idle sockets once they stayed idle for
// idleGraceMs (a client writing its next request at that instant is the
// reuse race the grace avoids), so the goal is ≤ idleGraceMs + 100 ms from
// shutdown() to the last socket closed and shutdown resolved. The peers close
// idle sockets at once (and race clients for it); they are printed for context.
//
// Env: HTTP_IDLE_SOCKETS (default 1000), HTTP_IDLE_GRACE_MS (default 500).
import http from "node:http";
import net from "node:net";
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { header, bound, info } from "./harness.mjs";

const SOCKETS = Number(process.env.HTTP_IDLE_SOCKETS ?? 1000);
const IDLE_GRACE_MS = Number(process.env.HTTP_IDLE_GRACE_MS ?? 500);
const CAP_MS = 5000;

header(`HTTP: close ${SOCKETS.toLocaleString("en-US")} idle keep-alive sockets`);
const haveOurs = existsSync(new URL("../dist/http/index.js", import.meta.url)) && typeof (await import("../dist/http/index.js")).serve === "function";
if (!haveOurs) info("ours", "skipped: dist/http has no serve() yet (npm run build after src/http lands)");

const fmtMs = (v) => `${v.toFixed(0)} ms`;

/** Opens one socket, sends one keep-alive GET, resolves once the full response arrived. */
function idleSocket(port, state) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let got = "";
    let done = false;
    socket.setEncoding("latin1");
    socket.on("data", (d) => {
      got += d;
      if (!done && got.endsWith("ok\n")) {
        done = true;
        resolve(socket);
      }
    });
    socket.on("error", (err) => {
      if (!done) reject(err);
      else state.errors[err.code] = (state.errors[err.code] ?? 0) + 1;
    });
    socket.on("end", () => state.fin++);
    socket.on("close", () => {
      state.closed++;
      if (state.closed === SOCKETS) state.allClosed?.();
    });
    socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
  });
}

async function scenario(name, install) {
  const server = http.createServer((req, res) => {
    req.resume();
    res.end("ok\n");
  });
  server.keepAliveTimeout = 60_000; // idle sockets stay idle for the whole run
  const shutdown = await install(server);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", 2048, resolve));
  const { port } = server.address();
  const state = { closed: 0, fin: 0, errors: {}, allClosed: null };
  const sockets = [];
  for (let i = 0; i < SOCKETS; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, SOCKETS - i) }, () => idleSocket(port, state)))));
  }
  const allClosed = new Promise((resolve) => (state.allClosed = resolve));
  const start = performance.now();
  let resolvedMs = null;
  const resolved = shutdown().then(() => (resolvedMs = performance.now() - start));
  let timer;
  const finished = await Promise.race([Promise.all([allClosed, resolved]).then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), CAP_MS)))]);
  clearTimeout(timer);
  const ms = performance.now() - start;
  for (const s of sockets) s.destroy();
  if (server.listening) server.close();
  server.closeAllConnections?.();
  const resets = Object.entries(state.errors).map(([c, k]) => `${c}×${k}`).join(" ") || "none";
  info(`${name}`, `${finished ? fmtMs(ms) : `>${CAP_MS} ms (not finished)`}; shutdown resolved ${resolvedMs === null ? "-" : fmtMs(resolvedMs)}; FIN seen on ${state.fin}/${SOCKETS}; client errors: ${resets}`);
  return finished ? ms : Infinity;
}

let oursMs = null;
if (haveOurs) {
  const { serve } = await import("../dist/http/index.js");
  oursMs = await scenario(`cancelkit serve() (idleGraceMs ${IDLE_GRACE_MS})`, (server) => {
    const graceful = serve(server, { idleGraceMs: IDLE_GRACE_MS, drainTimeoutMs: 3000 });
    return () => graceful.shutdown();
  });
}
await scenario("server.close()", (server) => () => new Promise((resolve) => server.close(resolve)));
{
  const { createHttpTerminator } = await import("http-terminator");
  await scenario("http-terminator 3.2", (server) => {
    const t = createHttpTerminator({ server, gracefulTerminationTimeout: 3000 });
    return () => t.terminate();
  });
}
{
  const { default: stoppable } = await import("stoppable");
  await scenario("stoppable 1.1", (server) => {
    stoppable(server, 3000);
    return () => new Promise((resolve) => server.stop(resolve));
  });
}
if (oursMs !== null) bound(`ours: all ${SOCKETS} closed + shutdown resolved (≤ idleGraceMs + 100)`, oursMs, IDLE_GRACE_MS + 100 + 1e-9, fmtMs);
