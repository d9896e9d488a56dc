/*
 * A port of tokio's `sync::oneshot`: one value, one sender, one receiver.
 *
 * Invariants:
 * - All state lives in one `OneshotCore`, which is also the list of pending
 *   `recv()` waiters (a `WaitList` by shape), so a channel costs three small
 *   objects and a waiting `recv()` one node and one promise.
 * - `state` moves only forward: EMPTY → VALUE → TAKEN (EMPTY → TAKEN when a
 *   send hands the value straight to a pending `recv()`), or EMPTY → NONE_TX
 *   (the sender closed without sending) or EMPTY → NONE_RX (the receiver
 *   closed first): which side it was is part of the state, for the error.
 * - A value is handed to at most one receive: whoever moves VALUE → TAKEN
 *   (`recv`, `tryRecv`, a winning `select` branch, or `send` delivering it to
 *   the first pending `recv()`), all synchronously.
 * - An aborted `recv()` only unlinks its own waiter: it never touches `state`.
 * - The common case, one `recv()` without a signal, waits in the core's
 *   `firstResolve`/`firstReject` slot instead of a list node. It is used only
 *   when nothing else waits, so it is always the earliest waiter, and it can
 *   only leave by settling.
 */
import { ChannelClosedError, assertOptions } from "../internal/errors.js";
import { checkSignal, isAborted, type AbortLike } from "../internal/abort.js";
import { selectable, type SelectBranch } from "../signals/selectable.js";
import type { CancellationToken } from "../cancel/cancellation-token.js";
import {
  CLOSED_WAIT,
  RECV,
  WaitList,
  addWaker,
  capture,
  capturedReject,
  capturedResolve,
  release,
  settleReject,
  settleResolve,
  waitPromise,
  wakeList,
  type Waiter,
} from "./waiters.js";

/**
 * Options of {@link OneshotReceiver.recv} and {@link OneshotSender.closed}.
 *
 * @example Stop waiting when the request is cancelled
 * ```ts
 * const [, rx] = oneshot<number>();
 * const request = new CancellationToken();
 * const reply = rx.recv({ signal: request });
 * request.cancel("client left");
 * await reply.catch((reason) => console.assert(reason === "client left"));
 * ```
 */
export interface OneshotWaitOptions {
  /** Aborts the wait: it rejects with the signal's reason, unchanged, and consumes nothing. */
  signal?: AbortSignal | CancellationToken | undefined;
}

/**
 * What {@link OneshotReceiver.tryRecv} found: the value, nothing yet, or
 * nothing ever.
 *
 * @example Switch on the state
 * ```ts
 * const result = rx.tryRecv();
 * switch (result.state) {
 *   case "value": use(result.value); break;
 *   case "empty": break; // try again later
 *   case "closed": break; // never coming
 * }
 * ```
 */
export type OneshotTryRecvResult<T> =
  | {
      /** The value was here and is now taken. */
      readonly state: "value";
      /** The received value. */
      readonly value: T;
    }
  | {
      /** Nothing sent yet; the sender is still open. */
      readonly state: "empty";
    }
  | {
      /** No value will come (or it was already received). */
      readonly state: "closed";
    };

const EMPTY = 0; // nothing sent, the sender may still send
const VALUE = 1; // a value is held for the receiver
const TAKEN = 2; // the value was received
const NONE_TX = 3; // no value will ever come: the sender closed without sending
const NONE_RX = 4; // no value will ever come: the receiver closed first

const TX_LIVE = 0;
const TX_SENT = 1;
const TX_CLOSED = 2;

const TRY_EMPTY: OneshotTryRecvResult<never> = Object.freeze({ state: "empty" });
const TRY_CLOSED: OneshotTryRecvResult<never> = Object.freeze({ state: "closed" });

// Filled in by the classes' static blocks: their constructors are private.
let newOneshotSender: <T>(core: OneshotCore<T>) => OneshotSender<T>;
let newOneshotReceiver: <T>(core: OneshotCore<T>) => OneshotReceiver<T>;

/**
 * The state of one channel, and the list of its pending `recv()` waiters: it
 * is a `WaitList` by shape (`head`, `tail`), not by `extends`, because a
 * derived class's constructor costs about 10 ns more per channel on Node 20
 * and 24 (measured), which is most of what creating a oneshot costs.
 */
class OneshotCore<T> implements WaitList {
  head: Waiter | null = null;
  tail: Waiter | null = null;
  state = EMPTY;
  value: T | undefined = undefined;
  tx = TX_LIVE;
  rxClosed = false;
  terminated = false;
  /** The earliest pending `recv()` when it has no signal (see the invariants). */
  firstResolve: ((value: unknown) => void) | null = null;
  firstReject: ((error: unknown) => void) | null = null;
  /** `tx.closed()` waiters. */
  closedWaits: WaitList | null = null;
  /** `select` wake-ups. */
  wakers: WaitList | null = null;

  /** Takes the held value (VALUE → TAKEN). */
  take(): T {
    const value = this.value as T;
    this.value = undefined;
    this.state = TAKEN;
    this.terminated = true;
    return value;
  }

  /** The error a receive gets when no value is, or will be, there. */
  recvError(): ChannelClosedError {
    this.terminated = true;
    return new ChannelClosedError(
      this.state === TAKEN
        ? "Cannot receive from oneshot: the value was already received"
        : this.state === NONE_RX
          ? "Cannot receive from oneshot: the receiver is closed"
          : "Cannot receive from oneshot: the sender closed without sending a value",
    );
  }

  /** No value will come: reject every pending `recv()` and wake `select`. */
  fail(byRx: boolean): void {
    this.state = byRx ? NONE_RX : NONE_TX;
    const firstReject = this.firstReject;
    if (firstReject !== null) {
      this.firstResolve = this.firstReject = null;
      firstReject(this.recvError());
    }
    this.rejectWaiters();
    this.wake();
  }

  /** Rejects every `recv()` waiting in the list (the value is gone or never coming). */
  rejectWaiters(): void {
    let node = this.head;
    if (node === null) return;
    const error = this.recvError();
    while (node !== null) {
      const next: Waiter | null = node.next;
      settleReject(node, error);
      node = next;
    }
  }

  wake(): void {
    wakeList(this.wakers, null);
  }
}

/**
 * Creates a oneshot channel: a single value from one {@link OneshotSender} to
 * one {@link OneshotReceiver}.
 *
 * Use it for a reply ("here is the result of the job you asked for") or a
 * one-time signal that carries a value. For a value that changes over time,
 * use {@link watch}.
 *
 * @typeParam T - the value's type.
 * @returns `[sender, receiver]`.
 *
 * @example A reply channel
 * ```ts
 * import { oneshot } from "cancelkit/channels";
 * const [tx, rx] = oneshot<number>();
 * setTimeout(() => tx.send(42), 10);
 * console.assert((await rx.recv()) === 42);
 * ```
 */
export function oneshot<T>(): [OneshotSender<T>, OneshotReceiver<T>] {
  const core = new OneshotCore<T>();
  return [newOneshotSender(core), newOneshotReceiver(core)];
}

/**
 * The sending half of a {@link oneshot} channel: sends one value, or closes
 * without sending.
 *
 * JavaScript has no destructors, so "dropping" tokio's sender is an explicit
 * {@link close} (also `[Symbol.dispose]`, for `using`). A sender that is
 * neither used nor closed leaves its receiver waiting forever.
 *
 * @example Close the sender on every path with using
 * ```ts
 * const [reply, rx] = oneshot<number>();
 * {
 *   using tx = reply;
 *   if (Math.random() < 2) tx.send(1);
 * } // closed here: had it not sent, rx.recv() would reject
 * console.assert((await rx.recv()) === 1);
 * ```
 */
export class OneshotSender<T> implements Disposable {
  #core: OneshotCore<T>;

  static {
    newOneshotSender = <T>(core: OneshotCore<T>) => new OneshotSender<T>(core);
  }

  private constructor(core: OneshotCore<T>) {
    this.#core = core;
  }

  /**
   * Sends `value` to the receiver; returns whether it was stored.
   *
   * `true`: the value is stored for the receiver, or handed to its pending
   * {@link OneshotReceiver.recv} right away (which resolves). Like tokio's
   * `Ok`, `true` does not promise the receiver will read it: it may close
   * without reading. `false`: the receiver had already closed; nothing is
   * stored and `value` is simply not delivered. Either way the sender is
   * used up.
   *
   * @param value - the value to deliver.
   * @returns `true` if stored, `false` if the receiver was closed.
   * @throws {ChannelClosedError} when this sender already sent or was
   *   closed; `error.value` is `value`.
   *
   * @example Sending after the receiver closed returns false
   * ```ts
   * const [tx, rx] = oneshot<string>();
   * rx.close();
   * console.assert(tx.send("late") === false);
   * ```
   */
  send(value: T): boolean {
    const core = this.#core;
    if (core.tx !== TX_LIVE) {
      throw new ChannelClosedError(
        core.tx === TX_SENT
          ? "Cannot call tx.send(): this oneshot sender already sent a value"
          : "Cannot call tx.send(): this oneshot sender is closed",
        value,
      );
    }
    core.tx = TX_SENT;
    if (core.rxClosed) return false;
    const firstResolve = core.firstResolve;
    const first = core.head;
    if (firstResolve !== null || first !== null) {
      core.state = TAKEN;
      core.terminated = true;
      if (firstResolve !== null) {
        core.firstResolve = core.firstReject = null;
        firstResolve(value);
      } else settleResolve(first!, value);
      // Other concurrent recv() calls on the same receiver get nothing: one value, delivered once.
      core.rejectWaiters();
    } else {
      core.state = VALUE;
      core.value = value;
    }
    core.wake();
    return true;
  }

  /**
   * Closes this sender without sending: the receiver's pending and future
   * receives reject with {@link ChannelClosedError}.
   *
   * This is tokio's "drop the sender". After a successful {@link send} it
   * does nothing (the value stays receivable). Idempotent.
   *
   * @example The receiver learns no value will come
   * ```ts
   * const [tx, rx] = oneshot<number>();
   * tx.close();
   * await rx.recv().catch((error) => console.assert(error instanceof ChannelClosedError));
   * ```
   */
  close(): void {
    const core = this.#core;
    if (core.tx !== TX_LIVE) return;
    core.tx = TX_CLOSED;
    if (core.state === EMPTY) core.fail(false);
  }

  /** Same as {@link close}, so `using tx = …` closes it at scope exit. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * `true` once the receiver is *closed* ({@link OneshotReceiver.close} or
   * disposed): nobody will read, so a {@link send} would return `false`.
   */
  get isClosed(): boolean {
    return this.#core.rxClosed;
  }

  /**
   * Resolves once the receiver is *closed*, so a producer can abandon work
   * nobody waits for.
   *
   * Resolves at once if it already is. Every call returns a fresh promise;
   * any number may wait. Receiving the value does not close the receiver:
   * only {@link OneshotReceiver.close} (or disposing it) does.
   *
   * #### Cancellation
   * If `options.signal` aborts first, the promise rejects with the signal's
   * reason, unchanged, and nothing is left registered on the channel or on
   * the signal.
   *
   * @param options - `signal` aborts the wait.
   * @throws {TypeError} when `options` is not an object or `signal` is not an
   *   `AbortSignal` or `CancellationToken`.
   *
   * @example Stop computing a reply nobody wants
   * ```ts
   * const [tx, rx] = oneshot<number>();
   * const stop = new CancellationToken();
   * tx.closed().then(() => stop.cancel("receiver left"));
   * rx.close();
   * await stop.cancelled();
   * console.assert(stop.reason === "receiver left");
   * ```
   */
  closed(options?: OneshotWaitOptions): Promise<void> {
    assertOptions("call tx.closed()", options, ["signal"]);
    const signal = checkSignal("call tx.closed()", options?.signal);
    if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    const core = this.#core;
    if (core.rxClosed) return Promise.resolve();
    return waitPromise<void>((core.closedWaits ??= new WaitList()), CLOSED_WAIT, null, signal);
  }
}

/**
 * The receiving half of a {@link oneshot} channel.
 *
 * Receive the value with {@link recv} (waits) or {@link tryRecv} (never
 * waits). The receiver is *terminated* once a receive produced the value or
 * a {@link ChannelClosedError}; from then on every receive reports
 * `closed`.
 *
 * The receiver is deliberately not a thenable: `await rx` or returning `rx`
 * from an `async` function would otherwise wait for the value silently.
 * Call `rx.recv()`. It also implements `select`'s `Selectable` protocol: a
 * losing branch leaves the value in place.
 *
 * @example Not a thenable: an async function returns the receiver itself
 * ```ts
 * const [tx, rx] = oneshot<number>();
 * const same = await (async () => rx)();
 * console.assert(same === rx && rx.isEmpty);
 * tx.send(1);
 * console.assert((await rx.recv()) === 1);
 * ```
 */
export class OneshotReceiver<T> implements Disposable {
  #core: OneshotCore<T>;

  static {
    newOneshotReceiver = <T>(core: OneshotCore<T>) => new OneshotReceiver<T>(core);
  }

  private constructor(core: OneshotCore<T>) {
    this.#core = core;
  }

  /**
   * Waits for the value and takes it.
   *
   * Resolves with the value if one was sent, at once if it is already here.
   * Rejects with {@link ChannelClosedError} when the sender closed without
   * sending, when this receiver was closed before a value arrived, or when
   * the value was already received (the receiver is *terminated*). Each call
   * returns a fresh promise; if several are pending, the first one gets the
   * value and the others reject with {@link ChannelClosedError}. A pending
   * `recv()` is served inside `send()`, before any `select` branch over this
   * receiver (a select commits later, in a microtask); such a select then
   * rejects with {@link ChannelClosedError}.
   *
   * #### Cancellation
   * If `options.signal` is already aborted, the promise rejects with its
   * reason, unchanged, without looking at the channel. If it aborts while
   * waiting, the promise rejects with the reason and **consumes nothing**: a
   * value sent later stays receivable. A value that arrived before the abort
   * wins: the abort then has no effect. Nothing is left registered on the
   * signal either way.
   *
   * @param options - `signal` aborts the wait.
   * @returns the value.
   * @throws {TypeError} when `options` is not an object or `signal` is not an
   *   `AbortSignal` or `CancellationToken`.
   *
   * @example Give up waiting without losing the value
   * ```ts
   * const [tx, rx] = oneshot<string>();
   * const controller = new AbortController();
   * const pending = rx.recv({ signal: controller.signal });
   * controller.abort("busy");
   * await pending.catch((reason) => console.assert(reason === "busy"));
   * tx.send("done");
   * console.assert((await rx.recv()) === "done");
   * ```
   */
  recv(options?: OneshotWaitOptions): Promise<T> {
    let signal: AbortLike | undefined;
    if (options !== undefined) {
      assertOptions("call rx.recv()", options, ["signal"]);
      signal = checkSignal("call rx.recv()", options.signal);
      if (signal !== undefined && isAborted(signal)) return Promise.reject(signal.reason);
    }
    const core = this.#core;
    switch (core.state) {
      case VALUE:
        return Promise.resolve(core.take());
      case EMPTY:
        if (signal === undefined && core.firstResolve === null && core.head === null) {
          const promise = new Promise<unknown>(capture) as Promise<T>;
          core.firstResolve = capturedResolve;
          core.firstReject = capturedReject;
          release();
          return promise;
        }
        return waitPromise<T>(core, RECV, null, signal);
      default:
        return Promise.reject(core.recvError());
    }
  }

  /**
   * Takes the value if it is here, without waiting.
   *
   * - `{ state: "value", value }`: the value, now taken (the receiver is *terminated*);
   * - `{ state: "empty" }`: nothing sent yet and the sender is still open;
   *   this changes nothing;
   * - `{ state: "closed" }`: no value will come: the sender closed without
   *   sending, this receiver was closed before a value arrived, or the value
   *   was already received.
   *
   * @example The three states in turn
   * ```ts
   * const [tx, rx] = oneshot<number>();
   * console.assert(rx.tryRecv().state === "empty");
   * tx.send(1);
   * const first = rx.tryRecv();
   * console.assert(first.state === "value" && first.value === 1);
   * console.assert(rx.tryRecv().state === "closed");
   * ```
   */
  tryRecv(): OneshotTryRecvResult<T> {
    const core = this.#core;
    switch (core.state) {
      case VALUE:
        return { state: "value", value: core.take() };
      case EMPTY:
        return TRY_EMPTY;
      default:
        core.terminated = true;
        return TRY_CLOSED;
    }
  }

  /**
   * Closes this receiver: later sends return `false`, and the sender's
   * {@link OneshotSender.closed} resolves.
   *
   * A value sent before `close()` can still be received (tokio's rule). With
   * no value here, pending and later receives reject with
   * {@link ChannelClosedError}. Idempotent; a no-op after the value was received
   * except that the sender learns the receiver is gone.
   *
   * @example A value sent before close survives it
   * ```ts
   * const [tx, rx] = oneshot<number>();
   * tx.send(1);
   * rx.close();
   * console.assert((await rx.recv()) === 1);
   * ```
   */
  close(): void {
    const core = this.#core;
    // Idempotent without a guard: a second call finds no closed() waiter
    // (they resolved, and later ones resolve at once) and a state past EMPTY.
    core.rxClosed = true;
    const closedWaits = core.closedWaits;
    if (closedWaits !== null) {
      for (let node = closedWaits.head; node !== null; ) {
        const next: Waiter | null = node.next;
        settleResolve(node, undefined);
        node = next;
      }
    }
    if (core.state === EMPTY) core.fail(true);
  }

  /** Same as {@link close}, so `using rx = …` closes it at scope exit. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * `true` once a receive produced the value or a {@link ChannelClosedError}
   * (tokio's `is_terminated`); every later receive reports `closed`.
   */
  get isTerminated(): boolean {
    return this.#core.terminated;
  }

  /** `true` when no value is held right now: before a send, and after the value was taken or will never come. */
  get isEmpty(): boolean {
    return this.#core.state !== VALUE;
  }

  /**
   * One `select` branch over this receiver: ready when a receive would not
   * wait; the winner takes the value (or gets the {@link ChannelClosedError}),
   * a loser leaves it in place.
   */
  [selectable](): SelectBranch<T> {
    return new OneshotBranch(this.#core);
  }
}

class OneshotBranch<T> implements SelectBranch<T> {
  #core: OneshotCore<T>;

  constructor(core: OneshotCore<T>) {
    this.#core = core;
  }

  poll(): boolean {
    return this.#core.state !== EMPTY;
  }

  commit(): T {
    const core = this.#core;
    if (core.state === VALUE) return core.take();
    throw core.recvError();
  }

  subscribe(wake: () => void): () => void {
    const core = this.#core;
    return addWaker((core.wakers ??= new WaitList()), null, wake);
  }
}
