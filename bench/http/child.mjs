// Starts bench/http/drain-server.mjs in a child process (same Node binary as
// the bench) and exposes its port, its "resolved" line and its exit.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const defaultScript = fileURLToPath(new URL("./drain-server.mjs", import.meta.url));

/** `script`: the server child to run (default drain-server.mjs; h2-drain-server.mjs speaks the same lines). */
export function startServer(strategy, options = {}, { script = defaultScript } = {}) {
  const child = spawn(process.execPath, [script, strategy, JSON.stringify(options)], { stdio: ["ignore", "pipe", "pipe"] });
  let buffer = "";
  let stderr = "";
  let onReady;
  let onResolved;
  const ready = new Promise((resolve, reject) => {
    onReady = resolve;
    child.once("exit", (code, signal) => reject(new Error(`server ${strategy} exited before ready (${code ?? signal}): ${stderr}`)));
  });
  const resolved = new Promise((resolve) => (onResolved = resolve));
  let answered = null;
  let h2 = null;
  const statsWaiters = [];
  child.stdout.on("data", (chunk) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const [word, a, ...rest] = line.split(" ");
      if (word === "ready") onReady(Number(a));
      else if (word === "answered") answered = Number(a);
      else if (word === "stats") statsWaiters.shift()?.({ answered: Number(a), cpuMicros: Number(rest[0]) });
      else if (word === "h2") h2 = JSON.parse([a, ...rest].join(" "));
      else if (word === "resolved") onResolved({ ms: Number(a), value: JSON.parse(rest.join(" ") || "null") });
    }
  });
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, at: performance.now() })));
  // 'exit' can come before the last stdout lines were read; 'close' comes after.
  const closed = new Promise((resolve) => child.once("close", resolve));
  return {
    child,
    ready,
    resolved,
    exited,
    /** Responses the server finished, known once it exited on its own. */
    get answered() {
      return answered;
    },
    /** h2-drain-server.mjs: its latest "h2 <json>" stream counts (SIGUSR2 or exit), else null. */
    get h2() {
      return h2;
    },
    get stderr() {
      return stderr;
    },
    /** Asks the server (SIGUSR2) for { answered, cpuMicros } so far. */
    stats() {
      const p = new Promise((resolve) => statsWaiters.push(resolve));
      child.kill("SIGUSR2");
      return p;
    },
    /** Sends SIGTERM; returns the instant it was sent. */
    term() {
      const at = performance.now();
      child.kill("SIGTERM");
      return at;
    },
    /** Waits for exit up to `capMs` after `from`; kills the child past it. */
    async waitExit(from, capMs) {
      let timer;
      const capped = new Promise((resolve) => (timer = setTimeout(() => resolve(null), Math.max(0, from + capMs - performance.now()))));
      const result = await Promise.race([exited, capped]);
      clearTimeout(timer);
      if (result) {
        await closed;
        return { ms: result.at - from, code: result.code, signal: result.signal, killed: false };
      }
      child.kill("SIGKILL");
      await closed;
      return { ms: capMs, killed: true };
    },
  };
}
