// h2load (Debian package nghttp2-client) as an HTTP/2 load client for the
// drain benchmark, and a throwaway self-signed certificate for h2 over TLS.
// Everything targets 127.0.0.1 and is bounded in time: h2load runs for a
// fixed duration (-D) and is killed if it outlives it by `killAfterMs`.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const which = (bin) => {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
};

let h2loadPath;
/** The h2load binary, or null when it is not installed. */
export function findH2load() {
  if (h2loadPath === undefined) h2loadPath = which("h2load");
  return h2loadPath;
}

/**
 * Parses h2load's summary. In timing-based mode (-D) h2load sets "total" to
 * "done" at the end and its "failed"/"errored" sums can wrap around (requests
 * it never issued are subtracted as size_t), so only `started`, `done`,
 * `succeeded` and the status codes are used by the bench:
 * - started: streams submitted during the measurement (HEADERS queued on an
 *   open session whose peer had not sent GOAWAY);
 * - done: started streams that closed, with or without an error code
 *   (RST_STREAM, or REFUSED_STREAM when a GOAWAY's last-stream-id excluded
 *   them or they could no longer be sent);
 * - started − done: streams still open when their connection closed;
 * - goawayStops: "Process Request Failure" lines — a client whose next
 *   request could not be submitted because its session received GOAWAY
 *   (nghttp2_session_check_request_allowed): it stops issuing, the requests
 *   it would have sent are never started;
 * - connectFailures: "could not connect to host" lines (a reconnect refused).
 */
export function parseH2load(out) {
  const m = out.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const s = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  const n = (match, i) => (match ? Number(match[i]) : null);
  return {
    parsed: m !== null,
    total: n(m, 1),
    started: n(m, 2),
    done: n(m, 3),
    succeeded: n(m, 4),
    failed: n(m, 5),
    errored: n(m, 6),
    timeout: n(m, 7),
    status: { "2xx": n(s, 1), "3xx": n(s, 2), "4xx": n(s, 3), "5xx": n(s, 4) },
    protocol: out.match(/Application protocol: (\S+)/)?.[1] ?? null,
    goawayStops: (out.match(/^Process Request Failure:/gm) ?? []).length,
    connectFailures: (out.match(/could not connect to host/g) ?? []).length,
  };
}

/**
 * Starts h2load against `url` (http:// → h2c with prior knowledge, https://
 * → h2 via ALPN; h2load does not verify certificates). Resolves `done` with
 * { out, parsed, code, signal, killed }.
 */
export function runH2load(url, { clients = 8, streams = 10, seconds = 5, killAfterMs = 5000 } = {}) {
  if (!/^https?:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`h2load: loopback only (${url})`);
  const args = ["-t", "1", "-c", String(clients), "-m", String(streams), "-D", String(seconds), url];
  const child = spawn(findH2load(), args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, seconds * 1000 + killAfterMs);
  const done = new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ out, parsed: parseH2load(out), code, signal, killed });
    }),
  );
  return { child, done };
}

/**
 * A self-signed EC certificate for 127.0.0.1 in a fresh temporary directory,
 * or null when openssl is missing or fails. Call `remove()` when done.
 */
export function makeCert() {
  if (which("openssl") === null) return null;
  const dir = mkdtempSync(join(tmpdir(), "cancelkit-h2-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const r = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
    { encoding: "utf8", timeout: 10_000 },
  );
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return { cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
