/**
 * Channels: ports of tokio's `oneshot` and `watch`, with `AbortSignal`-aware
 * waits, `using` support and async iteration. They import nothing from Node
 * and run in browsers, Deno and Bun.
 *
 * Which one?
 * - {@link oneshot}: **one value, once**, from one sender to one receiver.
 *   A reply to a request, the result of a background job, "the server is
 *   listening on this port". The sender learns through
 *   {@link OneshotSender.closed} when nobody will read.
 * - {@link watch}: **the latest value, observed by many**. Configuration,
 *   a service's state (`"serving"` → `"draining"` → `"closed"`), progress.
 *   Receivers see the newest value and are told when it changes; values sent
 *   in between coalesce. It is not an event stream: use it when only the
 *   current state matters.
 *
 * Vocabulary (used throughout these docs):
 * - the *current value* of a watch channel is the one a sender stored last;
 *   `borrow()` reads it at any time.
 * - a receiver has *seen* the current value once `changed()`,
 *   `borrowAndUpdate()`, a successful `waitFor()` or a winning `select`
 *   branch delivered it (or `markUnchanged()` said so). Each notifying send
 *   makes the current value unseen for every receiver, whatever the value:
 *   values are never compared.
 * - a channel is *closed* for its receivers when its sender (for watch:
 *   every sender) is closed, and for its senders when its receiver (for
 *   watch: every receiver) is closed. JavaScript has no destructors, so
 *   where tokio drops a handle you call `close()`, or let `using` call
 *   `[Symbol.dispose]()`.
 *
 * Every wait (`recv`, `changed`, `waitFor`, `closed`) takes
 * `{ signal }`, an `AbortSignal` or a `CancellationToken`; an aborted wait
 * rejects with the signal's reason, unchanged, and consumes nothing.
 * Receivers are `select` branches that consume only when they win.
 *
 * ```ts
 * import { oneshot, watch } from "cancelkit/channels";
 * const [reply, response] = oneshot<string>();
 * reply.send("pong");
 * console.assert((await response.recv()) === "pong");
 *
 * const [state, observer] = watch("serving");
 * state.send("draining");
 * console.assert((await observer.changed()) === "draining");
 * ```
 *
 * @module
 */
export {
  oneshot,
  OneshotSender,
  OneshotReceiver,
  type OneshotWaitOptions,
  type OneshotTryRecvResult,
} from "./oneshot.js";
export { watch, WatchSender, WatchReceiver, type WatchWaitOptions } from "./watch.js";
export { ChannelClosedError, isChannelClosedError } from "../internal/errors.js";
