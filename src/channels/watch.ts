/*
 * A port of tokio's `sync::watch`: one current value, many senders, many
 * receivers, each receiver with its own *seen* version.
 *
 * Invariants:
 * - `shared.version` counts notifying sends (it never goes down); values are
 *   never compared. A receiver's `#seen` is always <= `shared.version`, and
 *   "changed" means `#seen !== shared.version`. `markChanged()` sets
 *   `#seen` to `version - 1`, which can never collide with a later version.
 * - `shared.closed` means every *sender* is closed (tokio's CLOSED bit). It is
 *   sticky. `shared.receivers === 0` is the sender side's "closed".
 * - Pending `changed()` / `waitFor()` waits of every receiver live in one list
 *   (`shared` is a `WaitList` by shape). `notify()` walks it once per send without
 *   running user code: a `changed()` wait is settled on the spot (marking its
 *   receiver seen), a `waitFor()` wait queues a check that re-runs its
 *   predicate outside the sender's call, in one microtask shared by every
 *   check queued before it runs.
 * - An aborted wait only unlinks its own node: nothing is marked seen. The
 *   one exception is a `waitFor()` whose check is still queued: the value
 *   was sent before the abort, so the abort runs that check first (and, if
 *   the predicate accepts, the wait resolves instead).
 * - An iteration (`for await`) parks in its own `changed()`-kind node, which
 *   the iterator's `return()` settles with `STOP` so it never outlives it.
 * - A value is delivered to a receiver at most once: a delivery marks the
 *   version seen first, and a wait of a receiver that has already seen the
 *   current version keeps waiting.
 */
import { ChannelClosedError, assertFunction, assertOptions } from "../internal/errors.js";
import { checkSignal, isAborted, subscribeAbort, type AbortLike } from "../internal/abort.js";
import { selectable, type SelectBranch } from "../signals/selectable.js";
import type { CancellationToken } from "../cancel/cancellation-token.js";
import {
  CHANGED,
  CLOSED_WAIT,
  WAIT_FOR,
  WaitList,
  addWaker,
  settleReject,
  settleResolve,
  wait,
  waitPromise,
  wakeList,
  type Waiter,
} from "./waiters.js";

/**
 * Options of {@link WatchReceiver.changed}, {@link WatchReceiver.waitFor} and {@link WatchSender.closed}.
 *
 * @example Bound a wait with a timeout token
 * ```ts
 * const [, rx] = watch(0);
 * const timeout = CancellationToken.timeout(10);
 * await rx.changed({ signal: timeout }).catch((reason) => console.assert(reason === timeout.reason));
 * ```
 */
export interface WatchWaitOptions {
  /** Aborts the wait: it rejects with the signal's reason, unchanged, and marks nothing seen. */
  signal?: AbortSignal | CancellationToken | undefined;
}

/** The state shared by a channel's handles; a `WaitList` by shape, not by `extends` (see oneshot.ts). */
class WatchShared<T> implements WaitList {
  head: Waiter | null = null;
  tail: Waiter | null = null;
  value: T;
  version = 0;
  senders = 1;
  receivers = 1;
  /** Every sender is closed. */
  closed = false;
  /** `tx.closed()` waiters. */
  closedWaits: WaitList | null = null;
  /** `select` wake-ups. */
  wakers: WaitList | null = null;

  constructor(value: T) {
    this.value = value;
  }
}

// Filled in by WatchReceiver's static block: they need its private fields.
let notify: (shared: WatchShared<unknown>) => void;
let newWatchReceiver: <T>(shared: WatchShared<T>, seen: number) => WatchReceiver<T>;
let newWatchSender: <T>(shared: WatchShared<T>) => WatchSender<T>;
let scheduleEvaluation: (node: Waiter) => void;
let abortWaitFor: (node: Waiter, reason: unknown) => void;
let branchReady: (rx: WatchReceiver<unknown>) => boolean;
let branchCommit: <T>(rx: WatchReceiver<T>) => T;
let branchSubscribe: (rx: WatchReceiver<unknown>, wake: () => void) => () => void;

function closedSeenError(action = "call rx.changed()"): ChannelClosedError {
  return new ChannelClosedError(`Cannot ${action}: every sender is closed and the current value is seen`);
}

function receiverClosedError(action: string): ChannelClosedError {
  return new ChannelClosedError(`Cannot ${action}: this receiver is closed`);
}

function senderClosedError(action: string, value?: unknown): ChannelClosedError {
  return new ChannelClosedError(`Cannot ${action}: this sender is closed`, value);
}

/**
 * Creates a watch channel holding `initial` as its *current value*: senders
 * replace it, receivers read it and wait for it to change.
 *
 * Use it for state that many parties observe: configuration, a service's
 * "serving" / "draining" / "closed" state, a progress value. Only the newest
 * value is kept: sends a receiver did not look at in between *coalesce* into
 * one change. For a single reply, use {@link oneshot}.
 *
 * The receiver starts having *seen* `initial`. `watch()` with no argument is
 * a channel of `undefined`, useful as a pure "something changed" signal.
 *
 * @returns `[sender, receiver]`.
 *
 * @example A pure change signal
 * ```ts
 * import { watch } from "cancelkit/channels";
 * const [tx, rx] = watch();
 * const woken = rx.changed();
 * tx.send(undefined);
 * await woken;
 * console.assert(rx.hasChanged() === false);
 * ```
 */
export function watch(): [WatchSender<undefined>, WatchReceiver<undefined>];
/**
 * Creates a watch channel holding `initial` as its *current value*: senders
 * replace it, receivers read it and wait for it to change.
 *
 * The receiver starts having *seen* `initial`.
 *
 * @typeParam T - the value's type.
 * @param initial - the first current value.
 * @returns `[sender, receiver]`.
 *
 * @example Follow a configuration
 * ```ts
 * import { watch } from "cancelkit/channels";
 * const [tx, rx] = watch({ level: "info" });
 * tx.send({ level: "debug" });
 * const config = await rx.changed();
 * console.assert(config.level === "debug");
 * ```
 */
export function watch<T>(initial: T): [WatchSender<T>, WatchReceiver<T>];
export function watch<T>(initial?: T): [WatchSender<T>, WatchReceiver<T>] {
  const shared = new WatchShared<T>(initial as T);
  return [newWatchSender(shared), newWatchReceiver(shared, 0)];
}

/**
 * A sending handle of a {@link watch} channel. Clone it for more senders; the
 * channel is *closed* for receivers once **every** sender is closed.
 *
 * Every notifying send stores the value and bumps the channel's version, so
 * each receiver sees it as one change, whatever the value (values are never
 * compared). JavaScript has no destructors: "dropping" tokio's sender is an
 * explicit {@link close} (also `[Symbol.dispose]`, for `using`).
 *
 * @example Two producers, one observer
 * ```ts
 * const [a, rx] = watch("idle");
 * const b = a.clone();
 * a.send("busy");
 * a.close();
 * b.send("idle");
 * console.assert((await rx.changed()) === "idle");
 * ```
 */
export class WatchSender<T> implements Disposable {
  #shared: WatchShared<T>;
  #closed = false;

  static {
    newWatchSender = <T>(shared: WatchShared<T>) => new WatchSender<T>(shared);
  }

  private constructor(shared: WatchShared<T>) {
    this.#shared = shared;
  }

  /**
   * Replaces the current value and notifies every receiver, unless there is
   * no receiver.
   *
   * With at least one receiver, stores `value`, bumps the version and wakes
   * every pending {@link WatchReceiver.changed} (synchronously marking it
   * seen). With none it returns `false` and **stores nothing**, like tokio:
   * use {@link sendReplace} to store regardless.
   *
   * @param value - the new current value.
   * @returns `true` if stored, `false` if there are no receivers.
   * @throws {ChannelClosedError} when this sender is closed; `error.value` is `value`.
   *
   * @example Nothing is stored without receivers
   * ```ts
   * const [tx, rx] = watch(1);
   * rx.close();
   * console.assert(tx.send(2) === false && tx.borrow() === 1);
   * ```
   */
  send(value: T): boolean {
    if (this.#closed) throw senderClosedError("call tx.send()", value);
    const shared = this.#shared;
    if (shared.receivers === 0) return false;
    shared.value = value;
    shared.version++;
    notify(shared);
    return true;
  }

  /**
   * Replaces the current value and notifies, even with no receivers; returns
   * the previous value.
   *
   * @param value - the new current value.
   * @returns the value it replaced.
   * @throws {ChannelClosedError} when this sender is closed; `error.value` is `value`.
   *
   * @example Replace and get the old value back
   * ```ts
   * const [tx] = watch("a");
   * console.assert(tx.sendReplace("b") === "a" && tx.borrow() === "b");
   * ```
   */
  sendReplace(value: T): T {
    if (this.#closed) throw senderClosedError("call tx.sendReplace()", value);
    const shared = this.#shared;
    const old = shared.value;
    shared.value = value;
    shared.version++;
    notify(shared);
    return old;
  }

  /**
   * Modifies the current value in place with `modify`, then notifies, even
   * with no receivers.
   *
   * `modify` receives the current value and runs synchronously. If it
   * throws, the error propagates and nobody is notified, but whatever it
   * changed before throwing stays visible to `borrow()` (tokio's
   * `send_modify` panic rule).
   *
   * @param modify - mutates the value.
   * @throws {TypeError} when `modify` is not a function (nothing changes).
   * @throws {ChannelClosedError} when this sender is closed.
   *
   * @example Count in place
   * ```ts
   * const [tx, rx] = watch({ hits: 0 });
   * tx.sendModify((stats) => { stats.hits++; });
   * console.assert(rx.hasChanged() && rx.borrow().hits === 1);
   * ```
   */
  sendModify(modify: (value: T) => void): void {
    assertFunction("call tx.sendModify()", "modify", modify);
    if (this.#closed) throw senderClosedError("call tx.sendModify()");
    const shared = this.#shared;
    modify(shared.value);
    shared.version++;
    notify(shared);
  }

  /**
   * Modifies the current value in place with `modify`, and notifies only if
   * it returns a truthy value.
   *
   * When `modify` returns falsy the change is *silent*: visible to
   * `borrow()`, but no version bump, so no receiver sees a change. Works
   * with no receivers. If `modify` throws, the error propagates and nobody
   * is notified.
   *
   * @param modify - mutates the value; returns whether receivers should be told.
   * @returns whether receivers were notified.
   * @throws {TypeError} when `modify` is not a function (nothing changes).
   * @throws {ChannelClosedError} when this sender is closed.
   *
   * @example Notify only on real changes
   * ```ts
   * const [tx, rx] = watch({ users: 0 });
   * const notified = tx.sendIfModified((state) => {
   *   if (state.users === 0) return false;
   *   state.users = 0;
   *   return true;
   * });
   * console.assert(notified === false && !rx.hasChanged());
   * ```
   */
  sendIfModified(modify: (value: T) => boolean): boolean {
    assertFunction("call tx.sendIfModified()", "modify", modify);
    if (this.#closed) throw senderClosedError("call tx.sendIfModified()");
    const shared = this.#shared;
    if (!modify(shared.value)) return false;
    shared.version++;
    notify(shared);
    return true;
  }

  /** The current value. Reading from the sender never marks anything seen. */
  borrow(): T {
    return this.#shared.value;
  }

  /**
   * Creates a receiver that has *seen* the current value: it reports only
   * later changes. Reopens a channel that had no receivers.
   *
   * @throws {ChannelClosedError} when this sender is closed.
   *
   * @example A late subscriber starts seen
   * ```ts
   * const [tx] = watch(1);
   * const rx = tx.subscribe();
   * console.assert(rx.hasChanged() === false && rx.borrow() === 1);
   * ```
   */
  subscribe(): WatchReceiver<T> {
    if (this.#closed) throw senderClosedError("call tx.subscribe()");
    const shared = this.#shared;
    shared.receivers++;
    return newWatchReceiver(shared, shared.version);
  }

  /**
   * Creates another sender of the same channel. The channel closes for
   * receivers only when every sender is closed.
   *
   * @throws {ChannelClosedError} when this sender is closed.
   */
  clone(): WatchSender<T> {
    if (this.#closed) throw senderClosedError("call tx.clone()");
    this.#shared.senders++;
    return new WatchSender(this.#shared);
  }

  /** How many receivers are open. */
  get receiverCount(): number {
    return this.#shared.receivers;
  }

  /** How many senders are open. */
  get senderCount(): number {
    return this.#shared.senders;
  }

  /**
   * `true` while there are no receivers: nobody is watching, and {@link send}
   * would return `false`. A {@link subscribe} makes it `false` again.
   */
  get isClosed(): boolean {
    return this.#shared.receivers === 0;
  }

  /**
   * Resolves once there are no receivers left, so a producer can stop work
   * nobody watches.
   *
   * Resolves at once if there are none now. It resolves the moment the count
   * reaches zero, even if a receiver is subscribed right after. Every call
   * returns a fresh promise.
   *
   * #### Cancellation
   * If `options.signal` aborts first, the promise rejects with the signal's
   * reason, unchanged; nothing is left registered on the channel or the
   * signal.
   *
   * @param options - `signal` aborts the wait.
   * @throws {TypeError} when `options` is not an object or `signal` is not an
   *   `AbortSignal` or `CancellationToken`.
   *
   * @example Wait until nobody watches
   * ```ts
   * const [tx, rx] = watch(0);
   * const idle = tx.closed();
   * rx.close();
   * await idle;
   * console.assert(tx.isClosed);
   * ```
   */
  closed(options?: WatchWaitOptions): Promise<void> {
    assertOptions("call tx.closed()", options, ["signal"]);
    const signal = checkSignal("call tx.closed()", options?.signal);
    if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    const shared = this.#shared;
    if (shared.receivers === 0) return Promise.resolve();
    return waitPromise<void>((shared.closedWaits ??= new WaitList()), CLOSED_WAIT, null, signal);
  }

  /**
   * Closes this sender. When it was the last open one, the channel is
   * *closed*: receivers still get an unseen current value, then their waits
   * reject with {@link ChannelClosedError}. Idempotent.
   *
   * @example The last value is still delivered
   * ```ts
   * const [tx, rx] = watch("starting");
   * tx.send("stopped");
   * tx.close();
   * console.assert((await rx.changed()) === "stopped");
   * await rx.changed().catch((error) => console.assert(error instanceof ChannelClosedError));
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const shared = this.#shared;
    if (--shared.senders === 0) {
      shared.closed = true;
      notify(shared);
    }
  }

  /** Same as {@link close}, so `using tx = …` closes it at scope exit. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A receiving handle of a {@link watch} channel: reads the *current value*
 * and waits for it to change.
 *
 * Each receiver remembers the version it has *seen*. {@link borrow} reads
 * without marking; {@link borrowAndUpdate}, {@link changed} and a successful
 * {@link waitFor} mark the current value seen. Clone it to watch from
 * several places (a clone starts from the same seen version). Iterate it
 * with `for await` to get the current value and then every change.
 *
 * The receiver is not a thenable (`await rx` does nothing special). It
 * implements `select`'s `Selectable` protocol: the branch wins on a change,
 * and a losing branch marks nothing seen.
 *
 * @example borrow() reads, borrowAndUpdate() also marks seen
 * ```ts
 * const [tx, rx] = watch(1);
 * tx.send(2);
 * console.assert(rx.borrow() === 2 && rx.hasChanged());
 * console.assert(rx.borrowAndUpdate() === 2 && !rx.hasChanged());
 * ```
 */
export class WatchReceiver<T> implements Disposable, AsyncIterable<T> {
  #shared: WatchShared<T>;
  #seen: number;
  #closed = false;

  static {
    newWatchReceiver = <T>(shared: WatchShared<T>, seen: number) => new WatchReceiver<T>(shared, seen);

    // Evaluates a waitFor() predicate in a microtask, outside the sender's call.
    const evaluate = (node: Waiter): void => {
      node.scheduled = false;
      // Settled meanwhile: by an abort, or by its receiver closing (which
      // settles every wait of that receiver, so a linked node's receiver is open).
      if (node.list === null) return;
      const rx = node.owner as WatchReceiver<unknown>;
      const shared = rx.#shared;
      const version = shared.version;
      if (version !== node.after) {
        node.after = version;
        const value = shared.value;
        let matched: boolean;
        try {
          matched = (node.predicate as (value: unknown) => boolean)(value);
        } catch (error) {
          return settleReject(node, error);
        }
        if (node.list === null) return;
        if (matched) {
          rx.#seen = version;
          return settleResolve(node, value);
        }
      }
      if (shared.closed && !node.scheduled) {
        rx.#seen = node.after;
        settleReject(node, new ChannelClosedError("Cannot call rx.waitFor(): every sender is closed and no value matched"));
      }
    };

    // select: ready when changed() would not wait; commit does what changed() would, at once.
    branchReady = (rx) => rx.#closed || rx.#shared.closed || rx.#seen !== rx.#shared.version;
    branchCommit = <T>(rx: WatchReceiver<T>): T => {
      if (rx.#closed) throw receiverClosedError("select on a watch receiver");
      const shared = rx.#shared;
      if (rx.#seen !== shared.version) {
        rx.#seen = shared.version;
        return shared.value;
      }
      throw closedSeenError("select on a watch receiver");
    };
    branchSubscribe = (rx, wake) => addWaker((rx.#shared.wakers ??= new WaitList()), rx, wake);

    // A waitFor() whose signal aborts while an evaluation is queued: the value
    // was sent before the abort, so it is evaluated now (inside the abort) and,
    // if accepted, wins. Only then does the abort reject (a no-op once settled).
    abortWaitFor = (node, reason) => {
      if (node.scheduled) evaluate(node);
      settleReject(node, reason);
    };

    // Queued checks run in one shared microtask per batch, not one closure and
    // one microtask per pending waitFor() per send. Two arrays take turns, so
    // a steady stream of sends allocates nothing. A check queued by a
    // predicate while a batch runs goes to the next batch.
    let queued: Waiter[] = [];
    let spare: Waiter[] = [];
    let drainQueued = false;
    const drain = (): void => {
      const batch = queued;
      queued = spare;
      drainQueued = false;
      for (let i = 0; i < batch.length; i++) evaluate(batch[i]!);
      // Emptied by pop(): setting `length = 0` makes V8 drop the storage,
      // and the next batch's first push would allocate it again.
      while (batch.length > 0) batch.pop();
      spare = batch;
    };

    scheduleEvaluation = (node) => {
      node.scheduled = true;
      queued.push(node);
      if (!drainQueued) {
        drainQueued = true;
        queueMicrotask(drain);
      }
    };

    notify = (shared) => {
      const version = shared.version;
      const value = shared.value;
      const closed = shared.closed;
      let error: ChannelClosedError | null = null;
      for (let node = shared.head; node !== null; ) {
        const next: Waiter | null = node.next;
        const rx = node.owner as WatchReceiver<unknown>;
        if (node.kind === CHANGED) {
          if (rx.#seen !== version) {
            rx.#seen = version;
            settleResolve(node, value);
          } else if (closed) settleReject(node, (error ??= closedSeenError()));
        } else if (!node.scheduled) scheduleEvaluation(node); // every notify follows a new version or the close
        node = next;
      }
      wakeList(shared.wakers, null);
    };
  }

  private constructor(shared: WatchShared<T>, seen: number) {
    this.#shared = shared;
    this.#seen = seen;
  }

  /**
   * The current value, without marking it seen. Prefer
   * {@link borrowAndUpdate} in a loop, or the same value may be handled twice.
   */
  borrow(): T {
    return this.#shared.value;
  }

  /** The current value, now marked *seen*. */
  borrowAndUpdate(): T {
    const shared = this.#shared;
    this.#seen = shared.version;
    return shared.value;
  }

  /**
   * Whether the current value is unseen. Never marks anything seen.
   *
   * Unlike {@link changed}, it throws once the channel is *closed*, even if
   * the current value is unseen (tokio's rule): a closed channel has nothing
   * more to say, and `borrowAndUpdate()` still reads the last value.
   *
   * @throws {ChannelClosedError} when every sender is closed, or this receiver is.
   *
   * @example hasChanged() throws once the senders close
   * ```ts
   * const [tx, rx] = watch(0);
   * tx.send(1);
   * console.assert(rx.hasChanged() === true);
   * tx.close();
   * try { rx.hasChanged(); } catch (error) { console.assert(error instanceof ChannelClosedError); }
   * ```
   */
  hasChanged(): boolean {
    if (this.#closed) throw receiverClosedError("call rx.hasChanged()");
    const shared = this.#shared;
    if (shared.closed) throw new ChannelClosedError("Cannot call rx.hasChanged(): every sender is closed");
    return this.#seen !== shared.version;
  }

  /**
   * Waits until the current value is one this receiver has not *seen*, marks
   * it seen and resolves with it.
   *
   * Resolves at once if the current value is already unseen, even when the
   * channel is closed; otherwise waits for the next notifying send. Sends in
   * quick succession are not queued: only the newest value is observed. The
   * value is marked seen synchronously inside the send that delivers it.
   * Rejects with {@link ChannelClosedError} only when the channel is
   * *closed* **and** the current value is seen (or this receiver is closed).
   *
   * #### Cancellation
   * If `options.signal` is already aborted, or aborts before a change
   * arrives, the promise rejects with the signal's reason, unchanged, and
   * **nothing is marked seen**: a later `changed()` still reports the
   * change. A change that arrived before the abort wins. Nothing is left
   * registered on the signal either way.
   *
   * @param options - `signal` aborts the wait.
   * @returns the new current value.
   * @throws {TypeError} when `options` is not an object or `signal` is not an
   *   `AbortSignal` or `CancellationToken` (thrown synchronously).
   *
   * @example React to each change until the senders close
   * ```ts
   * const [tx, rx] = watch("one");
   * tx.send("two");
   * tx.close();
   * console.assert((await rx.changed()) === "two");
   * await rx.changed().catch((error) => console.assert(error instanceof ChannelClosedError));
   * ```
   */
  changed(options?: WatchWaitOptions): Promise<T> {
    let signal: AbortLike | undefined;
    if (options !== undefined) {
      assertOptions("call rx.changed()", options, ["signal"]);
      signal = checkSignal("call rx.changed()", options.signal);
      if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    }
    if (this.#closed) return Promise.reject(receiverClosedError("call rx.changed()"));
    const shared = this.#shared;
    const version = shared.version;
    if (this.#seen !== version) {
      this.#seen = version;
      return Promise.resolve(shared.value);
    }
    if (shared.closed) return Promise.reject(closedSeenError());
    return waitPromise<T>(shared, CHANGED, this, signal);
  }

  /**
   * Waits until `predicate` accepts the current value, marks that value
   * *seen* and resolves with it.
   *
   * The current value is checked first, **even if already seen**; then
   * `predicate` runs on each newer value (intermediate values may be
   * skipped), in a microtask after the send, never inside it. If the channel
   * is *closed*, the last value is checked once if it was not yet, then the
   * promise rejects with {@link ChannelClosedError}. If `predicate` throws,
   * the promise rejects with that error.
   *
   * #### Cancellation
   * If `options.signal` is already aborted, or aborts while no newer value
   * is waiting to be checked, the promise rejects with the signal's reason,
   * unchanged, and nothing is marked seen. A value sent before the abort
   * wins: if the abort comes before the queued check ran (same turn as the
   * send), `predicate` runs on that value inside the abort, and only a
   * rejected value lets the abort through. Nothing is left registered on the
   * signal.
   *
   * @param predicate - called with candidate values; return `true` to accept.
   * @param options - `signal` aborts the wait.
   * @returns the accepted value.
   * @throws {TypeError} when `predicate` is not a function, or `options` /
   *   `signal` are invalid (thrown synchronously, before anything happens).
   *
   * @example Wait for a state
   * ```ts
   * const [tx, rx] = watch<"serving" | "draining" | "closed">("serving");
   * const drained = rx.waitFor((state) => state === "closed");
   * tx.send("draining");
   * tx.send("closed");
   * console.assert((await drained) === "closed");
   * ```
   */
  waitFor(predicate: (value: T) => boolean, options?: WatchWaitOptions): Promise<T> {
    assertFunction("call rx.waitFor()", "predicate", predicate);
    let signal: AbortLike | undefined;
    if (options !== undefined) {
      assertOptions("call rx.waitFor()", options, ["signal"]);
      signal = checkSignal("call rx.waitFor()", options.signal);
      if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    }
    if (this.#closed) return Promise.reject(receiverClosedError("call rx.waitFor()"));
    const shared = this.#shared;
    const version = shared.version;
    const value = shared.value;
    let matched: boolean;
    try {
      matched = predicate(value);
    } catch (error) {
      return Promise.reject(error);
    }
    if (matched) {
      this.#seen = version;
      return Promise.resolve(value);
    }
    // The predicate may have acted on the channel or the signal: look again.
    if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(receiverClosedError("call rx.waitFor()"));
    if (shared.closed && shared.version === version) {
      this.#seen = version;
      return Promise.reject(new ChannelClosedError("Cannot call rx.waitFor(): every sender is closed and no value matched"));
    }
    const [promise, node] = wait<T>(shared, WAIT_FOR, this);
    node.predicate = predicate;
    node.after = version;
    if (signal !== undefined) node.unsubscribe = subscribeAbort(signal, (reason) => abortWaitFor(node, reason));
    // A send made by the predicate itself happened before the node was linked.
    if (shared.version !== version) scheduleEvaluation(node);
    return promise;
  }

  /**
   * Marks the current value unseen, so {@link hasChanged} is `true` and
   * {@link changed} resolves at once with the current value. Wakes this
   * receiver's pending `changed()` and `select` branches.
   *
   * @example Handle the current value as if it had just changed
   * ```ts
   * const [, rx] = watch("config");
   * rx.markChanged();
   * console.assert((await rx.changed()) === "config");
   * ```
   */
  markChanged(): void {
    const shared = this.#shared;
    const version = shared.version;
    // Also when the value is unseen already: a pending waitFor() may have
    // checked it (a check marks nothing seen unless it accepts), and it must
    // count as changed for that wait too (tokio's wait_for has seen what it checked).
    this.#seen = version - 1;
    for (let node = shared.head; node !== null; ) {
      const next: Waiter | null = node.next;
      if (node.owner === this) {
        if (node.kind !== CHANGED) {
          // A pending waitFor(): the current value counts as changed again, so
          // the next evaluation (a notifying send, or the close) checks it,
          // as tokio's wait_for checks a changed value once more on close.
          node.after = -1;
        } else if (this.#seen !== version) {
          // The first pending changed() gets it; the others wait for the next change.
          this.#seen = version;
          settleResolve(node, shared.value);
        }
      }
      node = next;
    }
    wakeList(shared.wakers, this);
  }

  /** Marks the current value *seen* without reading it. */
  markUnchanged(): void {
    this.#seen = this.#shared.version;
  }

  /**
   * Creates another receiver of the same channel that starts from this one's
   * *seen* version (a `markChanged()` state included). Compare
   * {@link WatchSender.subscribe}, which starts at the current version.
   *
   * @throws {ChannelClosedError} when this receiver is closed.
   *
   * @example A clone inherits an unseen change
   * ```ts
   * const [tx, rx] = watch(0);
   * tx.send(1);
   * console.assert(rx.clone().hasChanged() && !tx.subscribe().hasChanged());
   * ```
   */
  clone(): WatchReceiver<T> {
    if (this.#closed) throw receiverClosedError("call rx.clone()");
    const shared = this.#shared;
    shared.receivers++;
    return new WatchReceiver(shared, this.#seen);
  }

  /**
   * Closes this receiver. Its pending waits reject with
   * {@link ChannelClosedError}; when it was the last receiver, the senders'
   * {@link WatchSender.closed} resolves and {@link WatchSender.send} returns
   * `false` from then on. Idempotent. `borrow()` still works.
   *
   * @example The last receiver leaving stops the producer
   * ```ts
   * const [tx, rx] = watch(0);
   * rx.close();
   * console.assert(tx.isClosed && tx.send(1) === false);
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const shared = this.#shared;
    let changedError: ChannelClosedError | null = null;
    let waitForError: ChannelClosedError | null = null;
    for (let node = shared.head; node !== null; ) {
      const next: Waiter | null = node.next;
      if (node.owner === this) {
        if (node.kind === CHANGED) settleReject(node, (changedError ??= receiverClosedError("call rx.changed()")));
        else settleReject(node, (waitForError ??= receiverClosedError("call rx.waitFor()")));
      }
      node = next;
    }
    wakeList(shared.wakers, this);
    if (--shared.receivers === 0) {
      const closedWaits = shared.closedWaits;
      if (closedWaits !== null) {
        for (let node = closedWaits.head; node !== null; ) {
          const next: Waiter | null = node.next;
          settleResolve(node, undefined);
          node = next;
        }
      }
    }
  }

  /** Same as {@link close}, so `using rx = …` closes it at scope exit. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Iterates the current value first, then each value {@link changed}
   * delivers; ends after the last unseen value once every sender is closed.
   *
   * Each value is marked seen as it is delivered. Values sent while the
   * loop body runs coalesce: the next iteration gets the newest. Leaving the
   * loop (`break`, `return`, `throw`) does not close the receiver. Iterating
   * a closed receiver yields nothing. Calling the iterator's `return()` (or
   * `throw()`) while a `next()` is waiting for a change ends that wait at
   * once: the `next()` resolves `done`, and nothing is marked seen.
   *
   * @example Iterate until the senders close
   * ```ts
   * const [tx, rx] = watch(1);
   * setTimeout(() => { tx.send(2); tx.close(); });
   * const seen: number[] = [];
   * for await (const value of rx) seen.push(value);
   * console.assert(seen.join() === "1,2");
   * ```
   */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    const pending: IterationWait = { node: null };
    const generator = this.#iterate(pending);
    // An async generator queues return() and throw() behind a pending next(),
    // which may wait for a change forever: end that wait first, so they settle
    // now and no waiter is left linked into the channel.
    const stop = (): void => {
      const node = pending.node;
      if (node !== null) {
        pending.node = null;
        settleResolve(node, STOP);
      }
    };
    const finish = generator.return;
    const fail = generator.throw;
    generator.return = function (this: AsyncGenerator<T, void, undefined>, value) {
      stop();
      return finish.call(this, value);
    };
    generator.throw = function (this: AsyncGenerator<T, void, undefined>, error: unknown) {
      stop();
      return fail.call(this, error);
    };
    return generator;
  }

  async *#iterate(pending: IterationWait): AsyncGenerator<T, void, undefined> {
    if (this.#closed) return;
    yield this.borrowAndUpdate();
    for (;;) {
      if (this.#closed) return;
      const shared = this.#shared;
      const version = shared.version;
      let value: T;
      if (this.#seen !== version) {
        this.#seen = version;
        value = shared.value;
      } else if (shared.closed) return;
      else {
        const [promise, node] = wait<T | typeof STOP>(shared, CHANGED, this);
        pending.node = node;
        let delivered: T | typeof STOP;
        try {
          delivered = await promise;
        } catch {
          return; // ChannelClosedError: this receiver, or every sender, closed
        } finally {
          pending.node = null;
        }
        if (delivered === STOP) return;
        value = delivered;
      }
      yield value;
    }
  }

  /**
   * One `select` branch over this receiver: ready when {@link changed} would
   * not wait. The winner gets the new current value and marks it seen (or
   * gets the {@link ChannelClosedError}); a loser marks nothing.
   */
  [selectable](): SelectBranch<T> {
    return new WatchBranch(this);
  }
}

/** One `select` branch over a watch receiver (a class, not four closures: select is hot). */
class WatchBranch<T> implements SelectBranch<T> {
  readonly #rx: WatchReceiver<T>;

  constructor(rx: WatchReceiver<T>) {
    this.#rx = rx;
  }

  poll(): boolean {
    return branchReady(this.#rx);
  }

  commit(): T {
    return branchCommit(this.#rx);
  }

  subscribe(wake: () => void): () => void {
    return branchSubscribe(this.#rx, wake);
  }
}

/** Ends an iteration's pending `changed()` wait when the iterator's `return()` is called. */
const STOP: unique symbol = Symbol("watch iteration stopped");

/** The `changed()` wait an iteration is parked in, if any. */
interface IterationWait {
  node: Waiter | null;
}

