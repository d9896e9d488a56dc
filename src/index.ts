/**
 * cancelkit: Rust's shutdown toolbox for every JavaScript runtime.
 *
 * This entry point holds everything platform-neutral: cancellation tokens,
 * channels and `select`. The Node-only parts live in `cancelkit/signals`
 * (process signals, `shutdown()`) and `cancelkit/http` (graceful serve).
 *
 * @module
 */
export {
  CancellationToken,
  CancelGuard,
  TaskTracker,
  type CancelRegistration,
  type TimeoutOptions,
  type TaskTrackerWaitOptions,
} from "./cancel/index.js";
export {
  CancelkitError,
  ChannelClosedError,
  ShutdownTimeoutError,
  isChannelClosedError,
  isShutdownTimeoutError,
  type CancelkitErrorCode,
} from "./internal/errors.js";
