/*
 * serve(): the shutdown coordinator for one or more node servers.
 *
 * Invariants:
 * 1. One coordinator owns a set of servers: one phase, one deadline, one
 *    report. Phases only move forward: SERVING → STOPPING (`beforeCloseMs`,
 *    still serving) → DRAINING → (FORCED at the deadline) → CLOSED.
 * 2. Listeners are closed with `net.Server.prototype.close`, never the HTTP
 *    server's own `close()`: that one sweeps idle sockets once, at an instant
 *    a client may be writing its next request, and on Node 24 closes HTTP/2
 *    sessions with a single GOAWAY. Node's headers-timeout sweeper keeps
 *    running while we drain.
 * 3. A connection is closed by us only when its client was told (HTTP/1:
 *    `Connection: close` on a response, Node ends the socket after it;
 *    HTTP/2: GOAWAY, Node destroys the session after its last stream), or
 *    after it stayed idle for `idleGraceMs`, with a FIN. `destroy()` happens
 *    only at the deadline or after a FIN the client ignored for `LINGER_MS`.
 * 4. Every timer is `unref()`ed, except the HTTP/2 GOAWAY timers (at most
 *    1 s each), which may be all that keeps an idle session's drain going,
 *    and is cleared when the coordinator closes; all listeners it added are
 *    removed. After the report resolves, no handle of ours is left.
 * 5. The state lives in exactly one place: a `watch` channel whose sender
 *    only `#setState` uses (`sendReplace`, so it is stored even when every
 *    receiver was closed), closed once the state is `"closed"`.
 * 6. "Drained" is a token cancelled by `#checkDone`; the drain waits for it
 *    or the deadline with `select` (biased: drained wins a tie).
 * 7. Shutdown starts only by `shutdown()`, the signal, or, while serving,
 *    when Node reports every server closed and drained (the application
 *    closed them itself): a coordinator does not outlive servers the
 *    application closed.
 */
import * as http from "node:http";
import type * as http2 from "node:http2";
import type * as https from "node:https";
import { createRequire } from "node:module";
import * as net from "node:net";
import type * as tls from "node:tls";
import { CancellationToken } from "../cancel/cancellation-token.js";
import { checkSignal, isAborted, subscribeAbort } from "../internal/abort.js";
import { assertDuration, assertOptions, MAX_TIMER_MS, rangeError, ShutdownTimeoutError, typeError } from "../internal/errors.js";
import {
  CLOSED,
  Conn,
  DRAINING,
  FORCED,
  H1,
  H2,
  isTracked,
  PENDING,
  SERVING,
  ServerTracker,
  STOPPING,
  UPGRADED,
  type TrackerHost,
} from "./server-tracker.js";
import { watch, type WatchReceiver, type WatchSender } from "../channels/watch.js";
import { select } from "../signals/select.js";
import { sleep } from "../signals/sleep.js";

/** A server `serve()` can drain. */
export type Server = http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer;

/**
 * The lifecycle of a served set of servers: `"serving"` → `"draining"` → `"closed"`.
 *
 * - `"serving"`: accepting and answering normally (also during `beforeCloseMs`,
 *   when only {@link GracefulServer.isReady} is already `false`);
 * - `"draining"`: the listeners are closed; in-flight work finishes, clients
 *   are told to go away, idle connections are closed after their grace;
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
   * readiness probe answers 503 while load balancers (Kubernetes endpoints)
   * stop sending traffic. Set it to about your readiness probe period.
   * @defaultValue 0
   */
  beforeCloseMs?: number;
  /**
   * How long an HTTP/1 connection that was never told to close must stay idle
   * (no request in flight, no byte received) before it is ended with a FIN,
   * counted from the drain start or its last response, whichever is later.
   * Clients that reuse the connection within the grace get a `Connection:
   * close` answer instead of a reset. 1 s is far above the gap between a
   * response and the next request of a busy keep-alive client, and well
   * below Node's advertised `Keep-Alive: timeout=5`.
   * @defaultValue 1000
   */
  idleGraceMs?: number;
  /**
   * How long the drain may take, counted from the moment the listeners close.
   * At the deadline every request token is cancelled with a
   * `ShutdownTimeoutError` and the remaining connections, sessions and
   * upgraded sockets are destroyed (*forced*). 30 s matches Kubernetes'
   * default `terminationGracePeriodSeconds`; lower it so that
   * `beforeCloseMs + drainTimeoutMs` fits the budget.
   * @defaultValue 30000
   */
  drainTimeoutMs?: number;
}

/**
 * What happened during one shutdown. Times are milliseconds from
 * {@link ShutdownReport.startedAt}, measured with a monotonic clock.
 */
export interface ShutdownReport {
  /** `Date.now()` when shutdown started. */
  readonly startedAt: number;
  /** From the start of shutdown until every connection was gone. */
  readonly durationMs: number;
  /** When the listeners were closed (after `beforeCloseMs`); `null` when nothing was listening. */
  readonly listenerClosedMs: number | null;
  /** When the last request completed while draining; `null` when none did. */
  readonly lastRequestMs: number | null;
  /** Requests and HTTP/2 streams whose response finished while draining, before the deadline. */
  readonly requestsCompletedWhileDraining: number;
  /** Connections (HTTP/1 sockets, TLS handshakes, HTTP/2 sessions) that closed while draining, before the deadline. */
  readonly connectionsClosedGracefully: number;
  /** Connections destroyed at the deadline. */
  readonly connectionsForced: number;
  /** HTTP/2 sessions that were sent GOAWAY. */
  readonly sessionsSentGoaway: number;
  /** Upgraded connections (WebSocket, CONNECT) whose request token was cancelled because draining started. */
  readonly upgradesNotified: number;
  /** Upgraded connections destroyed at the deadline. */
  readonly upgradesForced: number;
  /** `true` when the drain deadline passed and something was forced. */
  readonly deadlineHit: boolean;
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
   * returns the same promise. Never rejects. When no server is listening and
   * no connection is open it resolves at once with an empty report.
   */
  shutdown(): Promise<ShutdownReport>;
  /** `await using graceful = serve(...)`: shuts down at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** How long a connection that we sent a FIN may stay open before it is destroyed. */
const LINGER_MS = 2000;
/** How long to wait for the PING acknowledgement that measures a session's round trip. */
const GOAWAY_PING_MS = 1000;
/** Shortest wait between the two GOAWAY frames. */
const MIN_GOAWAY_WAIT_MS = 10;
const NGHTTP2_NO_ERROR = 0;

let http2ServerClass: (abstract new (...args: never[]) => object) | undefined;
let http2SecureServerClass: (abstract new (...args: never[]) => object) | undefined;
/**
 * Loads Node's TLS, HTTPS and HTTP/2 modules only for a server that is not a
 * plain `http.Server`, so serving plain HTTP does not load them (on Node 20
 * the HTTP/2 module alone is ≈ 0.6 MB of heap and 2 MB of RSS; Node 22 and
 * later load them anyway once an ES module runs).
 */
const requireBuiltin = createRequire(import.meta.url);

/** Node does not export the HTTP/2 server classes; take them from throwaway instances. */
function classifyServer(server: unknown): { tls: boolean; h2: boolean } | null {
  if (!(server instanceof net.Server)) return null;
  if (server instanceof http.Server) return { tls: false, h2: false };
  const isTls = server instanceof (requireBuiltin("node:tls") as typeof tls).Server;
  if (isTls && server instanceof (requireBuiltin("node:https") as typeof https).Server) return { tls: true, h2: false };
  const h2 = requireBuiltin("node:http2") as typeof http2;
  http2ServerClass ??= h2.createServer().constructor as abstract new (...args: never[]) => object;
  http2SecureServerClass ??= h2.createSecureServer().constructor as abstract new (...args: never[]) => object;
  if (server instanceof http2ServerClass || server instanceof http2SecureServerClass) return { tls: isTls, h2: true };
  return null;
}

function readDuration(options: ServeOptions, name: "beforeCloseMs" | "idleGraceMs" | "drainTimeoutMs", fallback: number): number {
  const value = options[name];
  if (value === undefined) return fallback;
  assertDuration("serve", name, value);
  if (value > MAX_TIMER_MS) throw rangeError("serve", name, `a finite number >= 0 and <= ${MAX_TIMER_MS}`, value);
  return value;
}

function shuttingDownReason(): DOMException {
  return new DOMException("The server is shutting down", "AbortError");
}

class Coordinator implements GracefulServer, TrackerHost {
  readonly lifetime = new CancellationToken();
  readonly draining = new CancellationToken();
  readonly servers: readonly Server[];
  readonly #trackers: ServerTracker[];
  readonly #stateTx: WatchSender<ServeState>;
  readonly #stateRx: WatchReceiver<ServeState>;
  /** Cancelled once every connection is gone and every listener closed. */
  readonly #drained = new CancellationToken();
  readonly #beforeCloseMs: number;
  readonly #idleGraceMs: number;
  readonly #drainTimeoutMs: number;
  #phase = SERVING;
  #promise: Promise<ShutdownReport> | null = null;
  #resolve: ((report: ShutdownReport) => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  #reason: unknown = undefined;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #sweeper: ReturnType<typeof setInterval> | null = null;
  // Report.
  #startedAt = 0;
  #t0 = 0;
  #listenerClosedMs: number | null = null;
  #lastRequestMs: number | null = null;
  #requests = 0;
  #graceful = 0;
  #forced = 0;
  #goaway = 0;
  #upgradesNotified = 0;
  #upgradesForced = 0;
  #deadlineHit = false;

  constructor(servers: Server[], kinds: Array<{ tls: boolean; h2: boolean }>, options: ServeOptions, signal: AbortSignal | CancellationToken | undefined) {
    this.servers = Object.freeze(servers.slice());
    [this.#stateTx, this.#stateRx] = watch<ServeState>("serving");
    this.#beforeCloseMs = readDuration(options, "beforeCloseMs", 0);
    this.#idleGraceMs = readDuration(options, "idleGraceMs", 1000);
    this.#drainTimeoutMs = readDuration(options, "drainTimeoutMs", 30_000);
    this.#trackers = servers.map((server, i) => new ServerTracker(server, this, kinds[i]!.tls, kinds[i]!.h2));
    for (const tracker of this.#trackers) {
      tracker.attach();
      tracker.onSessionDuringDrain = (conn) => this.#goawaySession(conn);
    }
    if (signal !== undefined) {
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
  }

  get server(): Server {
    return this.servers[0]!;
  }

  get state(): WatchReceiver<ServeState> {
    return this.#stateRx;
  }

  get isReady(): boolean {
    return this.#phase === SERVING && this.servers.every((server) => server.listening);
  }

  get phase(): number {
    return this.#phase;
  }

  shutdown(): Promise<ShutdownReport> {
    return this.#shutdown(false);
  }

  /** `closedByApp`: every server was closed and reported drained by Node (see `serverClosed`). */
  #shutdown(closedByApp: boolean): Promise<ShutdownReport> {
    if (this.#promise !== null) return this.#promise;
    this.#promise = new Promise<ShutdownReport>((resolve) => {
      this.#resolve = resolve;
    });
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#startedAt = Date.now();
    this.#t0 = performance.now();
    this.#phase = STOPPING;
    const listening = this.servers.some((server) => server.listening);
    const open = !closedByApp && this.#trackers.some((tracker) => tracker.conns.size > 0);
    if (!listening && !open) {
      this.#finish();
    } else if (this.#beforeCloseMs > 0) {
      this.#later(this.#beforeCloseMs, () => this.#startDrain());
    } else {
      this.#startDrain();
    }
    return this.#promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  // -------------------------------------------------------------------------
  // Phases

  #startDrain(): void {
    if (this.#phase !== STOPPING) return;
    this.#phase = DRAINING;
    // 1. Stop accepting: the listening socket only (see invariant 2).
    let anyListening = false;
    for (const tracker of this.#trackers) {
      const server = tracker.server;
      if (!server.listening) continue;
      anyListening = true;
      tracker.closeSettled = false;
      net.Server.prototype.close.call(server, () => {
        tracker.closeSettled = true;
        this.#checkDone();
      });
    }
    if (anyListening) this.#listenerClosedMs = this.#elapsed();
    this.#setState("draining");
    // 2. Announce: the last response in flight on each connection says
    //    `Connection: close` when its headers are unsent; later requests on
    //    open connections are announced as they start. From here on the
    //    trackers follow response finishes (counts, idleness, the report).
    for (const tracker of this.#trackers) tracker.startDrain();
    // 3. HTTP/2: GOAWAY; upgraded connections are counted as notified.
    for (const tracker of this.#trackers) {
      for (const conn of tracker.conns) {
        if (conn.kind === H2) this.#goawaySession(conn);
        else if (conn.kind === UPGRADED) this.#upgradesNotified++;
      }
    }
    // 4. Soft notice to streaming handlers and upgraded connections.
    this.draining.cancel(this.#reason ?? shuttingDownReason());
    // 5. Idle connections: their grace starts now (or at their last
    //    response, later), re-checked continuously.
    const now = performance.now();
    for (const tracker of this.#trackers) {
      for (const conn of tracker.conns) {
        if (conn.socket === null || conn.active > 0) continue;
        conn.idleSince = now;
        conn.idleBytes = conn.socket.bytesRead;
      }
    }
    this.#sweep();
    const every = Math.min(50, Math.max(5, Math.floor(this.#idleGraceMs / 8)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
    // 6. Drained, or forced at the deadline.
    this.#checkDone();
    void this.#awaitDrain();
  }

  async #awaitDrain(): Promise<void> {
    const winner = await select(
      { drained: this.#drained, deadline: sleep(this.#drainTimeoutMs, { ref: false }) },
      { biased: true },
    );
    if (winner.key === "deadline") {
      this.#force();
      await this.#drained.cancelled();
    }
    this.#finish();
  }

  #sweep(): void {
    if (this.#phase !== DRAINING) return;
    const now = performance.now();
    for (const tracker of this.#trackers) {
      for (const conn of tracker.conns) {
        if (conn.ended || conn.active > 0 || (conn.kind !== H1 && conn.kind !== PENDING)) continue;
        const socket = conn.socket!;
        const bytes = socket.bytesRead;
        if (bytes !== conn.idleBytes) {
          // Bytes of a request (or a handshake) are arriving: not idle.
          conn.idleBytes = bytes;
          conn.idleSince = now;
        } else if (now - conn.idleSince >= this.#idleGraceMs) {
          this.#endSocket(conn, socket);
        }
      }
    }
  }

  #endSocket(conn: Conn, socket: net.Socket): void {
    conn.ended = true;
    socket.end();
    // The client normally answers our FIN with its own; one that ignores it
    // (a speculative browser connection) is destroyed after the linger.
    conn.timer = setTimeout(() => socket.destroy(), LINGER_MS);
    conn.timer.unref();
  }

  #goawaySession(conn: Conn): void {
    const session = conn.session!;
    if (conn.ended || session.closed || session.destroyed) return;
    conn.ended = true;
    this.#goaway++;
    // Two-phase GOAWAY (RFC 9113 §6.8). A PING first measures the round
    // trip (an nghttp2 peer that received GOAWAY with no open stream stops
    // reading, so the PING must come before it). Then GOAWAY with the
    // largest stream id: "no new streams", yet streams the client already
    // sent are still accepted. After twice the round trip, `close()` sends
    // GOAWAY with the last processed id and destroys the session once its
    // last stream ends.
    const clear = (): void => {
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
    };
    const close = (): void => {
      clear();
      if (!session.closed && !session.destroyed) session.close();
    };
    let announced = false;
    const announce = (waitMs: number): void => {
      if (announced) return;
      announced = true;
      clear();
      if (session.closed || session.destroyed) return;
      try {
        session.goaway(NGHTTP2_NO_ERROR, 2 ** 31 - 1);
      } catch {
        close();
        return;
      }
      // Referenced on purpose: after the first GOAWAY an idle peer's socket
      // stops reading, so this (at most 1 s) timer may be the only handle
      // left; unref'd, the process could exit with the drain unfinished.
      conn.timer = setTimeout(close, waitMs);
    };
    const sent = performance.now();
    try {
      const pinged = session.ping((error) => {
        const rtt = performance.now() - sent;
        announce(error === null ? Math.min(GOAWAY_PING_MS, Math.max(MIN_GOAWAY_WAIT_MS, 2 * rtt)) : MIN_GOAWAY_WAIT_MS);
      });
      if (!pinged) announce(MIN_GOAWAY_WAIT_MS);
    } catch {
      announce(MIN_GOAWAY_WAIT_MS);
    }
    if (!announced) {
      // Referenced, for the same reason as the close timer above.
      conn.timer = setTimeout(() => announce(MIN_GOAWAY_WAIT_MS), GOAWAY_PING_MS);
    }
  }

  #force(): void {
    if (this.#phase !== DRAINING) return;
    this.#phase = FORCED;
    this.#deadlineHit = true;
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
    // Hard notice first, so handlers can clean up before their sockets die.
    this.lifetime.cancel(new ShutdownTimeoutError(this.#drainTimeoutMs));
    for (const tracker of this.#trackers) {
      for (const conn of tracker.conns) {
        conn.forced = true;
        if (conn.session !== null) conn.session.destroy();
        else conn.socket!.destroy();
      }
      // Connections accepted before serve() attached are invisible to us;
      // Node still knows the HTTP/1 ones.
      (tracker.server as { closeAllConnections?: () => void }).closeAllConnections?.();
      tracker.closeSettled = true;
    }
    this.#checkDone();
  }

  #checkDone(): void {
    if (this.#phase !== DRAINING && this.#phase !== FORCED) return;
    for (const tracker of this.#trackers) if (tracker.conns.size > 0 || !tracker.closeSettled) return;
    this.#drained.cancel();
  }

  #finish(): void {
    this.#phase = CLOSED;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const tracker of this.#trackers) tracker.detach();
    this.#setState("closed");
    const report: ShutdownReport = {
      startedAt: this.#startedAt,
      durationMs: this.#elapsed(),
      listenerClosedMs: this.#listenerClosedMs,
      lastRequestMs: this.#lastRequestMs,
      requestsCompletedWhileDraining: this.#requests,
      connectionsClosedGracefully: this.#graceful,
      connectionsForced: this.#forced,
      sessionsSentGoaway: this.#goaway,
      upgradesNotified: this.#upgradesNotified,
      upgradesForced: this.#upgradesForced,
      deadlineHit: this.#deadlineHit,
    };
    this.#resolve!(Object.freeze(report));
    this.#resolve = null;
  }

  // -------------------------------------------------------------------------
  // TrackerHost

  connectionClosed(conn: Conn): void {
    if (this.#phase < DRAINING || this.#phase === CLOSED) return;
    if (conn.kind === UPGRADED) {
      if (conn.forced) this.#upgradesForced++;
    } else if (conn.forced) this.#forced++;
    else this.#graceful++;
    this.#checkDone();
  }

  requestEnded(completed: boolean): void {
    if (completed && this.#phase === DRAINING) {
      this.#requests++;
      this.#lastRequestMs = this.#elapsed();
    }
  }

  upgradedWhileDraining(): void {
    this.#upgradesNotified++;
  }

  /**
   * The application closed a server itself (`server.close()`, a framework's
   * `close()`) and Node reports it drained. Once every server of ours is
   * closed that way (or is not listening, with no connection open), nothing
   * is left to serve: the coordinator closes with an empty report, which
   * lets go of the signal, the listeners and the diagnostics channels (a
   * coordinator left attached would keep all three for the life of the
   * process).
   */
  serverClosed(): void {
    if (this.#phase !== SERVING) return;
    const settled = this.#trackers.every((t) => !t.server.listening && (t.reportedClose || t.conns.size === 0));
    // Connections of ours still listed are destroyed ones whose 'close'
    // event is yet to come: Node emits the server's first.
    if (settled) void this.#shutdown(true);
  }

  // -------------------------------------------------------------------------

  #setState(state: ServeState): void {
    this.#stateTx.sendReplace(state);
    if (state === "closed") this.#stateTx.close();
  }

  #elapsed(): number {
    return performance.now() - this.#t0;
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.#timers.add(timer);
  }
}

/**
 * Drains one or more node servers gracefully when a signal fires or
 * `shutdown()` is called.
 *
 * `target` is a request listener (a server is created with
 * `http.createServer(listener)`; call `graceful.server.listen()`), an
 * `http.Server`, `https.Server`, `http2.Http2Server` or
 * `http2.Http2SecureServer` (listening or not), or an array of servers that
 * share one deadline and one report. Attach before or after `listen()`:
 * connections accepted before are adopted on their next request.
 *
 * Shutdown, in order: keep serving for `beforeCloseMs` (only `isReady`
 * turns `false`); close the listeners (new connections are refused, never
 * accepted and reset); state `"draining"`; the last response in flight on
 * each connection (and every later request) carries `Connection: close`
 * when its headers are unsent, HTTP/2 sessions get GOAWAY, the
 * draining tokens and upgraded connections' request tokens are cancelled;
 * idle HTTP/1 connections are ended after `idleGraceMs` of idleness; at
 * `drainTimeoutMs` request tokens are cancelled and whatever is left is
 * *forced*; state `"closed"` and the {@link ShutdownReport}.
 *
 * The servers get listeners, never methods; all of them are removed when the
 * state becomes `"closed"`.
 *
 * @param target - a request listener, a server, or an array of servers.
 * @param options - see {@link ServeOptions}.
 * @throws TypeError when `target` is not one of the above, a server is
 *   already served, or an option has the wrong type.
 * @throws RangeError when a duration is negative, not finite or above 2³¹−1 ms.
 *
 * @example Drain on SIGTERM
 * ```ts
 * import { CancellationToken } from "cancelkit";
 * import { serve } from "cancelkit/http";
 * const stop = new CancellationToken();
 * const graceful = serve((req, res) => res.end("ok"), { signal: stop, drainTimeoutMs: 10_000 });
 * graceful.server.listen(8080);
 * process.once("SIGTERM", () => stop.cancel("SIGTERM"));
 * const report = await graceful.shutdown();
 * console.assert(graceful.state.borrow() === "closed" && report.connectionsForced >= 0);
 * ```
 */
export function serve(
  target: http.RequestListener | Server | readonly Server[],
  options?: ServeOptions,
): GracefulServer {
  assertOptions("serve", options, ["signal", "beforeCloseMs", "idleGraceMs", "drainTimeoutMs"]);
  const opts = options ?? {};
  const signal = checkSignal("serve", opts.signal);
  // Validate every option before creating anything.
  readDuration(opts, "beforeCloseMs", 0);
  readDuration(opts, "idleGraceMs", 0);
  readDuration(opts, "drainTimeoutMs", 0);
  let servers: Server[];
  if (typeof target === "function") {
    servers = [];
  } else if (Array.isArray(target)) {
    if (target.length === 0) throw typeError("serve", "target", "a request listener, a server or a non-empty array of servers", target);
    servers = target.slice() as Server[];
  } else {
    servers = [target as Server];
  }
  const kinds = servers.map((server, i) => {
    const kind = classifyServer(server);
    const name = Array.isArray(target) ? `target[${i}]` : "target";
    if (kind === null) throw typeError("serve", name, "a request listener or an http, https or http2 server", server);
    if (isTracked(server) || servers.indexOf(server) !== i) throw typeError("serve", name, "a server not already served", server);
    return kind;
  });
  if (typeof target === "function") {
    servers = [http.createServer(target as http.RequestListener)];
    kinds.push({ tls: false, h2: false });
  }
  return new Coordinator(servers, kinds, opts, signal);
}
