// Load drivers for the HTTP benchmarks. Each returns per-request outcomes,
// classified the way http-anchors §5.2 asks: ok (2xx), non2xx, refused
// (ECONNREFUSED: harmless, a load balancer fails over), lost (reset, EPIPE,
// "socket hang up", UND_ERR_SOCKET: a request the server accepted and
// dropped), timeout, other. Everything targets 127.0.0.1 and is bounded in
// time; nothing here retries on its own.
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

const LOST_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "ECONNABORTED"]);

/** Classifies one failed request. */
export function classify(err) {
  const code = err?.code ?? err?.cause?.code;
  if (code === "ECONNREFUSED") return "refused";
  if (LOST_CODES.has(code) || /socket hang up|other side closed/i.test(String(err?.message))) return "lost";
  if (/timed? ?out/i.test(String(err?.message)) || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") return "timeout";
  return "other";
}

export function emptyTally(client) {
  return { client, ok: 0, non2xx: 0, refused: 0, lost: 0, timeout: 0, other: 0, connectionClose: 0, codes: {} };
}

function count(tally, err) {
  const kind = classify(err);
  tally[kind]++;
  const code = err?.code ?? err?.cause?.code ?? err?.message ?? String(err);
  if (kind !== "refused") tally.codes[code] = (tally.codes[code] ?? 0) + 1;
  return kind;
}

/**
 * Runs `loops` concurrent request loops until `durationMs` passes. A loop
 * stops at its first refused connection (the server is gone; a real client
 * would try another instance); after a lost request it goes on.
 * Returns { tally, stop(): Promise<void> } — call stop() after the server
 * exited (idle keep-alive sockets stay open meanwhile, as a real client's
 * would, so "time to exit" is not helped by the client hanging up).
 */
function loops(client, n, durationMs, once, close) {
  const tally = emptyTally(client);
  const end = Date.now() + durationMs;
  const run = async () => {
    while (Date.now() < end) {
      try {
        const { status, connection } = await once();
        if (status >= 200 && status < 300) tally.ok++;
        else tally.non2xx++;
        if (connection === "close") tally.connectionClose++;
      } catch (err) {
        if (count(tally, err) === "refused") return;
        await sleep(5);
      }
    }
  };
  const done = Promise.all(Array.from({ length: n }, run));
  return { tally, done, close };
}

/** Node's http.Agent with keep-alive: the most common and most fragile client. */
export function agentLoad(port, { connections = 32, durationMs = 2000, bodyBytes = 0 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const body = bodyBytes > 0 ? "x".repeat(bodyBytes) : null;
  const once = () =>
    new Promise((resolve, reject) => {
      const options = body ? { method: "POST", headers: { "content-length": bodyBytes } } : { method: "GET" };
      const req = http.request({ host: "127.0.0.1", port, path: "/", agent, ...options }, (res) => {
        res.on("error", reject);
        res.on("data", () => {});
        res.on("end", () => resolve({ status: res.statusCode, connection: res.headers.connection }));
      });
      req.setTimeout(3000, () => req.destroy(Object.assign(new Error("request timed out"), { code: "ETIMEDOUT_CLIENT" })));
      req.on("error", reject);
      req.end(body ?? undefined);
    });
  return loops("http.Agent", connections, durationMs, once, async () => agent.destroy());
}

/** undici Pool (what Node's fetch is built on). */
export async function undiciLoad(port, { connections = 32, durationMs = 2000, bodyBytes = 0 } = {}) {
  const { Pool } = await import("undici");
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections, headersTimeout: 3000, bodyTimeout: 3000 });
  const request = bodyBytes > 0 ? { path: "/", method: "POST", body: "x".repeat(bodyBytes) } : { path: "/", method: "GET" };
  const once = async () => {
    const res = await pool.request(request);
    await res.body.text();
    return { status: res.statusCode, connection: res.headers.connection };
  };
  return loops("undici", connections, durationMs, once, () => pool.destroy().catch(() => {}));
}

/** autocannon; its reqError event carries the code of each failed request. */
export async function autocannonLoad(port, { connections = 32, durationMs = 2000, bodyBytes = 0 } = {}) {
  const { default: autocannon } = await import("autocannon");
  const tally = emptyTally("autocannon");
  const body = bodyBytes > 0 ? { method: "POST", body: "x".repeat(bodyBytes) } : {};
  const instance = autocannon({ url: `http://127.0.0.1:${port}/`, connections, duration: durationMs / 1000, timeout: 3, ...body });
  instance.on("response", (_client, status) => {
    if (status >= 200 && status < 300) tally.ok++;
    else tally.non2xx++;
  });
  instance.on("reqError", (err) => count(tally, err));
  const done = new Promise((resolve) => instance.on("done", resolve));
  return { tally, done, close: async () => instance.stop() };
}

let wrkPath;
/** The wrk binary, or null when it is not installed (Debian package `wrk`). */
export function findWrk() {
  if (wrkPath === undefined) {
    const r = spawnSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" });
    wrkPath = r.status === 0 ? r.stdout.trim() : null;
  }
  return wrkPath;
}

/** Parses wrk's summary. */
export function parseWrk(out) {
  const num = (re) => Number(out.match(re)?.[1] ?? 0);
  const m = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    connect: Number(m?.[1] ?? 0),
    read: Number(m?.[2] ?? 0),
    write: Number(m?.[3] ?? 0),
    timeout: Number(m?.[4] ?? 0),
  };
}

/** Runs wrk for whole seconds (POSTing `bodyBytes` through a generated Lua script when > 0); resolves { out, parsed }. */
export function runWrk(port, { connections = 32, threads = 2, durationMs = 2000, bodyBytes = 0 } = {}) {
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${Math.max(1, Math.round(durationMs / 1000))}s`, "--timeout", "3s"];
  let dir = null;
  if (bodyBytes > 0) {
    dir = mkdtempSync(join(tmpdir(), "cancelkit-wrk-"));
    writeFileSync(join(dir, "post.lua"), `wrk.method = "POST"\nwrk.body = string.rep("x", ${bodyBytes})\n`);
    args.push("-s", join(dir, "post.lua"));
  }
  const child = spawn(findWrk(), [...args, `http://127.0.0.1:${port}/`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const done = new Promise((resolve) =>
    child.on("close", () => {
      if (dir) rmSync(dir, { recursive: true, force: true });
      resolve({ out, parsed: parseWrk(out) });
    }),
  );
  return { child, done };
}

/**
 * wrk under shutdown: its summary counts socket errors by phase. A `read`
 * error is a request written on an open connection that saw EOF or a reset
 * before its response completed: lost. wrk connects non-blocking, so on
 * loopback a refused connection shows up as a `write` error (a synchronous
 * `connect` error would also end that wrk connection for good); write errors
 * are therefore counted as refused, and the bench cross-checks with the
 * server's own count of answered responses.
 */
export function wrkLoad(port, { connections = 32, durationMs = 2000, bodyBytes = 0 } = {}) {
  const tally = emptyTally("wrk");
  const { child, done: finished } = runWrk(port, { connections, durationMs, bodyBytes });
  const done = finished.then(({ parsed }) => {
    tally.non2xx = parsed.non2xx;
    tally.ok = parsed.requests - parsed.non2xx;
    tally.refused = parsed.connect + parsed.write;
    tally.lost = parsed.read;
    tally.timeout = parsed.timeout;
    if (parsed.read) tally.codes.read = parsed.read;
    if (parsed.connect) tally.codes.connect = parsed.connect;
  });
  return { tally, done, close: async () => child.kill() };
}
