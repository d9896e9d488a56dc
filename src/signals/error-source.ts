/*
 * uncaughtErrors(): `uncaughtException` and `unhandledRejection` as a
 * shutdown source.
 *
 * Invariants:
 * 1. Our `process` listeners exist only while opted in: from the call until
 *    the token is cancelled (policy "default") or disposed. Without them
 *    Node's own behaviour applies unchanged.
 * 2. The first error cancels the token with an `UncaughtError` carrying it;
 *    what a later error does is the `onSecondError` policy, exactly as a
 *    second signal for `shutdown()`.
 * 3. Options are validated before any listener is installed; disposing
 *    removes every listener and never cancels.
 */
import { ReleasingToken, setRelease } from "./releasing-token.js";
import { CancellationToken } from "../cancel/cancellation-token.js";
import { publish, shutdownChannel } from "../internal/diagnostics.js";
import { assertOptions, CancelkitError, typeError } from "../internal/errors.js";

/** The two process events {@link uncaughtErrors} can listen for. */
export type UncaughtErrorOrigin = "uncaughtException" | "unhandledRejection";

/**
 * What {@link uncaughtErrors} does with an error that arrives after its token
 * is already cancelled:
 *
 * - `"default"`: nothing of ours is listening any more, so Node's default
 *   applies: the error is printed and the process exits with code 1 (an
 *   unhandled rejection first becomes an uncaught exception). The drain in
 *   progress is abandoned, as a second Ctrl+C abandons it.
 * - `"ignore"`: keep listening and only log it, until the token is disposed.
 * - a function: called with each further {@link UncaughtError} and the
 *   token, until the token is disposed. It runs inside the `process`
 *   listener: an error it throws reaches Node's default handling.
 */
export type SecondErrorAction = "default" | "ignore" | ((error: UncaughtError, token: CancellationToken) => void);

/** Options of {@link uncaughtErrors}. */
export interface UncaughtErrorsOptions {
  /**
   * The process events that start the shutdown.
   * @defaultValue ["uncaughtException", "unhandledRejection"]
   */
  events?: readonly UncaughtErrorOrigin[];
  /**
   * What an error does once the token is already cancelled; see {@link SecondErrorAction}.
   * @defaultValue "default"
   */
  onSecondError?: SecondErrorAction;
  /**
   * Called with every error our listeners catch (the first, and the later
   * ones `"ignore"` keeps), before the token is cancelled. Node no longer
   * prints an error it handed to a listener, so the default prints it.
   * @defaultValue writes `error.message` and the error's stack to `process.stderr`
   */
  log?: (error: UncaughtError) => void;
}

/**
 * The *reason* of an {@link uncaughtErrors} token: an error nobody caught.
 *
 * @example Log the crash that started the shutdown
 * ```ts
 * import { isUncaughtError, uncaughtErrors } from "cancelkit/signals";
 * using crash = uncaughtErrors();
 * const reason = await crash.cancelled();
 * if (isUncaughtError(reason)) console.error(reason.origin, reason.error);
 * ```
 */
export class UncaughtError extends CancelkitError {
  /** Always `"CANCELKIT_ERR_UNCAUGHT"`. */
  readonly code = "CANCELKIT_ERR_UNCAUGHT" as const;
  /** Always `"UncaughtError"`. */
  override readonly name = "UncaughtError";
  /** What was thrown or rejected with, unchanged (not always an `Error`). */
  readonly error: unknown;
  /** Which process event reported it. */
  readonly origin: UncaughtErrorOrigin;

  /**
   * @param error - what was thrown or rejected with.
   * @param origin - the process event that reported it.
   */
  constructor(error: unknown, origin: UncaughtErrorOrigin = "uncaughtException") {
    const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    super(`Shutdown requested: ${origin === "unhandledRejection" ? "unhandled rejection" : "uncaught exception"}: ${what}`, { cause: error });
    this.error = error;
    this.origin = origin;
  }
}

/**
 * `true` when `error` is an {@link UncaughtError} from any copy of this library.
 *
 * @example
 * ```ts
 * const reason = await token.cancelled();
 * if (isUncaughtError(reason)) process.exitCode = 1;
 * ```
 */
export function isUncaughtError(error: unknown): error is UncaughtError {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "CANCELKIT_ERR_UNCAUGHT";
}

const UNCAUGHT_ACTION = "create uncaughtErrors()";
const ORIGINS: readonly UncaughtErrorOrigin[] = ["uncaughtException", "unhandledRejection"];


function printUncaught(error: UncaughtError): void {
  const inner = error.error;
  const detail = inner instanceof Error && inner.stack !== undefined ? inner.stack : String(inner);
  process.stderr.write(`${error.message}\n${detail}\n`);
}

/**
 * Creates a `CancellationToken` cancelled by the first uncaught exception or
 * unhandled rejection, so a crash drains in-flight work instead of dropping
 * it (what `close-with-grace` does).
 *
 * The *reason* is an {@link UncaughtError}: `.error` is what was thrown,
 * `.origin` the event. It composes with the other sources through the token
 * tree: `shutdown({ parent: uncaughtErrors() })` is cancelled by a signal, a
 * timeout or a crash, with that reason. When the first error arrives,
 * `log(error)` runs (it prints by default), `process.exitCode` is set to 1
 * if nothing set it (the process still ends as a failure, but on its own,
 * after the drain), then the token is cancelled.
 *
 * A second error while draining escalates as `onSecondError` says: by
 * default our listeners are gone once the token is cancelled, so it crashes
 * the process the Node way, like a second Ctrl+C.
 *
 * Nothing changes Node's behaviour until this is called: the listeners are
 * installed by the call, and removed on cancel ("default") or when the
 * token is disposed (`using`). Disposing never cancels. Other
 * `uncaughtException` listeners still run; Node prints nothing for an error
 * a listener handled.
 *
 * #### Cancellation
 * The token is the cancellation: give it (or a `shutdown()` token that has
 * it as `parent`) to `serve()` and to the work that must stop.
 *
 * @param options - see {@link UncaughtErrorsOptions}.
 * @returns a token; dispose it to remove its listeners.
 * @throws {TypeError} when an option is unknown or has the wrong type, or
 *   `events` names something else.
 *
 * @example A crash drains the server like SIGTERM does
 * ```ts
 * import { serve } from "cancelkit/http";
 * import { shutdown, uncaughtErrors } from "cancelkit/signals";
 * using crash = uncaughtErrors();
 * using stop = shutdown({ parent: crash });
 * const graceful = serve((req, res) => res.end("ok"), { signal: stop });
 * graceful.server.listen(8080);
 * const report = await graceful.state.waitFor((s) => s === "closed").then(() => graceful.shutdown());
 * console.assert(report.deadlineHit === false || report.deadlineHit === true);
 * ```
 */
export function uncaughtErrors(options?: UncaughtErrorsOptions): CancellationToken {
  assertOptions(UNCAUGHT_ACTION, options, ["events", "onSecondError", "log"]);
  const events = options?.events === undefined ? ORIGINS : options.events;
  if (!Array.isArray(events) || events.some((e) => !ORIGINS.includes(e as UncaughtErrorOrigin))) {
    throw typeError(UNCAUGHT_ACTION, "options.events", `an array of "uncaughtException" and "unhandledRejection"`, events);
  }
  const onSecond = options?.onSecondError === undefined ? "default" : options.onSecondError;
  if (typeof onSecond !== "function" && onSecond !== "default" && onSecond !== "ignore") {
    throw typeError(UNCAUGHT_ACTION, "options.onSecondError", `"default", "ignore" or a function`, onSecond);
  }
  const log = options?.log === undefined ? printUncaught : options.log;
  if (typeof log !== "function") throw typeError(UNCAUGHT_ACTION, "options.log", "a function", log);

  const token = new ReleasingToken();
  const handlers = [...new Set(events as readonly UncaughtErrorOrigin[])].map((origin) => {
    const handler = (error: unknown): void => {
      const reason = new UncaughtError(error, origin);
      if (!token.isCancelled) {
        log(reason);
        if (process.exitCode === undefined) process.exitCode = 1;
        token.cancel(reason);
        return;
      }
      if (typeof onSecond === "function") onSecond(reason, token);
      else log(reason);
    };
    process.on(origin, handler);
    return [origin, handler] as const;
  });
  // Runs on cancel ("default") and again on dispose: removing a listener that is gone does nothing.
  const unlisten = (): void => {
    for (const [origin, handler] of handlers) process.off(origin, handler);
  };
  token.onCancel((reason) => {
    if (onSecond === "default") unlisten();
    publish(shutdownChannel, () => ({ source: "uncaughtErrors", token, reason }));
  });
  setRelease(token, unlisten);
  return token;
}
