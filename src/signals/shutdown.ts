/*
 * shutdown(): a CancellationToken cancelled by the first shutdown source.
 *
 * Invariants:
 * 1. While the token is pending it holds one `process` listener per
 *    configured signal, an `unref()`ed timer (with `timeoutMs`) and one
 *    subscription on the parent (with `parent`). None of them keeps the
 *    process alive.
 * 2. When the token is cancelled, by any source or by `token.cancel()`, the
 *    timer and the parent subscription are released at once; the signal
 *    listeners are removed too unless the second-signal policy needs them.
 * 3. Disposing the token releases everything and never cancels it.
 * 4. Options are validated before any listener is installed.
 */
import { ReleasingToken, setRelease } from "./releasing-token.js";
import { CancellationToken } from "../cancel/cancellation-token.js";
import { isAborted, ownerOf, subscribeAbort } from "../internal/abort.js";
import { assertDuration, assertOptions, CancelkitError, rangeError, ShutdownTimeoutError, typeError } from "../internal/errors.js";
import { LongTimer } from "../internal/long-timer.js";
import { checkSignalNames, signalNumber, type ProcessSignalName } from "./process-signal.js";
import { isAbortSignal } from "../internal/guards.js";
import { publish, shutdownChannel } from "../internal/diagnostics.js";

/**
 * What a {@link shutdown} token does when a configured signal arrives after
 * it was already cancelled (by a first signal, the timeout, the parent, or
 * `cancel()`):
 *
 * - `"default"`: nothing of ours is listening any more (the listeners are
 *   removed on cancel), so Node's default action applies: SIGINT and SIGTERM
 *   terminate the process, killed by that signal. No `process.exit` call.
 * - `"exit"`: `process.exit(128 + signal number)` (130 for SIGINT, 143 for
 *   SIGTERM), which runs `exit` handlers.
 * - `"ignore"`: keep listening and do nothing, until the token is disposed.
 * - a function: called with the signal name and the token for every further
 *   signal, until the token is disposed (e.g. to force the HTTP drain
 *   deadline now). It runs inside the `process` signal listener, so an error
 *   it throws is an uncaught exception.
 */
export type SecondSignalAction =
  | "default"
  | "exit"
  | "ignore"
  | ((signal: ProcessSignalName, token: CancellationToken) => void);

/** Options of {@link shutdown}. */
export interface ShutdownOptions {
  /**
   * The signals that start the shutdown. An empty array listens for none
   * (only `timeoutMs` and `parent` then).
   * @defaultValue ["SIGINT", "SIGTERM"]
   */
  signals?: readonly ProcessSignalName[];
  /**
   * Cancel the token this many milliseconds after `shutdown()` was called,
   * with a {@link ShutdownTimeoutError}. The timer does not keep the process alive.
   */
  timeoutMs?: number;
  /** Cancel the token when this token or signal is cancelled, with its reason unchanged. */
  parent?: AbortSignal | CancellationToken;
  /**
   * What a signal does once the token is already cancelled; see {@link SecondSignalAction}.
   * @defaultValue "default"
   */
  onSecondSignal?: SecondSignalAction;
}

/**
 * The *reason* of a {@link shutdown} token cancelled by an OS signal: which
 * signal arrived.
 *
 * @example Tell the sources apart
 * ```ts
 * import { isSignalReceivedError, isShutdownTimeoutError, shutdown } from "cancelkit/signals";
 * const token = shutdown({ timeoutMs: 60_000 });
 * const reason = await token.cancelled();
 * if (isSignalReceivedError(reason)) console.log(`received ${reason.signal}`);
 * else if (isShutdownTimeoutError(reason)) console.log("ran for a minute");
 * ```
 */
export class SignalReceivedError extends CancelkitError {
  /** Always `"CANCELKIT_ERR_SIGNAL_RECEIVED"`. */
  readonly code = "CANCELKIT_ERR_SIGNAL_RECEIVED" as const;
  /** Always `"SignalReceivedError"`. */
  override readonly name = "SignalReceivedError";
  /** The signal that arrived, e.g. `"SIGTERM"`. */
  readonly signal: ProcessSignalName;
  /** Its number on this platform (`15` for SIGTERM); `128 + signalNumber` is the conventional exit code. */
  readonly signalNumber: number;

  /**
   * @param signal - the signal that arrived.
   * @param message - overrides the default message.
   */
  constructor(signal: ProcessSignalName, message?: string) {
    const number = signalNumber(signal);
    super(message ?? `Shutdown requested: received ${signal} (signal ${number})`);
    this.signal = signal;
    this.signalNumber = number;
  }
}

/**
 * `true` when `error` is a {@link SignalReceivedError} from any copy of this library.
 *
 * @example Log which signal stopped the service
 * ```ts
 * const reason = await token.cancelled();
 * if (isSignalReceivedError(reason)) console.log(`stopped by ${reason.signal}`);
 * ```
 */
export function isSignalReceivedError(error: unknown): error is SignalReceivedError {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "CANCELKIT_ERR_SIGNAL_RECEIVED";
}

const SHUTDOWN_ACTION = "create shutdown()";


/**
 * Creates a `CancellationToken` cancelled by the first shutdown source: one
 * of the `signals` (by default SIGINT and SIGTERM), the `timeoutMs`
 * deadline, or the `parent`; or, as any token, by `token.cancel(reason)`.
 *
 * The *reason* names the source: a {@link SignalReceivedError} (with
 * `.signal`) for a signal, a {@link ShutdownTimeoutError} (with
 * `.timeoutMs`) for the deadline, the parent's reason, unchanged, for the
 * parent. This is Go's `signal.NotifyContext` with a cause.
 *
 * While the token is pending, its signal listeners replace Node's default
 * action for those signals (the process no longer exits on them by itself);
 * like Node's own signal listeners and `AbortSignal.timeout`, a pending
 * token does not keep the process alive: your server or queue consumer does.
 * Once the token is cancelled, a further signal escalates as
 * `onSecondSignal` says; by default the listeners are removed so the second
 * Ctrl+C kills the process the normal way. The library never calls
 * `process.exit` unless `onSecondSignal: "exit"` asks for it.
 *
 * Dispose the token (`using`, or `token[Symbol.dispose]()`) when the service
 * is done: every listener and timer is removed, Node's default signal
 * behaviour returns, and the token is not cancelled.
 *
 * #### Cancellation
 * The token is the cancellation: pass it (or `token.signal`, or its
 * children) to the work that must stop. If `parent` is already cancelled,
 * the token is born cancelled with the parent's reason and arms no timer;
 * every configured signal is then a second signal, so it installs listeners
 * only when `onSecondSignal` is not `"default"` (dispose it to remove them).
 *
 * @param options - see {@link ShutdownOptions}.
 * @returns a token; dispose it to remove its listeners.
 * @throws {TypeError} when an option has the wrong type.
 * @throws {TypeError} for an unknown option (the message names the nearest
 *   known one).
 * @throws {RangeError} for an unknown or uncatchable signal name, a
 *   negative or non-finite `timeoutMs`, or an `onSecondSignal` string other
 *   than `"default"`, `"exit"` or `"ignore"` (docs/errors.md says why these
 *   are `RangeError`s).
 *
 * @example A server that stops on Ctrl+C or SIGTERM
 * ```ts
 * import { createServer } from "node:http";
 * import { shutdown, isSignalReceivedError } from "cancelkit/signals";
 * using token = shutdown();
 * const server = createServer((req, res) => res.end("ok")).listen(8080);
 * const reason = await token.cancelled();
 * console.log(isSignalReceivedError(reason) ? `stopping on ${reason.signal}` : "stopping");
 * server.close();
 * ```
 *
 * @example Escalate on the second signal
 * ```ts
 * using token = shutdown({ onSecondSignal: "exit", timeoutMs: 30_000 });
 * ```
 */
export function shutdown(options?: ShutdownOptions): CancellationToken {
  assertOptions(SHUTDOWN_ACTION, options, ["signals", "timeoutMs", "parent", "onSecondSignal"]);
  const names =
    options?.signals === undefined
      ? (["SIGINT", "SIGTERM"] as ProcessSignalName[])
      : Array.isArray(options.signals)
        ? checkSignalNames(SHUTDOWN_ACTION, "options.signals", options.signals)
        : (() => {
            throw typeError(SHUTDOWN_ACTION, "options.signals", "an array of signal names", options.signals);
          })();
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs !== undefined) assertDuration(SHUTDOWN_ACTION, "options.timeoutMs", timeoutMs);
  // Not checkSignal(): its message would name a 'signal' option this call does not have.
  // One of our tokens' signals stands for its token (cancelled before its signal fires).
  const parentOption = options?.parent;
  const parent =
    parentOption === undefined || parentOption instanceof CancellationToken
      ? parentOption
      : isAbortSignal(parentOption)
        ? ownerOf(parentOption)
        : (() => {
            throw typeError(SHUTDOWN_ACTION, "options.parent", "an AbortSignal, a CancellationToken or undefined", parentOption);
          })();
  const onSecondOption = options?.onSecondSignal;
  const onSecond = onSecondOption === undefined ? "default" : onSecondOption;
  if (typeof onSecond !== "function" && onSecond !== "default" && onSecond !== "exit" && onSecond !== "ignore") {
    // A string outside the set is a value error, anything else a type error (docs/errors.md).
    const expected = `"default", "exit", "ignore" or a function`;
    if (typeof onSecond === "string") throw rangeError(SHUTDOWN_ACTION, "options.onSecondSignal", expected, onSecond);
    throw typeError(SHUTDOWN_ACTION, "options.onSecondSignal", expected, onSecond);
  }

  const token = new ReleasingToken();
  const bornCancelled = parent !== undefined && isAborted(parent);
  if (bornCancelled) {
    token.cancel(parent.reason);
    // Every configured signal is already a second signal. With "default"
    // that is Node's own action, so nothing is installed; any other policy
    // must hear it, exactly as if the parent had been cancelled a moment later.
    if (onSecond === "default") return token;
  }

  // Signal listeners.
  const handlers = names.map((name) => {
    const handler = (): void => {
      if (!token.isCancelled) {
        token.cancel(new SignalReceivedError(name));
        return;
      }
      if (onSecond === "exit") process.exit(128 + signalNumber(name));
      else if (typeof onSecond === "function") onSecond(name, token);
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  // Runs on cancel and again on dispose: removing a listener that is gone does nothing.
  const unlisten = (): void => {
    for (const [name, handler] of handlers) process.off(name, handler);
  };
  if (bornCancelled) {
    // No timer, no parent subscription, and nothing published: the parent's
    // cancellation was the event (docs/diagnostics.md).
    setRelease(token, unlisten);
    return token;
  }

  // Deadline, chained past 2³¹−1 ms; never keeps the process alive.
  const timer = timeoutMs !== undefined ? new LongTimer(() => token.cancel(new ShutdownTimeoutError(timeoutMs)), timeoutMs, false) : null;
  const unsubscribeParent = parent === undefined ? null : subscribeAbort(parent, (reason) => token.cancel(reason));
  // Idempotent, as both calls are: it runs on cancel and again on dispose.
  const releaseSources = (): void => {
    timer?.clear();
    unsubscribeParent?.();
  };

  token.onCancel((reason) => {
    releaseSources();
    if (onSecond === "default") unlisten();
    publish(shutdownChannel, () => ({ source: "shutdown", token, reason }));
  });
  setRelease(token, () => {
    releaseSources();
    unlisten();
  });
  return token;
}
