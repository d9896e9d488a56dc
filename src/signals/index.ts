/**
 * Signals: wait for the first of several things, and turn OS signals, time
 * and parents into one shutdown token.
 *
 * - {@link select}: tokio's `select!`. Races named branches (tokens,
 *   signals, channel receivers, sleeps, process signals, promises) and
 *   resolves `{ key, value }` for the winner. Branches that can be looked at
 *   without taking are *polled* first and only the winner is *committed*, so
 *   a losing oneshot keeps its value. When it settles, every subscription it
 *   made is gone.
 * - {@link sleep} / {@link deadline}: a fixed deadline you can `await` (like
 *   `timers/promises`) or race in `select` (its timer exists only while
 *   someone waits).
 * - {@link processSignal}: OS signals as a select branch, a `recv()` and an
 *   async iterable. It listens only while someone waits, so Node's default
 *   exit comes back when nobody does.
 * - {@link shutdown}: a `CancellationToken` cancelled by the first of
 *   SIGINT / SIGTERM, a timeout, or a parent, whose *reason* names the
 *   source; a second signal escalates as configured.
 * - {@link uncaughtErrors}: uncaught exceptions and unhandled rejections as
 *   a shutdown source (`shutdown({ parent: uncaughtErrors() })`).
 * - {@link watchdog}: if the process is still alive some time after the
 *   shutdown token was cancelled, print what holds it and exit.
 *
 * Vocabulary: a branch is *ready* when committing it would not wait;
 * *polling* looks without taking; *committing* takes the value; a *loser* is
 * every branch that was not committed, and keeps what it had. A sleep is
 * *elapsed* once its deadline passed.
 *
 * `select`, `sleep` and `deadline` are platform-neutral and also exported
 * from `cancelkit`; `processSignal` and `shutdown` need Node.
 *
 * ```ts
 * import { processSignal, select, shutdown, sleep } from "cancelkit/signals";
 *
 * // A whole service: stop on Ctrl+C, SIGTERM, or after an hour.
 * using token = shutdown({ timeoutMs: 3_600_000 });
 * await serveUntil(token);
 *
 * // One wait with a timeout and a reload signal.
 * const r = await select({ stop: token, reload: processSignal("SIGHUP"), tick: sleep(5_000) });
 * ```
 *
 * @module
 */
export {
  select,
  type SelectOptions,
  type SelectResult,
  type SelectSource,
  type SelectValue,
} from "./select.js";
export { Sleep, sleep, deadline, type SleepOptions } from "./sleep.js";
export {
  ProcessSignal,
  processSignal,
  type ProcessSignalName,
  type ProcessSignalRecvOptions,
  type ProcessSignalTryRecvResult,
} from "./process-signal.js";
export {
  shutdown,
  SignalReceivedError,
  isSignalReceivedError,
  type ShutdownOptions,
  type SecondSignalAction,
} from "./shutdown.js";
export {
  uncaughtErrors,
  UncaughtError,
  isUncaughtError,
  type UncaughtErrorsOptions,
  type UncaughtErrorOrigin,
  type SecondErrorAction,
} from "./error-source.js";
export { watchdog, type WatchdogOptions, type WatchdogReport } from "./watchdog.js";
export { selectable, type Selectable, type SelectBranch } from "./selectable.js";
export { ShutdownTimeoutError, isShutdownTimeoutError } from "../internal/errors.js";
