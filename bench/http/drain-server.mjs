// Child process for the HTTP drain benchmarks: one server, one shutdown
// strategy, one round. The parent reads "ready <port>" from stdout, drives
// load, sends SIGTERM and times how long this process takes to exit.
//
//   node drain-server.mjs <strategy> [json options]
//   strategy: ours | close | terminator | stoppable | bare (no shutdown handling)
//             | loaded (bare + the package loaded and shutdown() installed, no serve())
//             | subscribed (ours + a subscriber on every cancelkit diagnostics channel)
//
// Every strategy gets the same handler (a random 0–20 ms delay, then a small
// body) and, where it has one, the same deadline (drainTimeoutMs, default 3 s).
// Lines printed: "ready <port>", then "resolved <ms> <json>" once the
// strategy's shutdown settled (ms from SIGTERM), and "answered <n>" (responses
// the server finished) at exit. Nothing else keeps the
// process alive: a strategy that drains correctly lets it exit on its own.
import http from "node:http";
import { writeSync } from "node:fs";
import { performance } from "node:perf_hooks";

const strategy = process.argv[2] ?? "ours";
const opts = { drainTimeoutMs: 3000, idleGraceMs: 500, maxDelayMs: 20, ...JSON.parse(process.argv[3] ?? "{}") };

let answered = 0; // responses fully handed to the kernel
// Printed on a normal exit (not when the parent had to SIGKILL us).
process.on("exit", () => writeSync(1, `answered ${answered}\n`));
// For the throughput bench: SIGUSR2 asks for "stats <answered> <cpu µs>", so
// the parent can compute CPU time per request over a window (a figure other
// processes on a busy machine disturb far less than requests per second).
process.on("SIGUSR2", () => {
  const { user, system } = process.cpuUsage();
  process.stdout.write(`stats ${answered} ${user + system}\n`);
});

let ready = () => true; // /healthz: ours answers from graceful.isReady; the peers have no readiness
function handler(req, res) {
  if (req.url === "/healthz") {
    res.statusCode = ready() ? 200 : 503;
    res.end();
    return;
  }
  req.resume();
  res.once("finish", () => answered++);
  const delay = opts.maxDelayMs > 0 ? Math.floor(Math.random() * (opts.maxDelayMs + 1)) : 0;
  const reply = () => {
    res.setHeader("content-type", "text/plain");
    res.end("ok\n");
  };
  if (delay === 0) reply();
  else setTimeout(reply, delay);
}

const server = http.createServer(handler);
let shutdown; // () => Promise<unknown>
let sigtermAt = 0;

function report(value) {
  process.stdout.write(`resolved ${(performance.now() - sigtermAt).toFixed(1)} ${JSON.stringify(value ?? null)}\n`);
}

switch (strategy) {
  case "bare":
    break;
  case "loaded": {
    // A control for the throughput bench: the same process as "ours" (the
    // package loaded, shutdown() installed) without serve().
    await import("../../dist/http/index.js");
    const signals = await import("../../dist/signals/index.js");
    signals.shutdown();
    break;
  }
  case "close":
    shutdown = () => new Promise((resolve) => server.close(() => resolve("closed")));
    break;
  case "terminator": {
    const { createHttpTerminator } = await import("http-terminator");
    const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: opts.drainTimeoutMs });
    shutdown = () => terminator.terminate().then(() => "terminated");
    break;
  }
  case "stoppable": {
    const { default: stoppable } = await import("stoppable");
    stoppable(server, opts.drainTimeoutMs);
    shutdown = () => new Promise((resolve) => server.stop((err, gracefully) => resolve({ err: err?.code ?? null, gracefully })));
    break;
  }
  case "subscribed":
  case "ours": {
    if (strategy === "subscribed") {
      // What a logger or tracer attached to cancelkit's lifecycle events costs.
      const { subscribe } = await import("node:diagnostics_channel");
      let events = 0;
      for (const name of ["cancelkit:serve:state", "cancelkit:serve:report", "cancelkit:shutdown", "cancelkit:watchdog"]) subscribe(name, () => events++);
      process.on("exit", () => writeSync(2, `cancelkit events ${events}\n`));
    }
    const { serveOurs } = await import("./ours.mjs");
    const graceful = serveOurs(server, { drainTimeoutMs: opts.drainTimeoutMs, idleGraceMs: opts.idleGraceMs, beforeCloseMs: opts.beforeCloseMs ?? 0 }, report);
    ready = () => graceful.isReady;
    break;
  }
  default:
    console.error(`unknown strategy ${strategy}`);
    process.exit(2);
}

if (strategy !== "ours" && strategy !== "subscribed") {
  process.once("SIGTERM", () => {
    sigtermAt = performance.now();
    if (shutdown) shutdown().then(report, (err) => report({ error: String(err) }));
  });
} else {
  // Registered after serve()'s own listener; only records the instant.
  process.prependListener("SIGTERM", () => {
    sigtermAt = performance.now();
  });
}

server.listen(opts.port ?? 0, "127.0.0.1", () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
