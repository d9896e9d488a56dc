/*
 * Keep-alive load drivers shared by the HTTP load suites (not a test file:
 * vitest only collects *.test.ts). Every request's outcome is classified the
 * way scenario 9 asks: ok, refused (ECONNREFUSED — the server stopped
 * listening, harmless) and lost (reset, EPIPE, "socket hang up",
 * UND_ERR_SOCKET — a request the server accepted and dropped), kept apart.
 *
 * Loops are bounded in count (`maxPerLoop`) and end at their first refused
 * connection, which is how they end once the server has drained; traffic is
 * loopback only. Nothing here waits on the wall clock.
 */
import http from "node:http";
import { Pool } from "undici";

export type Outcome = "ok" | "non2xx" | "refused" | "lost" | "other";

export interface Tally {
  ok: number;
  non2xx: number;
  refused: number;
  lost: number;
  other: number;
  /** Responses that carried `Connection: close` (the drain told the client). */
  connectionClose: number;
  /** Codes or messages of lost and other failures, for the assertion message. */
  failures: string[];
  /** Loops that ended at their count bound rather than at a refusal. */
  exhausted: number;
}

export function emptyTally(): Tally {
  return { ok: 0, non2xx: 0, refused: 0, lost: 0, other: 0, connectionClose: 0, failures: [], exhausted: 0 };
}

const LOST = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "ECONNABORTED"]);

/** Classifies one failed request. */
export function classify(err: unknown): Outcome {
  const e = err as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  if (code === "ECONNREFUSED") return "refused";
  if ((code !== undefined && LOST.has(code)) || /socket hang up|other side closed/i.test(String(e?.message))) return "lost";
  return "other";
}

interface Response {
  status: number;
  connection: string | undefined;
}

/** One request function per client kind; `close()` releases the client's sockets. */
export interface LoadClient {
  request(path: string): Promise<Response>;
  close(): Promise<void>;
}

/** Node's `http.Agent` with keep-alive: no retries, the most fragile client. */
export function agentClient(port: number, maxSockets: number): LoadClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  return {
    request: (path) =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
          res.on("error", reject);
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        });
        req.on("error", reject);
      }),
    close: async () => agent.destroy(),
  };
}

/** undici's `Pool` (the engine under Node's `fetch`). */
export function undiciClient(port: number, connections: number): LoadClient {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections });
  return {
    request: async (path) => {
      const res = await pool.request({ path, method: "GET" });
      await res.body.text();
      const connection = res.headers.connection;
      return { status: res.statusCode, connection: Array.isArray(connection) ? connection.join(",") : connection };
    },
    close: () => pool.close(),
  };
}

export interface LoadOptions {
  /** Concurrent request loops. */
  loops: number;
  /** Upper bound on requests per loop. */
  maxPerLoop: number;
  path?: string;
  /** Called after every ok response with the running total of ok responses. */
  onOk?: (ok: number) => void;
}

/**
 * Runs `loops` request loops against `client`, each until its first refused
 * connection or `maxPerLoop` requests. A lost request is counted and the loop
 * goes on (a real client would retry), so one loss never hides another.
 */
export async function runLoad(client: LoadClient, tally: Tally, options: LoadOptions): Promise<void> {
  const path = options.path ?? "/";
  const loop = async (): Promise<void> => {
    for (let i = 0; i < options.maxPerLoop; i++) {
      try {
        const res = await client.request(path);
        if (res.status >= 200 && res.status < 300) {
          tally.ok++;
          options.onOk?.(tally.ok);
        } else tally.non2xx++;
        if (res.connection?.toLowerCase() === "close") tally.connectionClose++;
      } catch (err) {
        const outcome = classify(err);
        tally[outcome]++;
        if (outcome === "refused") return;
        const e = err as { code?: string; message?: string };
        tally.failures.push(e?.code ?? e?.message ?? String(err));
      }
    }
    tally.exhausted++;
  };
  await Promise.all(Array.from({ length: options.loops }, loop));
}

/**
 * Waits (polling, at most `maxMs`) until the TCP handle counts are back to
 * `baseline`, and returns them. Destroyed sockets release their handle a few
 * event-loop turns later; a leak never comes back down.
 */
export async function settledHandles(baseline: { sockets: number; servers: number }, maxMs = 2000): Promise<{ sockets: number; servers: number }> {
  for (let waited = 0; ; waited += 10) {
    const now = socketHandles();
    if ((now.sockets <= baseline.sockets && now.servers <= baseline.servers) || waited >= maxMs) return now;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Counts of the handle kinds a leaked socket or server would show up as. */
export function socketHandles(): { sockets: number; servers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((r) => r === "TCPSocketWrap").length,
    servers: info.filter((r) => r === "TCPServerWrap").length,
  };
}
