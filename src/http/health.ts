/*
 * Readiness and liveness request handlers, mounted in an app or served on
 * their own port.
 *
 * Invariants:
 * 1. Readiness reads `graceful.isReady` and nothing else of the drain: 503
 *    from the moment shutdown starts (during `beforeCloseMs` too), without
 *    running a check.
 * 2. A check has at most one run in flight. A probe that arrives while it
 *    runs shares its answer; a run that outlives `timeoutMs` is aborted
 *    (its `signal`) and answers as failed, and the next run starts only once
 *    it has actually settled (a check that ignores its signal never piles up).
 * 3. Nothing here keeps the process alive: the only timer is the check's
 *    timeout, `unref()`ed and cleared when the check settles.
 */
import * as http from "node:http";
import type * as http2 from "node:http2";
import { CancellationToken } from "../cancel/cancellation-token.js";
import { assertDuration, assertOptions, typeError } from "../internal/errors.js";
import { serve, type GracefulServer } from "./serve.js";

/**
 * A user check (`db.ping()`): fulfils when healthy, rejects (or throws) when
 * not. `signal` is aborted with a `TimeoutError` `DOMException` when the
 * check outlives `timeoutMs`; pass it on (`fetch`, a driver's own signal).
 */
export type HealthCheck = (signal: AbortSignal) => unknown;

/** Options of {@link readinessHandler} and {@link livenessHandler}. */
export interface HealthHandlerOptions {
  /** Named checks, all run for each probe (each at most once at a time). */
  checks?: Readonly<Record<string, HealthCheck>>;
  /**
   * How long a check may run before it counts as failed and its signal is aborted.
   * @defaultValue 1000
   */
  timeoutMs?: number;
}

/** Options of {@link healthServer}. */
export interface HealthServerOptions {
  /** Options of the readiness handler. */
  readiness?: HealthHandlerOptions;
  /** Options of the liveness handler. */
  liveness?: HealthHandlerOptions;
  /**
   * The readiness path (the query string is ignored).
   * @defaultValue "/ready"
   */
  readyPath?: string;
  /**
   * The liveness path (the query string is ignored).
   * @defaultValue "/live"
   */
  livePath?: string;
}

/**
 * A request handler for `node:http`, `node:https` and the `node:http2`
 * compatibility API; it also fits an express or koa-style route (extra
 * arguments are ignored). It answers JSON and never calls `next`.
 */
export type HealthHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

type Outcome = { ok: true } | { ok: false; error: unknown };

interface CheckRun {
  answer: Promise<Outcome>;
}

/** Runs one named check, at most once at a time (invariant 2). */
function checkRunner(check: HealthCheck, timeoutMs: number): () => Promise<Outcome> {
  let current: CheckRun | null = null;
  return () => {
    if (current !== null) return current.answer;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new DOMException(`The check did not answer within ${timeoutMs} ms`, "TimeoutError"));
        resolve({ ok: false, error: controller.signal.reason });
      }, timeoutMs);
      timer.unref();
    });
    const settled = new Promise<unknown>((resolve) => resolve(check(controller.signal))).then(
      (): Outcome => ({ ok: true }),
      (error: unknown): Outcome => ({ ok: false, error }),
    );
    const run: CheckRun = { answer: Promise.race([settled, timedOut]) };
    current = run;
    void settled.then(() => {
      clearTimeout(timer);
      if (current === run) current = null;
    });
    return run.answer;
  };
}

function describeFailure(error: unknown): string {
  if (error instanceof Error || error instanceof DOMException) return `${error.name}: ${error.message}`;
  return String(error);
}

function parseHealthOptions(action: string, options: HealthHandlerOptions | undefined): Array<[string, () => Promise<Outcome>]> {
  assertOptions(action, options, ["checks", "timeoutMs"]);
  const timeoutMs = options?.timeoutMs === undefined ? 1000 : options.timeoutMs;
  assertDuration(action, "options.timeoutMs", timeoutMs);
  const checks = options?.checks === undefined ? {} : options.checks;
  if (typeof checks !== "object" || checks === null) throw typeError(action, "options.checks", "an object of functions", checks);
  return Object.entries(checks).map(([name, check]) => {
    if (typeof check !== "function") throw typeError(action, `options.checks.${name}`, "a function", check);
    return [name, checkRunner(check, timeoutMs)];
  });
}

function answer(req: { method?: string | undefined }, res: http.ServerResponse | http2.Http2ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  const r = res as http.ServerResponse;
  if (r.headersSent) return;
  r.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
  });
  r.end(req.method === "HEAD" ? undefined : text);
}

function handler(runners: Array<[string, () => Promise<Outcome>]>, ready: (() => boolean) | null): HealthHandler {
  return (req, res) => {
    if (ready !== null && !ready()) {
      answer(req, res, 503, { status: "unavailable", reason: "shutting down" });
      return;
    }
    if (runners.length === 0) {
      answer(req, res, 200, { status: "ok", checks: {} });
      return;
    }
    void Promise.all(runners.map(([, run]) => run())).then((outcomes) => {
      const checks: Record<string, string> = {};
      let ok = true;
      outcomes.forEach((outcome, i) => {
        checks[runners[i]![0]] = outcome.ok ? "ok" : describeFailure(outcome.error);
        ok &&= outcome.ok;
      });
      // Shutdown may have started while the checks ran (invariant 1).
      if (ready !== null && !ready()) answer(req, res, 503, { status: "unavailable", reason: "shutting down", checks });
      else answer(req, res, ok ? 200 : 503, { status: ok ? "ok" : "unavailable", checks });
    });
  };
}

function isGraceful(value: unknown): value is GracefulServer {
  return typeof value === "object" && value !== null && typeof (value as GracefulServer).isReady === "boolean" && typeof (value as GracefulServer).shutdown === "function";
}

/**
 * Creates a readiness handler: 200 while `graceful` is ready and every check
 * passes, 503 from the moment its shutdown starts (during `beforeCloseMs`,
 * which exists for exactly this) or when a check fails.
 *
 * The body is JSON: `{"status":"ok","checks":{"db":"ok"}}`, or
 * `{"status":"unavailable","reason":"shutting down"}`, or
 * `{"status":"unavailable","checks":{"db":"TimeoutError: …"}}`. `HEAD`
 * gets the status without a body. Once shutdown has started no check runs.
 *
 * Each check runs when a probe arrives, at most one run at a time per
 * check: probes that arrive meanwhile share its answer. A run that outlives
 * `timeoutMs` answers as failed and its `signal` is aborted with a
 * `TimeoutError`; the next probe starts a new run only once it settled.
 * A check that throws or rejects fails; nothing it does reaches the process.
 * Nothing here keeps the process alive.
 *
 * Mount it in the served app (`if (req.url === "/ready") return ready(req,
 * res)`, or `app.get("/ready", ready)` in express), or serve it on its own
 * port with {@link healthServer}.
 *
 * @param graceful - what `serve()` returned for the app.
 * @param options - see {@link HealthHandlerOptions}.
 * @throws {TypeError} when `graceful` is not what `serve()` returns, or an
 *   option is unknown or has the wrong type.
 * @throws {RangeError} when `timeoutMs` is negative or not finite.
 *
 * @example Readiness mounted in the app, with a database check
 * ```ts
 * import { createServer } from "node:http";
 * import { serve, readinessHandler } from "cancelkit/http";
 * const db = { ping: async (_: { signal: AbortSignal }) => {} };
 * const server = createServer((req, res) => (req.url === "/ready" ? ready(req, res) : res.end("hello")));
 * const graceful = serve(server, { beforeCloseMs: 5_000 });
 * const ready = readinessHandler(graceful, { checks: { db: (signal) => db.ping({ signal }) } });
 * console.assert(graceful.isReady === false); // not listening yet
 * await graceful.shutdown();
 * ```
 */
export function readinessHandler(graceful: GracefulServer, options?: HealthHandlerOptions): HealthHandler {
  const action = "create readinessHandler()";
  if (!isGraceful(graceful)) throw typeError(action, "graceful", "what serve() returns", graceful);
  return handler(parseHealthOptions(action, options), () => graceful.isReady);
}

/**
 * Creates a liveness handler: 200 while every check passes, 503 when one
 * fails. Draining does not change it: a process that is draining is alive,
 * and an orchestrator that restarts it for failing liveness would cut the
 * drain short. Checks run as for {@link readinessHandler}.
 *
 * @param options - see {@link HealthHandlerOptions}.
 * @throws {TypeError} when an option is unknown or has the wrong type.
 * @throws {RangeError} when `timeoutMs` is negative or not finite.
 *
 * @example Liveness with no check: 200 while the event loop answers
 * ```ts
 * import { createServer } from "node:http";
 * import { livenessHandler } from "cancelkit/http";
 * const live = livenessHandler();
 * const server = createServer((req, res) => (req.url === "/live" ? live(req, res) : res.end("hello")));
 * console.assert(server.listening === false);
 * ```
 */
export function livenessHandler(options?: HealthHandlerOptions): HealthHandler {
  return handler(parseHealthOptions("create livenessHandler()", options), null);
}

/**
 * Creates an HTTP server that answers readiness on `readyPath` and liveness
 * on `livePath` (404 elsewhere), for probes on a port of their own
 * (lightship style), and drains it *after* `graceful`: it keeps answering
 * (readiness 503, liveness 200) while the app drains, and its own drain
 * starts when `graceful`'s state becomes `"closed"`.
 *
 * Returns the health server's own `GracefulServer`: call
 * `health.server.listen(port)`, and `await health.shutdown()` for its report
 * (or just let the process exit: nothing of it outlives its drain).
 *
 * @param graceful - what `serve()` returned for the app.
 * @param options - see {@link HealthServerOptions}.
 * @throws {TypeError} when `graceful` is not what `serve()` returns, or an
 *   option is unknown or has the wrong type.
 * @throws {RangeError} when a `timeoutMs` is negative or not finite.
 *
 * @example Probes on port 9000, the app on 8080
 * ```ts
 * import { shutdown } from "cancelkit/signals";
 * import { serve, healthServer } from "cancelkit/http";
 * const stop = shutdown();
 * const graceful = serve((req, res) => res.end("hello"), { signal: stop, beforeCloseMs: 5_000 });
 * const health = healthServer(graceful, { readiness: { checks: { cache: async () => {} } } });
 * graceful.server.listen(8080);
 * health.server.listen(9000);
 * await stop.cancelled();
 * const [app, probes] = await Promise.all([graceful.shutdown(), health.shutdown()]);
 * console.assert(app.deadlineHit === false && probes.deadlineHit === false);
 * ```
 */
export function healthServer(graceful: GracefulServer, options?: HealthServerOptions): GracefulServer {
  const action = "create healthServer()";
  if (!isGraceful(graceful)) throw typeError(action, "graceful", "what serve() returns", graceful);
  assertOptions(action, options, ["readiness", "liveness", "readyPath", "livePath"]);
  const readyPath = options?.readyPath === undefined ? "/ready" : options.readyPath;
  const livePath = options?.livePath === undefined ? "/live" : options.livePath;
  for (const [name, path] of [["options.readyPath", readyPath], ["options.livePath", livePath]] as const) {
    if (typeof path !== "string" || !path.startsWith("/")) throw typeError(action, name, "a path starting with /", path);
  }
  const ready = handler(parseHealthOptions(`${action} readiness`, options?.readiness), () => graceful.isReady);
  const live = handler(parseHealthOptions(`${action} liveness`, options?.liveness), null);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === readyPath) ready(req, res);
    else if (path === livePath) live(req, res);
    else answer(req, res, 404, { status: "not found" });
  });
  // Closed last: the health server's drain starts once the app's is over.
  const appClosed = new CancellationToken();
  const state = graceful.state.clone();
  void state.waitFor((s) => s === "closed").then(
    () => appClosed.cancel(),
    () => appClosed.cancel(),
  ).finally(() => state.close());
  return serve(server, { signal: appClosed });
}
