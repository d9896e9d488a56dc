/*
 * The drain's report: what happened during one shutdown.
 *
 * Invariants:
 * 1. Counts move only while draining (from the listeners' close to the
 *    end of the force window); the coordinator says when that is.
 * 2. Times are milliseconds from the shutdown's start on a monotonic clock
 *    (`performance.now()`, read at each event, never captured at import).
 * 3. The report is built once, frozen, and never changes after.
 */
import { UPGRADED, type Conn } from "./conn.js";

/**
 * What happened during one shutdown. Times are milliseconds from
 * {@link ShutdownReport.startedAt}, measured with a monotonic clock.
 */
export interface ShutdownReport {
  /** `Date.now()` when shutdown started. */
  readonly startedAt: number;
  /** From the start of shutdown until every connection was gone. */
  readonly durationMs: number;
  /** When the first listener was closed (after `beforeCloseMs`); `null` when nothing was listening. */
  readonly listenerClosedMs: number | null;
  /** Listening sockets the drain closed, including a server that began listening after the shutdown started. */
  readonly listenersClosed: number;
  /** When the last request completed while draining; `null` when none did. */
  readonly lastRequestMs: number | null;
  /**
   * Requests and HTTP/2 streams whose response finished while draining,
   * including those that answered in the `forceAnswerMs` window.
   */
  readonly requestsCompletedWhileDraining: number;
  /**
   * Requests that arrived on an HTTP/1 connection after it was sent our FIN.
   * None reached a handler: the client saw the connection close with no
   * response, which it may safely retry.
   */
  readonly requestsRefusedAfterClose: number;
  /** Connections (HTTP/1 sockets, TLS handshakes, HTTP/2 sessions) that closed while draining without being forced. */
  readonly connectionsClosedGracefully: number;
  /** Connections destroyed at the deadline (or by `force()`). */
  readonly connectionsForced: number;
  /** HTTP/2 sessions that were sent GOAWAY. */
  readonly sessionsSentGoaway: number;
  /** Upgraded connections (WebSocket, CONNECT) whose request token was cancelled because draining started. */
  readonly upgradesNotified: number;
  /** Upgraded connections destroyed at the deadline. */
  readonly upgradesForced: number;
  /** `true` when the deadline passed (or `force()` was called) with something left to force. */
  readonly deadlineHit: boolean;
}

/** Accumulates a {@link ShutdownReport}. */
export class DrainReport {
  readonly #startedAt = Date.now();
  readonly #t0 = performance.now();
  /** Counting is on (invariant 1). */
  counting = false;
  #listenerClosedMs: number | null = null;
  #listenersClosed = 0;
  #lastRequestMs: number | null = null;
  #requests = 0;
  #refused = 0;
  #graceful = 0;
  #forced = 0;
  #goaway = 0;
  #upgradesNotified = 0;
  #upgradesForced = 0;
  deadlineHit = false;

  elapsed(): number {
    return performance.now() - this.#t0;
  }

  listenerClosed(): void {
    this.#listenersClosed++;
    this.#listenerClosedMs ??= this.elapsed();
  }

  requestEnded(completed: boolean): void {
    if (!completed || !this.counting) return;
    this.#requests++;
    this.#lastRequestMs = this.elapsed();
  }

  requestRefused(): void {
    this.#refused++;
  }

  goawaySent(): void {
    this.#goaway++;
  }

  upgradeNotified(): void {
    if (this.counting) this.#upgradesNotified++;
  }

  connectionClosed(conn: Conn): void {
    if (!this.counting) return;
    if (conn.kind === UPGRADED) {
      if (conn.forced) this.#upgradesForced++;
    } else if (conn.forced) this.#forced++;
    else this.#graceful++;
  }

  build(): ShutdownReport {
    return Object.freeze({
      startedAt: this.#startedAt,
      durationMs: this.elapsed(),
      listenerClosedMs: this.#listenerClosedMs,
      listenersClosed: this.#listenersClosed,
      lastRequestMs: this.#lastRequestMs,
      requestsCompletedWhileDraining: this.#requests,
      requestsRefusedAfterClose: this.#refused,
      connectionsClosedGracefully: this.#graceful,
      connectionsForced: this.#forced,
      sessionsSentGoaway: this.#goaway,
      upgradesNotified: this.#upgradesNotified,
      upgradesForced: this.#upgradesForced,
      deadlineHit: this.deadlineHit,
    });
  }
}
