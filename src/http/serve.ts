/*
 * serve(): the shutdown coordinator for one or more node servers.
 *
 * Invariants:
 * 1. One coordinator owns a set of servers: one phase, one deadline, one
 *    report. The phase is the only state, and only moves forward:
 *    serving → stopping (`beforeCloseMs`, still serving) → draining →
 *    forcing (the deadline or `force()`, then the answer window) → closed.
 *    The public `state` watch is a projection of it, sent by `#enter()`
 *    alone (`sendReplace`, so it is stored even when every receiver was
 *    closed) and closed with the phase `closed`.
 * 2. The coordinator owns phases and the report; the trackers own the
 *    connections and their policy (./server-tracker.ts). Between them there
 *    is one interface each way: the tracker's methods, and `TrackerHost`.
 * 3. The drain is composed of the library's primitives: a lifetime token
 *    (request tokens are its children; cancelled at the deadline), a
 *    draining token (the soft notice), a `drained` token, a `force` token,
 *    and `select` over drained / force / deadline, biased so that drained
 *    wins a tie. `beforeCloseMs`, the deadline and the answer window are
 *    `sleep()`s: unreferenced (the servers and connections are what keep the
 *    process alive) and chained past 2³¹−1 ms like every duration of the
 *    library. The HTTP/2 GOAWAY timers are the only referenced ones (http2.ts).
 * 4. Shutdown starts only by `shutdown()`, `force()`, the signal, or, while
 *    serving, when Node reports every server closed by the application
 *    itself. Whether there is anything to drain is decided one microtask
 *    after it starts, so a `listen()` called right after (or still
 *    resolving its host) is drained, not left serving.
 * 5. After the report resolves no handle, listener or channel subscription
 *    of ours is left, and the returned object exposes the documented API
 *    and nothing else.
 */
import * as http from "node:http";
import type * as http2 from "node:http2";
import type * as https from "node:https";
import type * as net from "node:net";
import { CancellationToken } from "../cancel/cancellation-token.js";
import { checkSignal, isAborted, subscribeAbort } from "../internal/abort.js";
import { assertDuration, assertOptions, ShutdownTimeoutError, typeError } from "../internal/errors.js";
import { watch, type WatchReceiver, type WatchSender } from "../channels/watch.js";
import { select } from "../signals/select.js";
import { sleep } from "../signals/sleep.js";
import type { Conn } from "./conn.js";
import { DrainReport, type ShutdownReport } from "./report.js";
import { isServed, type ServerKind, ServerTracker, type TrackerHost } from "./server-tracker.js";
import { publish, serveReportChannel, serveStateChannel } from "../internal/diagnostics.js";

export type { ShutdownReport } from "./report.js";

/** A server `serve()` can drain. */
export type Server = http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer;

/**
 * The lifecycle of a served set of servers: `"serving"` → `"draining"` → `"closed"`.
 *
 * - `"serving"`: accepting and answering normally (also during `beforeCloseMs`,
 *   when only {@link GracefulServer.isReady} is already `false`);
 * - `"draining"`: the listeners are closed; in-flight work finishes, clients
 *   are told to go away, idle connections are closed after their grace;
 *   at the deadline what is left is *forced*;
 * - `"closed"`: every connection is gone; the report is ready.
 */
export type ServeState = "serving" | "draining" | "closed";

/** Options of {@link serve}. */
export interface ServeOptions {
  /**
   * Shutdown starts when this is cancelled or aborted (for example the token
   * `shutdown()` from `cancelkit/signals` returns). Its reason becomes the
   * reason of every draining token. Already aborted: shutdown starts at once.
   */
  signal?: AbortSignal | CancellationToken;
  /**
   * How long to keep serving normally after shutdown starts, before the
   * listeners close. Only {@link GracefulServer.isReady} changes, so a
   * readiness probe answers 503 while a load balancer that probes it stops
   * sending traffic. Set it to about your readiness probe period.
   * @defaultValue 0
   */
  beforeCloseMs?: number;
  /**
   * How long an HTTP/1 connection that was never told to close must stay idle
   * (no request in flight, no byte moved) before it is ended with a FIN,
   * counted from the drain start or its last response, whichever is later.
   * Clients that reuse the connection within the grace get a `Connection:
   * close` answer instead of a reset. A request that arrives after the FIN
   * never runs. 1 s is far above the gap between a response and the next
   * request of a busy keep-alive client, and well below Node's advertised
   * `Keep-Alive: timeout=5`.
   * @defaultValue 1000
   */
  idleGraceMs?: number;
  /**
   * How long the drain may take, counted from the moment the listeners close.
   * At the deadline every request token is cancelled with a
   * `ShutdownTimeoutError`, and the connections are *forced*: those with
   * nothing in flight at once, the rest after `forceAnswerMs`. 30 s matches
   * Kubernetes' default `terminationGracePeriodSeconds`; lower it so that
   * `beforeCloseMs + drainTimeoutMs + forceAnswerMs` fits the budget.
   * @defaultValue 30000
   */
  drainTimeoutMs?: number;
  /**
   * At the deadline (or {@link GracefulServer.force}), how long a handler
   * whose request token was just cancelled has to send its answer (a 503, a
   * final event) before its connection is destroyed. A response that
   * finishes in this window counts as completed, and its connection as
   * closed gracefully.
   * @defaultValue 250
   */
  forceAnswerMs?: number;
}

/**
 * A set of servers drained together: one deadline, one report.
 *
 * Returned by {@link serve}. The servers themselves are untouched: call
 * `listen()` on them as usual (before or after `serve()`).
 */
export interface GracefulServer extends AsyncDisposable {
  /** The served servers, in the order given. */
  readonly servers: readonly Server[];
  /** The first served server (the one `serve(listener)` created). */
  readonly server: Server;
  /**
   * The lifecycle as the receiver of a `watch` channel: `state.borrow()`
   * reads it, `state.changed()` waits for the next transition,
   * `state.waitFor((s) => s === "closed")` waits for a given one, and
   * `for await (const s of state)` follows it to the end (the channel closes
   * after `"closed"`). Every access returns the same receiver; `clone()` it
   * for an independent *seen* version.
   */
  readonly state: WatchReceiver<ServeState>;
  /**
   * `true` while every server is listening and shutdown has not started. A
   * readiness endpoint answers 503 when it is `false`.
   */
  readonly isReady: boolean;
  /**
   * Starts the shutdown (if the `signal` did not already) and resolves with
   * its report once every connection is closed. Idempotent: every call
   * returns the same promise. Never rejects. When no server is listening
   * (nor about to) and no connection is open it resolves with an empty report.
   */
  shutdown(): Promise<ShutdownReport>;
  /**
   * Moves the drain deadline to now: starts the shutdown if it has not
   * started (skipping `beforeCloseMs`), cancels every request token with
   * `reason` (a `ShutdownTimeoutError` when omitted), gives handlers
   * `forceAnswerMs` to answer, then destroys what is left. The report has
   * `deadlineHit: true`. Returns the same promise as `shutdown()`; a call
   * after the deadline (or a second call) changes nothing.
   *
   * The second Ctrl+C: `shutdown({ onSecondSignal: () => graceful.force() })`.
   */
  force(reason?: unknown): Promise<ShutdownReport>;
  /** `await using graceful = serve(...)`: shuts down at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The options, parsed once. */
interface ServeConfig {
  readonly signal: AbortSignal | CancellationToken | undefined;
  readonly beforeCloseMs: number;
  readonly idleGraceMs: number;
  readonly drainTimeoutMs: number;
  readonly forceAnswerMs: number;
}

const SERVE_ACTION = "call serve()";
const OPTIONS = ["signal", "beforeCloseMs", "idleGraceMs", "drainTimeoutMs", "forceAnswerMs"] as const;

function parseOptions(options: ServeOptions | undefined): ServeConfig {
  assertOptions(SERVE_ACTION, options, OPTIONS);
  const duration = (name: "beforeCloseMs" | "idleGraceMs" | "drainTimeoutMs" | "forceAnswerMs", fallback: number): number => {
    const value = options?.[name];
    if (value === undefined) return fallback;
    assertDuration(SERVE_ACTION, name, value);
    return value;
  };
  return {
    signal: checkSignal(SERVE_ACTION, options?.signal),
    beforeCloseMs: duration("beforeCloseMs", 0),
    idleGraceMs: duration("idleGraceMs", 1000),
    drainTimeoutMs: duration("drainTimeoutMs", 30_000),
    forceAnswerMs: duration("forceAnswerMs", 250),
  };
}

/**
 * What a server can do decides how it is drained, not its class (a runtime
 * other than Node has its own classes): an HTTP/2 server has
 * `updateSettings`, a TLS server `addContext`, an HTTP/1 server
 * `keepAliveTimeout`. `null` for anything else.
 */
function classifyServer(server: unknown): ServerKind | null {
  if (typeof server !== "object" || server === null) return null;
  const s = server as Record<string, unknown>;
  for (const method of ["listen", "address", "on", "prependListener", "removeListener", "listenerCount"]) {
    if (typeof s[method] !== "function") return null;
  }
  const tls = typeof s["addContext"] === "function";
  if (typeof s["updateSettings"] === "function") return { tls, h2: true };
  if (typeof s["keepAliveTimeout"] === "number") return { tls, h2: false };
  return null;
}

/** How often idle connections are looked at while draining. */
function sweepEvery(graceMs: number): number {
  return Math.min(50, Math.max(5, Math.floor(graceMs / 8)));
}

/** Sweeps after which a clock that did not move is reported (`#checkClock`). */
const SWEEPS_TO_CHECK = 100;

function shuttingDownReason(): DOMException {
  return new DOMException("The server is shutting down", "AbortError");
}

/**
 * Where a drain is, finer than {@link ServeState}, as published on the
 * `cancelkit:serve:state` diagnostics channel: `"serving"`; `"stopping"`
 * (shutdown started, `beforeCloseMs` running: still serving, not ready);
 * `"draining"`; `"forcing"` (the deadline or `force()`, then the answer
 * window); `"closed"`.
 */
export type ServePhase = "serving" | "stopping" | "draining" | "forcing" | "closed";
type Phase = ServePhase;

/** The public state each phase projects to (invariant 1). */
const PROJECTION: Record<Phase, ServeState> = {
  serving: "serving",
  stopping: "serving",
  draining: "draining",
  forcing: "draining",
  closed: "closed",
};

class Coordinator implements TrackerHost {
  /** Cancelled at the deadline: request tokens are its children. */
  readonly lifetime = new CancellationToken();
  /** Cancelled when draining starts: the soft notice. */
  readonly draining = new CancellationToken();
  readonly servers: readonly Server[];
  readonly #config: ServeConfig;
  readonly #trackers: ServerTracker[];
  readonly #stateTx: WatchSender<ServeState>;
  readonly stateRx: WatchReceiver<ServeState>;
  /** Cancelled once every connection is gone and every listener settled. */
  readonly #drained = new CancellationToken();
  /** Cancelled by `force()`, with the reason request tokens get. */
  readonly #forced = new CancellationToken();
  #phase: Phase = "serving";
  #report: DrainReport | null = null;
  #promise: Promise<ShutdownReport> | null = null;
  #unsubscribe: (() => void) | null = null;
  #reason: unknown = undefined;
  #sweeper: ReturnType<typeof setInterval> | null = null;
  #sweeps = 0;
  #firstSweep = 0;

  constructor(servers: Server[], kinds: ServerKind[], config: ServeConfig) {
    this.servers = Object.freeze(servers.slice());
    this.#config = config;
    [this.#stateTx, this.stateRx] = watch<ServeState>("serving");
    this.#trackers = servers.map((server, i) => new ServerTracker(server as net.Server, this, kinds[i]!));
    for (const tracker of this.#trackers) tracker.attach();
    const signal = config.signal;
    if (signal === undefined) return;
    if (isAborted(signal)) {
      this.#reason = signal.reason;
      void this.shutdown();
    } else {
      this.#unsubscribe = subscribeAbort(signal, (reason) => {
        this.#reason = reason;
        void this.shutdown();
      });
    }
  }

  get isReady(): boolean {
    return this.#phase === "serving" && this.servers.every((server) => server.listening);
  }

  shutdown(closedByApp = false): Promise<ShutdownReport> {
    if (this.#promise !== null) return this.#promise;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#report = new DrainReport();
    this.#enter("stopping");
    return (this.#promise = this.#run(closedByApp));
  }

  force(reason: unknown): Promise<ShutdownReport> {
    if (!this.#forced.isCancelled && (this.#phase === "serving" || this.#phase === "stopping" || this.#phase === "draining")) {
      const elapsed = this.#report === null ? 0 : this.#report.elapsed();
      this.#forced.cancel(reason !== undefined ? reason : new ShutdownTimeoutError(Math.round(elapsed), "Cannot finish graceful shutdown: it was forced before its deadline"));
    }
    return this.shutdown();
  }

  async #run(closedByApp: boolean): Promise<ShutdownReport> {
    const report = this.#report!;
    if (closedByApp) return this.#finish(report);
    if (!this.#hasWork()) {
      await Promise.resolve(); // invariant 4
      if (!this.#hasWork()) return this.#finish(report);
    }
    if (this.#config.beforeCloseMs > 0 && !this.#forced.isCancelled) {
      await select({ force: this.#forced, elapsed: sleep(this.#config.beforeCloseMs, { ref: false }) }, { biased: true });
    }
    this.#startDrain(report);
    const winner = await select(
      { drained: this.#drained, force: this.#forced, deadline: sleep(this.#config.drainTimeoutMs, { ref: false }) },
      { biased: true },
    );
    if (winner.key !== "drained") {
      this.#force(report, winner.key === "force" ? winner.value : new ShutdownTimeoutError(this.#config.drainTimeoutMs));
      const answered = await select({ drained: this.#drained, window: sleep(this.#config.forceAnswerMs, { ref: false }) }, { biased: true });
      if (answered.key !== "drained") {
        for (const tracker of this.#trackers) tracker.destroyAll();
        this.#checkDone();
        await this.#drained.cancelled();
      }
    }
    return this.#finish(report);
  }

  #hasWork(): boolean {
    return this.#trackers.some((tracker) => tracker.listening || tracker.busy);
  }

  #startDrain(report: DrainReport): void {
    this.#enter("draining");
    report.counting = true;
    // 1. Stop accepting (listeners.ts); a listen still resolving is closed once bound.
    for (const tracker of this.#trackers) if (tracker.closeListener()) report.listenerClosed();
    // 2. Tell every connection (Connection: close on the last response in
    //    flight, GOAWAY, upgrades), or start its idle clock.
    for (const tracker of this.#trackers) tracker.startDrain();
    // 3. The soft notice to streaming handlers and upgraded connections.
    this.draining.cancel(this.#reason ?? shuttingDownReason());
    // 4. Idle connections are ended after their grace, re-checked continuously.
    const graceMs = this.#config.idleGraceMs;
    this.#sweep(graceMs);
    this.#sweeper = setInterval(() => this.#sweep(graceMs), sweepEvery(graceMs));
    this.#sweeper.unref();
    this.#checkDone();
  }

  #sweep(graceMs: number): void {
    const now = performance.now();
    this.#checkClock(now, graceMs);
    for (const tracker of this.#trackers) tracker.sweep(now, graceMs);
  }

  /**
   * Idle time is read on `performance.now()`, the sweep is a timer: a test
   * that fakes timers but not `performance` would wait forever for the
   * grace. A real clock cannot fire the sweep 100 times within one of its
   * intervals, so when that happens we say so, once (docs/testing.md).
   */
  #checkClock(now: number, graceMs: number): void {
    if (this.#sweeps++ === 0) this.#firstSweep = now;
    if (this.#sweeps !== SWEEPS_TO_CHECK || now - this.#firstSweep >= sweepEvery(graceMs)) return;
    process.emitWarning(
      `serve(): the idle sweep fired ${SWEEPS_TO_CHECK} times while performance.now() moved ${(now - this.#firstSweep).toFixed(1)} ms: ` +
        "timers are faked but performance is not, so no connection becomes idle; fake performance too (docs/testing.md)",
      { code: "CANCELKIT_FAKE_CLOCK" },
    );
  }

  /** The deadline (or `force()`): hard notice first, so handlers can answer before their sockets die. */
  #force(report: DrainReport, reason: unknown): void {
    this.#enter("forcing");
    report.deadlineHit = this.#trackers.some((tracker) => tracker.connectionCount > 0 || !tracker.settled);
    this.lifetime.cancel(reason);
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    let answering = 0;
    for (const tracker of this.#trackers) answering += tracker.force();
    // In the answer window a connection whose response finished is ended
    // at once: the deadline has passed, there is no grace left.
    this.#sweeper = answering > 0 ? setInterval(() => this.#endIdle(), 5) : null;
    this.#sweeper?.unref();
    this.#checkDone();
  }

  #endIdle(): void {
    for (const tracker of this.#trackers) tracker.endIdle();
  }

  #checkDone(): void {
    if (this.#phase !== "draining" && this.#phase !== "forcing") return;
    for (const tracker of this.#trackers) if (!tracker.settled) return;
    this.#drained.cancel();
  }

  #finish(report: DrainReport): ShutdownReport {
    this.#enter("closed");
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const tracker of this.#trackers) tracker.detach();
    report.counting = false;
    const built = report.build();
    // diagnostics_channel (docs/diagnostics.md): free with no subscriber.
    publish(serveReportChannel, () => ({ servers: this.servers, report: built }));
    return built;
  }

  /** The one place the phase changes; the watch follows (invariant 1). */
  #enter(phase: Phase): void {
    const before = PROJECTION[this.#phase];
    this.#phase = phase;
    const after = PROJECTION[phase];
    if (after !== before) this.#stateTx.sendReplace(after);
    if (phase === "closed") this.#stateTx.close();
    // diagnostics_channel (docs/diagnostics.md): free with no subscriber.
    publish(serveStateChannel, () => ({ servers: this.servers, phase, state: after }));
  }

  // -------------------------------------------------------------------------
  // TrackerHost

  connectionClosed(conn: Conn): void {
    this.#report?.connectionClosed(conn);
    this.#checkDone();
  }

  requestEnded(completed: boolean): void {
    this.#report?.requestEnded(completed);
  }

  requestRefused(): void {
    this.#report?.requestRefused();
  }

  upgradeNotified(): void {
    this.#report?.upgradeNotified();
  }

  goawaySent(): void {
    this.#report?.goawaySent();
  }

  listenerClosed(): void {
    this.#report?.listenerClosed();
  }

  changed(): void {
    this.#checkDone();
  }

  /**
   * The application closed a server itself (`server.close()`, a framework's
   * `close()`) and Node reports it drained. Once every server of ours is
   * closed that way (or is not listening, with no connection open), nothing
   * is left to serve: the coordinator closes with an empty report, which
   * lets go of the signal, the listeners and the diagnostics channels.
   */
  serverClosed(): void {
    if (this.#phase !== "serving") {
      this.#checkDone();
      return;
    }
    const settled = this.#trackers.every((t) => !t.listening && (t.reportedClose || !t.busy));
    if (settled) void this.shutdown(true);
  }
}

/** The object `serve()` returns: the documented API over a private coordinator (invariant 5). */
class Graceful implements GracefulServer {
  readonly #coordinator: Coordinator;

  constructor(coordinator: Coordinator) {
    this.#coordinator = coordinator;
  }

  get servers(): readonly Server[] {
    return this.#coordinator.servers;
  }

  get server(): Server {
    return this.#coordinator.servers[0]!;
  }

  get state(): WatchReceiver<ServeState> {
    return this.#coordinator.stateRx;
  }

  get isReady(): boolean {
    return this.#coordinator.isReady;
  }

  shutdown(): Promise<ShutdownReport> {
    return this.#coordinator.shutdown();
  }

  force(reason?: unknown): Promise<ShutdownReport> {
    return this.#coordinator.force(reason);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#coordinator.shutdown();
  }
}

/**
 * Drains one or more node servers gracefully when a signal fires or
 * `shutdown()` is called.
 *
 * `target` is a request listener (a server is created with
 * `http.createServer(listener)`; call `graceful.server.listen()`), an
 * `http.Server`, `https.Server`, `http2.Http2Server` or
 * `http2.Http2SecureServer` (listening or not, or about to), or an array of
 * servers that share one deadline and one report. Attach before or after
 * `listen()`: connections accepted before are found and drained too.
 *
 * Shutdown, in order: keep serving for `beforeCloseMs` (only `isReady`
 * turns `false`); close the listeners (new connections are refused, never
 * accepted and reset); state `"draining"`; the last response in flight on
 * each connection (and every later request) carries `Connection: close`
 * when its headers are unsent, HTTP/2 sessions get GOAWAY, the draining
 * tokens and upgraded connections' request tokens are cancelled; idle
 * HTTP/1 connections are ended with a FIN after `idleGraceMs` of idleness
 * (a request that arrives after it never runs); at `drainTimeoutMs` (or
 * `force()`) request tokens are cancelled, handlers get `forceAnswerMs` to
 * answer, and whatever is left is *forced*; state `"closed"` and the
 * {@link ShutdownReport}.
 *
 * The servers get listeners, never methods; all of them are removed when the
 * state becomes `"closed"`.
 *
 * @param target - a request listener, a server, or an array of servers.
 * @param options - see {@link ServeOptions}.
 * @throws TypeError when `target` is not one of the above, a server is
 *   already served, an option is unknown or has the wrong type.
 * @throws RangeError when a duration is negative or not finite.
 *
 * @example Drain on SIGTERM
 * ```ts
 * import { shutdown } from "cancelkit/signals";
 * import { serve } from "cancelkit/http";
 * const stop = shutdown({ signals: ["SIGTERM"] });
 * const graceful = serve((req, res) => res.end("ok"), { signal: stop, drainTimeoutMs: 10_000 });
 * graceful.server.listen(8080);
 * await stop.cancelled(); // the first SIGTERM
 * const report = await graceful.shutdown(); // the drain the signal started
 * console.assert(graceful.state.borrow() === "closed" && report.connectionsForced >= 0);
 * ```
 */
export function serve(target: http.RequestListener | Server | readonly Server[], options?: ServeOptions): GracefulServer {
  const config = parseOptions(options);
  let servers: Server[];
  if (typeof target === "function") {
    servers = [];
  } else if (Array.isArray(target)) {
    if (target.length === 0) throw typeError(SERVE_ACTION, "target", "a request listener, a server or a non-empty array of servers", target);
    servers = target.slice() as Server[];
  } else {
    servers = [target as Server];
  }
  const kinds = servers.map((server, i) => {
    const kind = classifyServer(server);
    const name = Array.isArray(target) ? `target[${i}]` : "target";
    if (kind === null) throw typeError(SERVE_ACTION, name, "a request listener or an http, https or http2 server", server);
    if (isServed(server) || servers.indexOf(server) !== i) throw typeError(SERVE_ACTION, name, "a server not already served", server);
    return kind;
  });
  if (typeof target === "function") {
    servers = [http.createServer(target as http.RequestListener)];
    kinds.push({ tls: false, h2: false });
  }
  return new Graceful(new Coordinator(servers, kinds, config));
}
