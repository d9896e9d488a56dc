/*
 * `node:cluster` support: a primary that turns one shutdown token into a
 * drain of every worker, and workers that exit on their own once drained.
 *
 * Why two phases. Workers share one port, and the primary (round-robin) or
 * the kernel (shared handle) keeps accepting on it until the *last* worker
 * stops listening; connections accepted then are reset when it closes. A
 * worker that told its clients to go away (`Connection: close`) while
 * another still listened sends them there, right into that window. So:
 * first every worker closes its listeners and says so ("listening stopped"),
 * and only when all have (the port is closed: clients are refused, which is
 * harmless) does the primary tell them to drain their connections.
 *
 * Invariants:
 * 1. The primary owns the deadline: one absolute time (epoch ms), fixed when
 *    its token is cancelled, sent to every worker. A worker forces its drain
 *    at that time even if its own `drainTimeoutMs` is longer.
 * 2. A worker drains once, whatever starts it: `serve()`'s `shutdown()` is
 *    idempotent. The worker's own signal goes through the primary ("leave"),
 *    so a SIGTERM sent to the whole process group, which reaches every
 *    process, is one cluster-wide drain in two phases, not N drains racing.
 * 3. A drained worker sends its report, then disconnects its IPC channel:
 *    after that nothing of ours holds it, and it exits on its own.
 * 4. Once the primary is draining it never forks; it resolves its report
 *    when the last worker has exited, and then holds nothing (listeners
 *    removed, timers cleared), so it exits on its own too.
 * 5. Messages carry `cancelkit: "cluster"`; anything else on the channel is
 *    the application's and is left alone.
 * 6. A worker says "join" when `clusterWorker()` is called; a primary that is
 *    draining answers with the phase it is in, so a worker that was still
 *    starting when the signal came (no listener yet) drains too.
 */
import cluster, { type Worker } from "node:cluster";
import * as net from "node:net";
import type { CancellationToken } from "../cancel/cancellation-token.js";
import { checkSignal, isAborted, subscribeAbort } from "../internal/abort.js";
import { assertDuration, assertOptions, ShutdownTimeoutError, typeError } from "../internal/errors.js";
import type { ShutdownReport } from "./report.js";
import type { GracefulServer } from "./serve.js";

/** The tag on every message of ours. */
const CLUSTER_TAG = "cluster";

type ClusterMessage =
  // primary → worker
  | { cancelkit: typeof CLUSTER_TAG; type: "stop-listening"; deadlineAt: number; reason: string }
  | { cancelkit: typeof CLUSTER_TAG; type: "drain" }
  | { cancelkit: typeof CLUSTER_TAG; type: "force"; reason: string }
  // worker → primary
  | { cancelkit: typeof CLUSTER_TAG; type: "join" }
  | { cancelkit: typeof CLUSTER_TAG; type: "leave" }
  | { cancelkit: typeof CLUSTER_TAG; type: "listening-stopped" }
  | { cancelkit: typeof CLUSTER_TAG; type: "report"; report: ShutdownReport };

/**
 * How long a primary that is serving waits before letting a worker that
 * asked to leave (its own signal) drain alone: a SIGTERM sent to the
 * process group reaches the primary within this time, and then that worker
 * joins the cluster-wide drain instead.
 */
const SOLO_LEAVE_DELAY_MS = 100;

function isClusterMessage(message: unknown): message is ClusterMessage {
  return typeof message === "object" && message !== null && (message as { cancelkit?: unknown }).cancelkit === CLUSTER_TAG;
}

function describeClusterReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  return typeof reason === "string" ? reason : String(reason);
}

/** Options of {@link clusterPrimary}. */
export interface ClusterPrimaryOptions {
  /** Draining every worker starts when this is cancelled (typically `shutdown()`). */
  signal: AbortSignal | CancellationToken;
  /**
   * Fork this many workers now, and fork a replacement when one exits while
   * the primary is not draining. Leave it out to fork workers yourself: the
   * drain covers every worker in `cluster.workers` either way.
   */
  workers?: number;
  /**
   * The one deadline for every worker, counted from the moment `signal` is
   * cancelled: each worker forces what is left at that time.
   * @defaultValue 30000
   */
  drainTimeoutMs?: number;
  /**
   * A worker still alive this long after the deadline (stuck in a loop that
   * never yields) is sent SIGKILL.
   * @defaultValue 2000
   */
  killAfterMs?: number;
}

/** Options of {@link clusterWorker}. */
export interface ClusterWorkerOptions {
  /**
   * This worker's own shutdown token (typically `shutdown()`). When it is
   * cancelled the worker asks the primary to leave: alone if the primary is
   * serving, as part of the cluster's drain if one is starting. Pass it here,
   * not to `serve()`, so a process-group SIGTERM is one drain.
   */
  signal?: AbortSignal | CancellationToken;
}

/** One worker's part of a {@link ClusterReport}. */
export interface ClusterWorkerReport {
  /** `worker.id`. */
  readonly id: number;
  /** The worker's process id. */
  readonly pid: number | undefined;
  /** The worker's drain report, or `null` when it exited without sending one. */
  readonly report: ShutdownReport | null;
  /** Its exit code, or `null` when a signal ended it. */
  readonly exitCode: number | null;
  /** The signal that ended it, if any. */
  readonly signal: string | null;
  /** `true` when the primary had to SIGKILL it (`killAfterMs` after the deadline). */
  readonly killed: boolean;
}

/** What happened when a primary drained its workers. */
export interface ClusterReport {
  /** `Date.now()` when the primary's signal was cancelled. */
  readonly startedAt: number;
  /** From then until the last worker exited. */
  readonly durationMs: number;
  /** Every worker that was alive when draining started, by id. */
  readonly workers: readonly ClusterWorkerReport[];
  /** Sum over the workers' reports. */
  readonly requestsCompletedWhileDraining: number;
  /** Sum over the workers' reports. */
  readonly connectionsForced: number;
  /** `true` when any worker hit the deadline, or was killed. */
  readonly deadlineHit: boolean;
}

/**
 * The primary's side of a cluster. Made by {@link clusterPrimary}.
 */
export interface ClusterPrimary {
  /** `true` once draining started; a respawn handler of your own should check it. */
  readonly isDraining: boolean;
  /**
   * Starts draining every worker now (if the signal has not already), and
   * resolves with the aggregated report once every worker has exited. The
   * same promise every call. To wait for the signal rather than start the
   * drain, await the signal first, as with `serve()`.
   */
  shutdown(): Promise<ClusterReport>;
  /**
   * Escalates: every worker forces its drain now (typically on a second
   * signal). Starts draining first if it had not started.
   */
  force(reason?: unknown): Promise<ClusterReport>;
}

interface ClusterEntry {
  worker: Worker;
  report: ShutdownReport | null;
  killed: boolean;
  listeningStopped: boolean;
  exit: { code: number | null; signal: string | null } | null;
}

class ClusterCoordinator implements ClusterPrimary {
  readonly #drainTimeoutMs: number;
  readonly #killAfterMs: number;
  readonly #respawn: boolean;
  #startedAt = 0;
  #t0 = 0;
  #promise: Promise<ClusterReport> | null = null;
  #resolve: ((report: ClusterReport) => void) | null = null;
  /** Phase 1's message, once draining started; phase 2 started when `#draining`. */
  #stopListening: ClusterMessage | null = null;
  #draining = false;
  readonly #entries = new Map<number, ClusterEntry>();
  /** Workers that drain alone (their own signal while the primary serves). */
  readonly #solo = new Set<number>();
  #killTimer: ReturnType<typeof setTimeout> | null = null;
  #unsubscribe: (() => void) | null = null;
  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (!isClusterMessage(message)) return;
    switch (message.type) {
      case "join":
      case "leave": {
        if (this.#stopListening !== null) {
          // Draining: whatever it asks, it takes part (invariant 6).
          sendToWorker(worker, this.#stopListening);
          if (this.#draining) sendToWorker(worker, { cancelkit: CLUSTER_TAG, type: "drain" });
        } else if (message.type === "leave") this.#leaveAlone(worker);
        break;
      }
      case "listening-stopped": {
        const entry = this.#entries.get(worker.id);
        if (entry !== undefined) {
          entry.listeningStopped = true;
          this.#checkListening();
        } else if (this.#solo.has(worker.id)) sendToWorker(worker, { cancelkit: CLUSTER_TAG, type: "drain" });
        break;
      }
      case "report": {
        const entry = this.#entries.get(worker.id);
        if (entry !== undefined) entry.report = message.report;
        break;
      }
      default:
        break;
    }
  };
  readonly #onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    this.#solo.delete(worker.id);
    const entry = this.#entries.get(worker.id);
    if (entry !== undefined) {
      entry.exit = { code, signal };
      this.#checkListening();
      this.#checkDone();
    } else if (this.#promise === null && this.#respawn) cluster.fork();
  };

  constructor(signal: AbortSignal | CancellationToken, workers: number | undefined, drainTimeoutMs: number, killAfterMs: number) {
    this.#drainTimeoutMs = drainTimeoutMs;
    this.#killAfterMs = killAfterMs;
    this.#respawn = workers !== undefined;
    cluster.on("message", this.#onMessage);
    cluster.on("exit", this.#onExit);
    for (let i = 0; i < (workers ?? 0); i++) cluster.fork();
    if (isAborted(signal)) void this.shutdown(signal.reason);
    else this.#unsubscribe = subscribeAbort(signal, (reason) => void this.shutdown(reason));
  }

  get isDraining(): boolean {
    return this.#promise !== null;
  }

  shutdown(reason: unknown = "shutdown"): Promise<ClusterReport> {
    if (this.#promise !== null) return this.#promise;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#startedAt = Date.now();
    this.#t0 = performance.now();
    this.#promise = new Promise((resolve) => (this.#resolve = resolve));
    const message: ClusterMessage = {
      cancelkit: CLUSTER_TAG,
      type: "stop-listening",
      deadlineAt: this.#startedAt + this.#drainTimeoutMs,
      reason: describeClusterReason(reason),
    };
    this.#stopListening = message;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker === undefined || worker.isDead()) continue;
      this.#entries.set(worker.id, { worker, report: null, killed: false, listeningStopped: false, exit: null });
      sendToWorker(worker, message);
    }
    this.#armKill(this.#drainTimeoutMs + this.#killAfterMs);
    this.#checkListening();
    this.#checkDone();
    return this.#promise;
  }

  force(reason: unknown = new ShutdownTimeoutError(0, "Cannot finish graceful shutdown: forced")): Promise<ClusterReport> {
    const promise = this.shutdown(reason);
    const message: ClusterMessage = { cancelkit: CLUSTER_TAG, type: "force", reason: describeClusterReason(reason) };
    for (const entry of this.#entries.values()) if (entry.exit === null) sendToWorker(entry.worker, message);
    this.#armKill(this.#killAfterMs);
    return promise;
  }

  /** A worker's own signal while serving: alone, unless the cluster drain starts meanwhile (invariant 2). */
  #leaveAlone(worker: Worker): void {
    setTimeout(() => {
      if (worker.isDead()) return;
      if (this.#stopListening !== null) return; // it got the cluster drain's messages already
      this.#solo.add(worker.id);
      sendToWorker(worker, { cancelkit: CLUSTER_TAG, type: "stop-listening", deadlineAt: Date.now() + this.#drainTimeoutMs, reason: "its own signal" });
    }, SOLO_LEAVE_DELAY_MS).unref();
  }

  /** Phase 2 once every worker stopped listening (or exited): the port is closed. */
  #checkListening(): void {
    if (this.#stopListening === null || this.#draining) return;
    for (const entry of this.#entries.values()) if (entry.exit === null && !entry.listeningStopped) return;
    this.#draining = true;
    for (const entry of this.#entries.values()) {
      if (entry.exit === null) sendToWorker(entry.worker, { cancelkit: CLUSTER_TAG, type: "drain" });
    }
  }

  #armKill(ms: number): void {
    if (this.#resolve === null) return;
    if (this.#killTimer !== null) clearTimeout(this.#killTimer);
    this.#killTimer = setTimeout(() => {
      this.#killTimer = null;
      for (const entry of this.#entries.values()) {
        if (entry.exit !== null) continue;
        entry.killed = true;
        entry.worker.process.kill("SIGKILL");
      }
    }, ms);
    this.#killTimer.unref();
  }

  #checkDone(): void {
    const resolve = this.#resolve;
    if (resolve === null) return;
    for (const entry of this.#entries.values()) if (entry.exit === null) return;
    this.#resolve = null;
    if (this.#killTimer !== null) clearTimeout(this.#killTimer);
    this.#killTimer = null;
    cluster.off("message", this.#onMessage);
    cluster.off("exit", this.#onExit);
    const workers = [...this.#entries.values()].map(
      (entry): ClusterWorkerReport =>
        Object.freeze({
          id: entry.worker.id,
          pid: entry.worker.process.pid,
          report: entry.report,
          exitCode: entry.exit!.code,
          signal: entry.exit!.signal,
          killed: entry.killed,
        }),
    );
    resolve(
      Object.freeze({
        startedAt: this.#startedAt,
        durationMs: performance.now() - this.#t0,
        workers: Object.freeze(workers),
        requestsCompletedWhileDraining: workers.reduce((n, w) => n + (w.report?.requestsCompletedWhileDraining ?? 0), 0),
        connectionsForced: workers.reduce((n, w) => n + (w.report?.connectionsForced ?? 0), 0),
        deadlineHit: workers.some((w) => w.killed || w.report?.deadlineHit === true),
      }),
    );
  }
}

/** The public face of the coordinator: `Object.keys()` shows the documented API only. */
class ClusterPrimaryHandle implements ClusterPrimary {
  readonly #coordinator: ClusterCoordinator;
  constructor(coordinator: ClusterCoordinator) {
    this.#coordinator = coordinator;
  }
  get isDraining(): boolean {
    return this.#coordinator.isDraining;
  }
  shutdown(): Promise<ClusterReport> {
    return this.#coordinator.shutdown();
  }
  force(reason?: unknown): Promise<ClusterReport> {
    return this.#coordinator.force(reason);
  }
}

/** Sends a message unless the worker's channel is gone (it is draining or exiting already). */
function sendToWorker(worker: Worker, message: ClusterMessage): void {
  if (!worker.isConnected()) return;
  try {
    worker.send(message, undefined, () => {});
  } catch {
    // The channel closed between the check and the send: the worker is leaving.
  }
}

/**
 * Runs a `node:cluster` primary: turns one shutdown token into a drain of
 * every worker, with one deadline, no respawn while draining, and one
 * aggregated report.
 *
 * When `signal` is cancelled, every live worker is told to drain, with the
 * deadline `drainTimeoutMs` from that moment; a worker still alive
 * `killAfterMs` after it is sent SIGKILL. Workers that exit from then on
 * are not replaced. `shutdown()` resolves once every worker has exited,
 * with each worker's own {@link ShutdownReport}; the primary then holds
 * nothing and exits on its own. Workers must call {@link clusterWorker}.
 *
 * A second signal should escalate: pass
 * `onSecondSignal: () => void primary.force()` to `shutdown()`. A SIGTERM
 * sent to the whole process group reaches the workers too: each starts its
 * drain once, whichever message arrives first.
 *
 * @param options - see {@link ClusterPrimaryOptions}.
 * @returns the primary's handle.
 * @throws {TypeError} when this process is not a cluster primary, or an option has the wrong type.
 * @throws {RangeError} when a duration is negative or `workers` is not a whole number.
 *
 * @example A primary and its workers
 * ```ts
 * import cluster from "node:cluster";
 * import { createServer } from "node:http";
 * import { shutdown } from "cancelkit/signals";
 * import { clusterPrimary, clusterWorker, serve } from "cancelkit/http";
 *
 * if (cluster.isPrimary) {
 *   const primary = clusterPrimary({
 *     signal: shutdown({ onSecondSignal: () => void primary.force() }),
 *     workers: 4,
 *     drainTimeoutMs: 25_000,
 *   });
 *   const report = await primary.shutdown();
 *   console.log(`${report.workers.length} workers drained, ${report.connectionsForced} forced`);
 * } else {
 *   const server = createServer((_req, res) => res.end("ok"));
 *   // No signal for serve(): the worker's own signal goes through the primary.
 *   const graceful = serve(server, { drainTimeoutMs: 25_000 });
 *   server.listen(8080);
 *   await clusterWorker(graceful, { signal: shutdown() }); // the report, once handed to the primary
 * }
 * ```
 */
export function clusterPrimary(options: ClusterPrimaryOptions): ClusterPrimary {
  const action = "call clusterPrimary()";
  if (options === undefined) throw typeError(action, "options", "an object with a 'signal'", options);
  assertOptions(action, options, ["signal", "workers", "drainTimeoutMs", "killAfterMs"]);
  const signal = checkSignal(action, options.signal);
  if (signal === undefined) throw typeError(action, "signal", "an AbortSignal or a CancellationToken", options.signal);
  const workers = options.workers;
  if (workers !== undefined && (typeof workers !== "number" || !Number.isInteger(workers) || workers < 0)) {
    if (typeof workers !== "number") throw typeError(action, "workers", "a whole number >= 0 or undefined", workers);
    throw new RangeError(`Cannot ${action}: 'workers' must be a whole number >= 0 or undefined, received number ${workers}`);
  }
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  assertDuration(action, "drainTimeoutMs", drainTimeoutMs);
  const killAfterMs = options.killAfterMs ?? 2_000;
  assertDuration(action, "killAfterMs", killAfterMs);
  if (!cluster.isPrimary) throw new TypeError(`Cannot ${action}: this process is not a cluster primary (use clusterWorker() in workers)`);
  return new ClusterPrimaryHandle(new ClusterCoordinator(signal, workers, drainTimeoutMs, killAfterMs));
}

/**
 * Joins a `serve()` in a cluster worker to its primary: drains when the
 * primary says so, forces at the primary's deadline, and, once drained,
 * hands the report to the primary and disconnects the IPC channel, so the
 * worker exits on its own like a single process.
 *
 * The drain has two phases, paced by the primary: every worker first closes
 * its listening sockets and says so; once all have (the shared port is
 * closed), each drains its connections as `serve()` does. A worker whose
 * own `signal` is cancelled asks the primary: it leaves alone while the
 * others keep serving (the primary replaces it if it forked it), or takes
 * part in the cluster's drain when one is starting (a process-group
 * SIGTERM). Calling `graceful.shutdown()` directly drains this worker at
 * once, without the first phase.
 *
 * #### Cancellation
 * Nothing to abort: the promise settles when the drain has ended.
 *
 * @param graceful - the worker's {@link GracefulServer}, made without a `signal`.
 * @param options - see {@link ClusterWorkerOptions}.
 * @returns resolves with the drain's report once it was sent and the channel disconnected.
 * @throws {TypeError} when `graceful` is not a `GracefulServer`, or this process is not a cluster worker.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { shutdown } from "cancelkit/signals";
 * import { clusterWorker, serve } from "cancelkit/http";
 * const server = createServer((_req, res) => res.end("ok"));
 * server.listen(8080);
 * const report = await clusterWorker(serve(server), { signal: shutdown() });
 * console.assert(report.durationMs >= 0);
 * ```
 */
export function clusterWorker(graceful: GracefulServer, options?: ClusterWorkerOptions): Promise<ShutdownReport> {
  const action = "call clusterWorker()";
  const candidate = graceful as Partial<GracefulServer> | null;
  if (typeof candidate !== "object" || candidate === null || typeof candidate.shutdown !== "function" || typeof candidate.force !== "function") {
    throw typeError(action, "graceful", "a GracefulServer made by serve()", graceful);
  }
  assertOptions(action, options, ["signal"]);
  const signal = checkSignal(action, options?.signal);
  const worker = cluster.worker;
  if (!cluster.isWorker || worker === undefined) {
    throw new TypeError(`Cannot ${action}: this process is not a cluster worker (use clusterPrimary() in the primary)`);
  }
  let deadline: ReturnType<typeof setTimeout> | null = null;
  const send = (message: ClusterMessage): void => {
    try {
      process.send?.(message);
    } catch {
      // The channel is gone: the primary is gone too.
    }
  };
  const onMessage = (message: unknown): void => {
    if (!isClusterMessage(message)) return;
    if (message.type === "stop-listening") {
      if (deadline === null) {
        const ms = Math.max(0, message.deadlineAt - Date.now());
        deadline = setTimeout(
          () => void graceful.force(new ShutdownTimeoutError(ms, `Cannot finish graceful shutdown: the primary's deadline passed (${message.reason})`)),
          ms,
        );
        deadline.unref();
      }
      // Only the listening sockets, as serve() closes them (net.Server's
      // close: connections are the drain's business). Clients are told
      // nothing yet.
      for (const server of graceful.servers) if (server.listening) net.Server.prototype.close.call(server);
      send({ cancelkit: CLUSTER_TAG, type: "listening-stopped" });
    } else if (message.type === "drain") {
      void graceful.shutdown();
    } else if (message.type === "force") {
      void graceful.force(new ShutdownTimeoutError(0, `Cannot finish graceful shutdown: the primary forced it (${message.reason})`));
    }
  };
  process.on("message", onMessage);
  // This worker's own signal: the primary decides (invariant 2).
  const leave = (): void => send({ cancelkit: CLUSTER_TAG, type: "leave" });
  const unsubscribe = signal === undefined ? null : isAborted(signal) ? (leave(), null) : subscribeAbort(signal, leave);
  // A drain that started before this call is sent again in answer.
  send({ cancelkit: CLUSTER_TAG, type: "join" });
  const clear = (): void => {
    if (deadline !== null) clearTimeout(deadline);
    deadline = null;
    unsubscribe?.();
    process.off("message", onMessage);
  };
  return leaveClusterWhenDrained(graceful, worker, clear);
}

/** Waits for the drain however it starts, then reports and disconnects. */
async function leaveClusterWhenDrained(graceful: GracefulServer, worker: Worker, clear: () => void): Promise<ShutdownReport> {
  // "closed" is the drain's end, whoever started it; a clone of the state
  // receiver leaves the application's own *seen* version alone.
  const state = graceful.state.clone();
  try {
    await state.waitFor((value) => value === "closed");
  } catch {
    // The channel closed: it does so only after "closed".
  } finally {
    state.close();
  }
  const report = await graceful.shutdown();
  clear();
  if (worker.isConnected()) {
    await new Promise<void>((resolve) => {
      try {
        process.send?.({ cancelkit: CLUSTER_TAG, type: "report", report } satisfies ClusterMessage, undefined, {}, () => resolve());
      } catch {
        resolve();
      }
    });
    if (worker.isConnected()) worker.disconnect();
  }
  return report;
}
