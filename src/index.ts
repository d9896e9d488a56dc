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
  shareToken,
  adoptToken,
  TokenShare,
  SharedToken,
  type SharedTokenHandle,
  type AdoptTokenOptions,
} from "./cancel/index.js";
export {
  CancelkitError,
  ChannelClosedError,
  ShutdownTimeoutError,
  isChannelClosedError,
  isShutdownTimeoutError,
  type CancelkitErrorCode,
} from "./internal/errors.js";
export {
  oneshot,
  OneshotSender,
  OneshotReceiver,
  watch,
  WatchSender,
  WatchReceiver,
  type OneshotWaitOptions,
  type OneshotTryRecvResult,
  type WatchWaitOptions,
} from "./channels/index.js";
export {
  select,
  type SelectOptions,
  type SelectResult,
  type SelectSource,
  type SelectValue,
} from "./signals/select.js";
export { Sleep, sleep, deadline, type SleepOptions } from "./signals/sleep.js";
export { selectable, type Selectable, type SelectBranch } from "./signals/selectable.js";
