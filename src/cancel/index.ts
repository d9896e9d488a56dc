/**
 * Cancellation: tokens that are *cancelled* once, with a *reason*, and tell
 * every *child*, callback, promise and native `AbortSignal` that asked.
 *
 * - {@link CancellationToken}: the token. Hand a callee `token.child()` when it
 *   may cancel its own work, or `token.signal` when it should only observe.
 *   `CancellationToken.from(signal)`, `.any([...])` and `.timeout(ms)` derive
 *   tokens from signals and time without the leaks of `AbortSignal.any`.
 * - {@link TaskTracker}: counts work so shutdown can wait for it.
 * - {@link shareToken} and {@link adoptToken}: a token that crosses threads
 *   (worker threads, Web Workers, worker pools), readable synchronously from
 *   a busy loop through shared memory.
 *
 * Vocabulary: a token is *cancelled* when `cancel(reason)` reached it; the
 * *reason* is the value it was cancelled with; a *child* is cancelled with
 * its parent, never the other way round; *disposing* a token detaches it
 * without cancelling it.
 *
 * ```ts
 * import { CancellationToken } from "cancelkit/cancel";
 * const server = new CancellationToken();
 * const request = server.child();
 * request.onCancel((reason) => console.log("request stopped:", reason));
 * server.cancel("SIGTERM");
 * ```
 *
 * @module
 */
export {
  CancellationToken,
  CancelGuard,
  type CancelRegistration,
  type TimeoutOptions,
} from "./cancellation-token.js";
export { TaskTracker, type TaskTrackerWaitOptions } from "./task-tracker.js";
export {
  shareToken,
  adoptToken,
  TokenShare,
  SharedToken,
  type SharedTokenHandle,
  type AdoptTokenOptions,
} from "./shared-token.js";
// Not exported on purpose: `subscribe`, `checkSignal` and `isAborted` are
// helpers shared with the other areas through ../internal/abort.ts.
