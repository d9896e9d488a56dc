/*
 * Invariants:
 * - `#count` is the number of tracked tasks that have not settled. A spawned
 *   task is counted before `task()` is called and un-counted exactly once,
 *   whichever way it ends (value, synchronous throw, settled promise, a
 *   `then` that throws), so a task that closes the tracker from inside still
 *   counts;
 * - every `wait()` promise created before a moment when the tracker is closed
 *   and empty is resolved at that moment, even if the tracker is reopened or
 *   a task is spawned right after (tokio's ABA guarantee): waiters are
 *   resolved synchronously at the transition, not re-checked later.
 */
import { abortable } from "../internal/abort.js";
import type { CancellationToken } from "./cancellation-token.js";
import { checkSignal } from "./cancellation-token.js";
import { assertFunction, assertOptions, typeError } from "../internal/errors.js";
import { isThenable } from "../internal/guards.js";

/** Options of {@link TaskTracker.wait}. */
export interface TaskTrackerWaitOptions {
  /** Stops waiting; the wait rejects with the signal's reason. */
  signal?: AbortSignal | CancellationToken;
}

/**
 * Counts tasks so a service can wait for them during shutdown (tokio-util's
 * `TaskTracker`).
 *
 * A tracker is *open* or *closed*, and *empty* when no tracked task is
 * pending. Closing does not stop anyone from spawning: it only says "no new
 * work is expected", so that {@link wait} can resolve once the tracker is
 * closed **and** empty at the same time.
 *
 * @example Wait for background jobs at shutdown
 * ```ts
 * const tracker = new TaskTracker();
 * tracker.spawn(async () => { await flushMetrics(); });
 * tracker.close();
 * await tracker.wait(); // resolves once flushMetrics() settled
 * ```
 */
export class TaskTracker {
  #count = 0;
  #closed = false;
  #waiters = new Set<() => void>();

  /** Creates an open, empty tracker. */
  constructor() {}

  /** `true` after {@link close} and until {@link reopen}. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The number of tracked tasks that have not settled. */
  get size(): number {
    return this.#count;
  }

  /** `true` when no tracked task is pending. */
  get isEmpty(): boolean {
    return this.#count === 0;
  }

  /**
   * Closes the tracker. Returns `true` if this call closed it, `false` if it
   * was closed already. Waiters are released at once if it is also empty.
   */
  close(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    if (this.#count === 0) this.#release();
    return true;
  }

  /** Reopens the tracker. Returns `true` if it was closed. */
  reopen(): boolean {
    if (!this.#closed) return false;
    this.#closed = false;
    return true;
  }

  /**
   * Counts a task, calls `task()`, and tracks what it returns until it settles.
   *
   * The task is counted **before** `task()` is called (tokio tracks a task
   * before it is first polled), so inside its synchronous part `size`
   * already includes it, and a task that closes the tracker from inside
   * cannot make {@link wait} resolve while it still runs. It is un-counted
   * exactly once, however it ends: `task()` returns a value (one microtask
   * later), throws synchronously (at once), or returns a promise that settles
   * (when it settles; a promise whose `then` throws counts as rejected).
   *
   * @param task - a function returning a promise or a value; a synchronous
   *   throw becomes a rejected promise.
   * @returns a promise of the task's result.
   * @throws {TypeError} when `task` is not a function.
   *
   * @example A task that closes the tracker still counts
   * ```ts
   * const tracker = new TaskTracker();
   * let release!: () => void;
   * tracker.spawn(async () => {
   *   tracker.close(); // "no more work expected": not "done"
   *   await new Promise<void>((resolve) => (release = resolve));
   * });
   * console.assert(tracker.size === 1);
   * release();
   * await tracker.wait();
   * ```
   */
  spawn<T>(task: () => PromiseLike<T> | T): Promise<T> {
    assertFunction("call tracker.spawn()", "task", task);
    this.#count++;
    let result: PromiseLike<T> | T;
    try {
      result = task();
    } catch (error) {
      this.#done();
      return Promise.reject(error);
    }
    return this.#follow(result);
  }

  /**
   * Tracks `promise` until it settles.
   *
   * It is counted at once and un-counted exactly once, when it settles (a
   * promise whose `then` throws counts as rejected with that error).
   *
   * @returns a promise that settles like `promise`, after the tracker counted it as done.
   * @throws {TypeError} when `promise` is not a thenable (an object or function
   *   with a callable `then`; `{}` and `{ then: 1 }` are not), before anything
   *   is counted.
   */
  track<T>(promise: PromiseLike<T>): Promise<T> {
    if (!isThenable(promise)) throw typeError("call tracker.track()", "promise", "a promise", promise);
    this.#count++;
    return this.#follow(promise);
  }

  /** Un-counts a counted task once `result` settles; never throws. */
  #follow<T>(result: PromiseLike<T> | T): Promise<T> {
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      this.#done();
    };
    try {
      return Promise.resolve(result).then(
        (value) => {
          done();
          return value;
        },
        (error: unknown) => {
          done();
          throw error;
        },
      );
    } catch (error) {
      // A promise with a throwing `then` (or `constructor` getter): it settled, as a rejection.
      done();
      return Promise.reject(error);
    }
  }

  #done(): void {
    if (--this.#count === 0 && this.#closed) this.#release();
  }

  /**
   * Resolves when the tracker is closed and empty at the same time.
   *
   * Resolves at once if it is closed and empty now. A wait started before a
   * moment of "closed and empty" resolves at that moment even if the tracker
   * is reopened or a task is spawned right after.
   *
   * #### Cancellation
   * With `signal`, rejects with its reason unchanged; the tracker is not affected.
   *
   * @throws {TypeError} when `options` has an unknown key (the message names
   *   the nearest known one) or `options.signal` is not a signal or token.
   */
  wait(options?: TaskTrackerWaitOptions): Promise<void> {
    assertOptions("call tracker.wait()", options, ["signal"]);
    const signal = checkSignal("call tracker.wait()", options?.signal);
    return abortable<void>(signal, (resolve) => {
      if (this.#closed && this.#count === 0) return resolve();
      const waiter = (): void => resolve();
      this.#waiters.add(waiter);
      return () => void this.#waiters.delete(waiter);
    });
  }

  #release(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const waiter of waiters) waiter();
  }
}
