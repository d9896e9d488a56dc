// Child process for the HTTP/2 drain benchmark: one http2 server (h2c, or h2
// over TLS with a cert/key pair the parent generated), one shutdown strategy,
// one round. Same protocol as drain-server.mjs, so child.mjs drives it:
//
//   node h2-drain-server.mjs <strategy> [json options]
//   strategy: ours | close | bare (no shutdown handling)
//   options: { protocol: "h2c" | "h2", cert, key (PEM file paths, h2 only),
//              drainTimeoutMs (3000), minDelayMs (5), maxDelayMs (20) }
//
// The handler answers after a random 5–20 ms delay, so streams are in flight
// when SIGTERM arrives. Lines printed: "ready <port>"; "resolved <ms> <json>"
// once the strategy's shutdown settled (ms from SIGTERM); "stats <answered>
// <cpu µs>" followed by "h2 <json>" on SIGUSR2 (so the parent can read the
// counts of a server it is about to kill); "answered <n>" and "h2 <json>" at
// a normal exit. The h2 JSON is the server's own view of every stream:
//
//   sessions     sessions opened
//   received     streams that reached the handler (HEADERS processed)
//   answered     responses finished (the whole response handed to the session)
//   aborted      streams that reached the handler and closed without a
//                finished response, or with a non-zero RST_STREAM code:
//                started, then lost
//   afterTerm    responses finished after SIGTERM
//   closedOkAfterTerm  streams that closed after SIGTERM with a finished
//                response and no RST code (what the ShutdownReport's
//                requestsCompletedWhileDraining counts)
//   openAtExit   streams still open when the process exited
//   rst          RST_STREAM codes seen on closed streams { code: count }
//   goawayIds    last-stream-ids of the GOAWAY frames the sessions received
//                from the client (none expected)
import http2 from "node:http2";
import { readFileSync, writeSync } from "node:fs";
import { performance } from "node:perf_hooks";

const strategy = process.argv[2] ?? "ours";
const opts = { protocol: "h2c", drainTimeoutMs: 3000, minDelayMs: 5, maxDelayMs: 20, ...JSON.parse(process.argv[3] ?? "{}") };

const counts = { sessions: 0, received: 0, answered: 0, aborted: 0, afterTerm: 0, closedOkAfterTerm: 0, openAtExit: 0, rst: {}, goawayIds: [] };
let open = 0;
let sigtermAt = 0;
const h2line = () => `h2 ${JSON.stringify({ ...counts, openAtExit: open })}\n`;

process.on("exit", () => writeSync(1, `answered ${counts.answered}\n${h2line()}`));
process.on("SIGUSR2", () => {
  const { user, system } = process.cpuUsage();
  process.stdout.write(`stats ${counts.answered} ${user + system}\n${h2line()}`);
});

function handler(req, res) {
  req.resume();
  const delay = opts.minDelayMs + Math.floor(Math.random() * (opts.maxDelayMs - opts.minDelayMs + 1));
  setTimeout(() => {
    if (res.stream.destroyed || res.stream.closed) return; // counted as aborted on 'close'
    res.setHeader("content-type", "text/plain");
    res.end("ok\n");
  }, delay);
}

const server =
  opts.protocol === "h2"
    ? http2.createSecureServer({ cert: readFileSync(opts.cert), key: readFileSync(opts.key) }, handler)
    : http2.createServer(handler);

server.on("session", (session) => {
  counts.sessions++;
  session.on("goaway", (_code, lastStreamId) => counts.goawayIds.push(lastStreamId));
  session.on("error", () => {}); // counted per stream
});
// 'stream' fires for every stream whose HEADERS the session processed, before
// the compatibility layer calls the handler.
server.on("stream", (stream) => {
  counts.received++;
  open++;
  let finished = false;
  // 'finish' on the writable side: END_STREAM with the last DATA was handed
  // to nghttp2 (the response is complete as far as the server is concerned).
  stream.once("finish", () => {
    finished = true;
    counts.answered++;
    if (sigtermAt > 0) counts.afterTerm++;
  });
  stream.on("error", () => {});
  stream.once("close", () => {
    open--;
    const code = stream.rstCode ?? 0;
    if (code !== 0) counts.rst[code] = (counts.rst[code] ?? 0) + 1;
    if (!finished || code !== 0) counts.aborted++;
    else if (sigtermAt > 0) counts.closedOkAfterTerm++;
  });
});

function report(value) {
  process.stdout.write(`resolved ${(performance.now() - sigtermAt).toFixed(1)} ${JSON.stringify(value ?? null)}\n`);
}

let shutdown = null; // () => Promise<unknown>
switch (strategy) {
  case "bare":
    break;
  case "close":
    // The http2 server's own close(): stops listening; on Node ≤ 22 it leaves
    // the sessions alone, on Node 24 it closes them (one GOAWAY each).
    shutdown = () => new Promise((resolve) => server.close(() => resolve("closed")));
    break;
  case "ours": {
    const { serveOurs } = await import("./ours.mjs");
    serveOurs(server, { drainTimeoutMs: opts.drainTimeoutMs }, report);
    break;
  }
  default:
    console.error(`unknown strategy ${strategy}`);
    process.exit(2);
}

if (strategy === "ours") {
  // Registered before serve()'s own listener runs; only records the instant.
  process.prependListener("SIGTERM", () => {
    sigtermAt = performance.now();
  });
} else {
  process.once("SIGTERM", () => {
    sigtermAt = performance.now();
    if (shutdown) shutdown().then(report, (err) => report({ error: String(err) }));
  });
}

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
