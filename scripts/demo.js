// npm run demo: cancelkit in a few seconds, no input needed.
//
// 1. A CancellationToken tree cancelled with a reason (callbacks in order)
//    and a timeout token.
// 2. A graceful HTTP shutdown, printed as it happens: a server started with
//    serve(), real clients (slow requests, an SSE stream, idle keep-alive
//    sockets), then SIGTERM sent to this very process. The slow requests
//    finish (told "Connection: close"), the stream ends when its request's
//    draining token fires, idle sockets are closed after the idle grace, a
//    newcomer is refused, and the process exits on its own — no
//    process.exit — after printing the ShutdownReport.
//
// Imports the built package (npm run demo builds it first).
import http from "node:http";
import net from "node:net";
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

const { CancellationToken } = await import("../dist/cancel/index.js");

let t0 = performance.now();
const stamp = () => `t=${((performance.now() - t0) / 1000).toFixed(3)}s`;
const log = (text) => console.log(`  ${stamp()}  ${text}`);
const reasonText = (r) => (r instanceof Error || r instanceof DOMException ? `${r.name}: ${r.message}` : JSON.stringify(r));

// A safety net only: unref()ed, so it never keeps the process alive. If the
// demo is still running after 20 s, something held a handle.
setTimeout(() => {
  console.error("demo: still running after 20 s — a handle was left open");
  process.exit(1);
}, 20_000).unref();

// ── 1. Tokens ─────────────────────────────────────────────────────────────
console.log("\n1. A CancellationToken tree\n");
{
  const app = new CancellationToken();
  const db = app.child();
  const httpToken = app.child();
  const request = httpToken.child();
  app.onCancel((r) => log(`app      callback 1, reason ${reasonText(r)}; the grandchild is already cancelled: ${request.isCancelled}`));
  app.onCancel(() => log(`app      callback 2 (registration order)`));
  db.onCancel(() => log(`app/db   callback (children in creation order)`));
  httpToken.onCancel(() => log(`app/http callback (pre-order: before its own child)`));
  request.onCancel((r) => log(`app/http/request callback, reason ${reasonText(r)}`));
  log("cancel(\"deploy v2\") on the root:");
  app.cancel("deploy v2");

  // Timeout timers are unref()ed like AbortSignal.timeout's; keepAlive: true
  // makes this one hold the process open while the demo waits on it.
  const timeout = CancellationToken.timeout(150, { keepAlive: true });
  const started = performance.now();
  const reason = await timeout.cancelled();
  log(`CancellationToken.timeout(150) cancelled after ${Math.round(performance.now() - started)} ms with ${reason.name}: ${reason.message}`);
}

// ── 2. Graceful HTTP shutdown ─────────────────────────────────────────────
const httpBuilt = existsSync(new URL("../dist/http/index.js", import.meta.url));
const httpApi = httpBuilt ? await import("../dist/http/index.js") : {};
if (typeof httpApi.serve !== "function") {
  console.log("\n2. Graceful HTTP shutdown: skipped (cancelkit/http is not built yet)\n");
} else {
  await httpDemo(httpApi);
}

async function httpDemo({ serve, requestToken, drainingToken }) {
  const IDLE_GRACE_MS = 1000;
  const SLOW = [
    { id: 1, ms: 1500, at: 400 },
    { id: 2, ms: 2600, at: 900 },
  ];
  const IDLE_AT = 1000;
  const SIGTERM_AT = 1400;

  console.log("\n2. Graceful HTTP shutdown (SIGTERM to this process mid-traffic)\n");

  // The shutdown source: cancelkit/signals' shutdown() when it is built,
  // otherwise a SIGTERM listener that cancels a token — the same thing, by hand.
  const signals = existsSync(new URL("../dist/signals/index.js", import.meta.url)) ? await import("../dist/signals/index.js") : {};
  let stop;
  if (typeof signals.shutdown === "function") {
    stop = signals.shutdown();
  } else {
    stop = new CancellationToken();
    process.once("SIGTERM", () => stop.cancel("SIGTERM"));
  }
  stop.onCancel((reason) => log(`SIGTERM received (${reasonText(reason)}), draining`));

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/slow") {
      const ms = Number(url.searchParams.get("ms"));
      // Aborted only by the drain deadline or by the client going away.
      await sleep(ms, undefined, { signal: requestToken(req).signal }).catch(() => {});
      res.end(`slow ${url.searchParams.get("id")} done\n`);
    } else if (url.pathname === "/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let n = 0;
      const tick = setInterval(() => res.write(`data: tick ${++n}\n\n`), 200);
      res.write(`data: tick ${n}\n\n`);
      const draining = drainingToken(req);
      draining.onCancel(() => {
        clearInterval(tick);
        res.end("event: bye\ndata: server is draining, reconnect elsewhere\n\n");
      });
      req.once("close", () => clearInterval(tick));
    } else {
      res.end("ok\n");
    }
  });

  const graceful = serve(server, { signal: stop, idleGraceMs: IDLE_GRACE_MS, drainTimeoutMs: 10_000 });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address();
  t0 = performance.now(); // the HTTP timeline starts at "listening"
  log(`server listening on http://127.0.0.1:${port} (idleGraceMs ${IDLE_GRACE_MS}, drainTimeoutMs 10000)`);

  // Watch the state channel: serving → draining → closed.
  (async () => {
    for await (const state of graceful.state) log(`state: ${state}`);
  })().catch(() => {});

  // An SSE stream.
  http.get({ host: "127.0.0.1", port, path: "/events", agent: false }, (res) => {
    let events = 0;
    res.setEncoding("utf8");
    res.on("data", (chunk) => {
      if (events++ === 0) log("SSE stream open, first event received");
      if (chunk.includes("event: bye")) log(`SSE stream: the server said bye after ${events} chunks (its drainingToken fired)`);
    });
    res.on("end", () => log("SSE stream ended cleanly"));
    res.socket.once("close", () => log("SSE socket closed by the server after the stream ended"));
  });

  // Slow requests on a keep-alive agent.
  const agent = new http.Agent({ keepAlive: true });
  const slowDone = SLOW.map(
    ({ id, ms, at }) =>
      new Promise((resolve) => {
        setTimeout(() => {
          log(`slow request ${id} sent (the handler takes ${(ms / 1000).toFixed(1)} s)`);
          http
            .get({ host: "127.0.0.1", port, path: `/slow?id=${id}&ms=${ms}`, agent }, (res) => {
              res.resume();
              res.on("end", () => {
                log(`slow request ${id} completed: ${res.statusCode} (Connection: ${res.headers.connection})`);
                resolve();
              });
            })
            .on("error", (err) => {
              log(`slow request ${id} FAILED: ${err.code ?? err.message}`);
              resolve();
            });
        }, at);
      }),
  );

  // Idle keep-alive sockets: one request each, then silence. Opened shortly
  // before SIGTERM, so the drain has to wait out their idle grace.
  const IDLE = 3;
  let idleClosed = 0;
  let idleFin = 0;
  let idleReset = 0;
  await sleep(IDLE_AT - (performance.now() - t0));
  await Promise.all(
    Array.from(
      { length: IDLE },
      () =>
        new Promise((resolve, reject) => {
          const socket = net.connect(port, "127.0.0.1");
          socket.setEncoding("latin1");
          socket.once("data", () => {
            socket.on("error", () => idleReset++);
            resolve();
          });
          socket.once("error", reject);
          socket.once("end", () => idleFin++);
          socket.once("close", () => {
            if (++idleClosed === IDLE) log(`idle sockets closed: ${IDLE}/${IDLE}, ${idleFin} with a FIN, ${idleReset} reset (idle for idleGraceMs since t=${(IDLE_AT / 1000).toFixed(1)}s)`);
          });
          socket.write("GET / HTTP/1.1\r\nHost: demo\r\nConnection: keep-alive\r\n\r\n");
        }),
    ),
  );
  log(`${IDLE} idle keep-alive sockets connected (one request each, then silent)`);

  await sleep(SIGTERM_AT - (performance.now() - t0));
  log("sending SIGTERM to this process (what Kubernetes or systemd would do)");
  process.kill(process.pid, "SIGTERM");

  // A newcomer during the drain is refused, never accepted and reset.
  await sleep(150);
  await new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      log("new connection during the drain: ACCEPTED (unexpected)");
      socket.destroy();
      resolve();
    });
    socket.once("error", (err) => {
      log(`new connection during the drain: ${err.code} (the listener is closed)`);
      resolve();
    });
  });

  const report = await graceful.shutdown();
  await Promise.all(slowDone);
  agent.destroy();
  log("shutdown complete");
  console.log("\n  ShutdownReport");
  for (const [key, value] of Object.entries(report)) {
    const shown =
      key === "startedAt" && typeof value === "number"
        ? new Date(value).toISOString()
        : typeof value === "number" && !Number.isInteger(value)
          ? `${value.toFixed(1)}${key.endsWith("Ms") ? " ms" : ""}`
          : JSON.stringify(value);
    console.log(`    ${key.padEnd(32)} ${shown}`);
  }
  console.log("");
  process.once("exit", (code) => console.log(`  ${stamp()}  process exits on its own (code ${code}): nothing was left holding the event loop\n`));
}
