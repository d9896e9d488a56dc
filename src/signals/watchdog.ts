/*
 * watchdog(): after shutdown starts, exit (and say why) if the process does
 * not end on its own in time.
 *
 * Invariants:
 * 1. Nothing of it keeps the process alive: before the token is cancelled it
 *    is one subscription on the token; after, one `unref()`ed timer. A
 *    process that exits on its own never sees it fire.
 * 2. It calls `process.exit` only when it fires, which is what opting in
 *    asks for; disposing it before then disarms it completely.
 * 3. The message is computed when it fires, from what Node reports as
 *    active at that instant (the watchdog's own timer has fired, so it is
 *    not among them).
 */
import { CancellationToken } from "../cancel/cancellation-token.js";
import { isAborted, subscribeAbort } from "../internal/abort.js";
import { isAbortSignal } from "../internal/guards.js";
import { publish, watchdogChannel } from "../internal/diagnostics.js";
import { assertDuration, assertOptions, rangeError, typeError } from "../internal/errors.js";
import { LongTimer } from "../internal/long-timer.js";

/** Options of {@link watchdog}. */
export interface WatchdogOptions {
  /**
   * How long after the token is cancelled the process may still be alive.
   * Set it above the drain's whole budget (`beforeCloseMs + drainTimeoutMs +
   * forceAnswerMs`), so it fires only when something outlives the drain.
   * @defaultValue 30000
   */
  timeoutMs?: number;
  /**
   * The code the process exits with when the watchdog fires: an integer
   * from 1 to 255. The default, 124, is what `timeout(1)` exits with when
   * the command timed out, and is distinct from a crash (1) and from a
   * signal (128 + n).
   * @defaultValue 124
   */
  exitCode?: number;
  /**
   * Where the message goes, one string with a trailing newline. Called just
   * before `process.exit`.
   * @defaultValue writes it to `process.stderr`
   */
  log?: (message: string) => void;
}

/**
 * What {@link watchdog} found holding the process, as published on the
 * `cancelkit:watchdog` diagnostics channel just before the exit.
 */
export interface WatchdogReport {
  /** The `timeoutMs` that passed. */
  readonly timeoutMs: number;
  /** The code the process is about to exit with. */
  readonly exitCode: number;
  /** `process.getActiveResourcesInfo()` when it fired, e.g. `["Timeout", "TCPSocketWrap"]`. */
  readonly resources: readonly string[];
  /** Each socket and server still open, with its addresses: `"socket 127.0.0.1:41234 -> 127.0.0.1:5432"`, `"server 0.0.0.0:8080"`. */
  readonly handles: readonly string[];
  /** The message written by `log`. */
  readonly message: string;
}

const WATCHDOG_ACTION = "create watchdog()";

type Handle = {
  constructor?: { name?: string };
  listening?: unknown;
  address?: () => unknown;
  remoteAddress?: unknown;
  remotePort?: unknown;
  localAddress?: unknown;
  localPort?: unknown;
  destroyed?: unknown;
};

function formatAddress(address: unknown): string {
  if (typeof address === "string") return address; // a pipe or a Unix socket path
  if (typeof address === "object" && address !== null) {
    const { address: host, port } = address as { address?: unknown; port?: unknown };
    return `${String(host)}:${String(port)}`;
  }
  return "(no address)";
}

/** Sockets and servers with their addresses, from Node's list of active handles. */
function describeHandles(): string[] {
  // `process._getActiveHandles()` is the only way to reach the objects
  // (documentation-only deprecated, DEP0161, present in Node 20 to 24).
  const list = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  if (typeof list !== "function") return [];
  const out: string[] = [];
  for (const raw of list.call(process)) {
    // Reading a property of any other value is harmless; of null or undefined it throws.
    const handle = raw as Handle | null | undefined;
    if (handle?.listening === true && typeof handle.address === "function") {
      out.push(`server ${formatAddress(handle.address())}`);
    } else if (typeof handle?.remoteAddress === "string" && handle.destroyed !== true) {
      out.push(`socket ${String(handle.localAddress)}:${String(handle.localPort)} -> ${handle.remoteAddress}:${String(handle.remotePort)}`);
    }
  }
  return out;
}

function count(resources: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const name of resources) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([name, n]) => (n > 1 ? `${name} x${n}` : name)).join(", ");
}

/**
 * Arms a watchdog on a shutdown token: if the process is still alive
 * `timeoutMs` after the token is cancelled, it prints what holds the event
 * loop and exits with `exitCode` (124 by default).
 *
 * A service that drained should exit on its own; when it does not, the
 * cause is a handle nobody closed (a forgotten `setInterval`, a database
 * pool, a stray socket or server). The message names each kind Node reports
 * as active (`process.getActiveResourcesInfo()`: `Timeout`, `TCPSocketWrap`,
 * `TCPServerWrap`, …) and every socket and server with its addresses:
 *
 * ```text
 * cancelkit watchdog: the process is still alive 30000 ms after shutdown started; exiting with code 124.
 * Active resources: TCPServerWrap, TCPSocketWrap x2, Timeout
 *   server 127.0.0.1:8080
 *   socket 127.0.0.1:41234 -> 127.0.0.1:5432
 * ```
 *
 * When it fires: `log(message)`, then a `cancelkit:watchdog` diagnostics
 * channel message (a {@link WatchdogReport}), then
 * `process.exit(exitCode)`, which runs `exit` handlers. If `log` or a
 * subscriber throws, the process still exits with `exitCode`.
 *
 * It never keeps the process alive: before the token is cancelled it is a
 * subscription on it; after, an `unref()`ed timer (chained past 2³¹−1 ms).
 * Dispose the returned handle to disarm it (after shutdown too). An already
 * cancelled token starts the countdown at once.
 *
 * @param token - the shutdown token (for example from `shutdown()`), or any
 *   `AbortSignal` / `CancellationToken`.
 * @param options - see {@link WatchdogOptions}.
 * @returns a handle; dispose it to disarm the watchdog.
 * @throws {TypeError} when `token` is not a token or signal, or an option has
 *   the wrong type or is unknown.
 * @throws {RangeError} when `timeoutMs` is negative or not finite, or
 *   `exitCode` is not an integer from 1 to 255.
 *
 * @example Exit 10 s after SIGTERM if something still holds the process
 * ```ts
 * import { shutdown, watchdog } from "cancelkit/signals";
 * const stop = shutdown();
 * using dog = watchdog(stop, { timeoutMs: 10_000 });
 * console.assert(typeof dog[Symbol.dispose] === "function");
 * ```
 */
export function watchdog(token: AbortSignal | CancellationToken, options?: WatchdogOptions): Disposable {
  if (!(token instanceof CancellationToken) && !isAbortSignal(token)) {
    throw typeError(WATCHDOG_ACTION, "token", "an AbortSignal or a CancellationToken", token);
  }
  const source: AbortSignal | CancellationToken = token;
  assertOptions(WATCHDOG_ACTION, options, ["timeoutMs", "exitCode", "log"]);
  // `=== undefined`, not `??`: a `null` is a mistyped value, not a default.
  const timeoutMs = options?.timeoutMs === undefined ? 30_000 : options.timeoutMs;
  assertDuration(WATCHDOG_ACTION, "options.timeoutMs", timeoutMs);
  const exitCode = options?.exitCode === undefined ? 124 : options.exitCode;
  if (typeof exitCode !== "number") throw typeError(WATCHDOG_ACTION, "options.exitCode", "an integer from 1 to 255", exitCode);
  if (!Number.isInteger(exitCode) || exitCode < 1 || exitCode > 255) {
    throw rangeError(WATCHDOG_ACTION, "options.exitCode", "an integer from 1 to 255", exitCode);
  }
  const log = options?.log === undefined ? (message: string): void => void process.stderr.write(message) : options.log;
  if (typeof log !== "function") throw typeError(WATCHDOG_ACTION, "options.log", "a function", log);

  let timer: LongTimer | null = null;
  const fire = (): void => {
    const resources = process.getActiveResourcesInfo();
    const handles = describeHandles();
    const message =
      `cancelkit watchdog: the process is still alive ${timeoutMs} ms after shutdown started; exiting with code ${exitCode}.\n` +
      `Active resources: ${resources.length > 0 ? count(resources) : "(none)"}\n` +
      handles.map((line) => `  ${line}\n`).join("");
    try {
      log(message);
      publish(watchdogChannel, (): WatchdogReport => ({ timeoutMs, exitCode, resources, handles, message }));
    } finally {
      process.exit(exitCode);
    }
  };
  // Unreferenced: the watchdog never holds the process itself. Arms at most
  // once: disposing unsubscribes first, and an unsubscribed callback never runs.
  const arm = (): void => {
    timer = new LongTimer(fire, timeoutMs, false);
  };
  const unsubscribe = isAborted(source) ? null : subscribeAbort(source, arm);
  if (unsubscribe === null) arm();
  return {
    [Symbol.dispose](): void {
      // Both idempotent: disposing twice, or after firing, does nothing more.
      unsubscribe?.();
      timer?.clear();
    },
  };
}
