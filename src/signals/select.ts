/*
 * select: tokio's `select!` as a function over named branches.
 *
 * Invariants:
 * 1. Nothing is consumed before a winner is chosen. Pollable branches
 *    (tokens, signals, `Selectable`s) are only `poll()`ed until one wins;
 *    exactly one `commit()` runs per select, on the winner, in the same
 *    synchronous turn as the `poll()` that chose it.
 * 2. Wakes are coalesced: a wake only schedules one microtask that re-polls
 *    every branch. So callbacks running inside somebody else's `cancel()` or
 *    `send()` never re-enter select, and branches that became ready in the
 *    same turn compete fairly.
 * 3. When a select settles (won, thrown, aborted) every subscription it made
 *    is released before its promise settles: token registrations, signal
 *    listeners, `Selectable` subscriptions (timers) — all of them even when
 *    one unsubscribe throws — and only then are function-branch tokens
 *    cancelled (user callbacks run on a fully released select). Promise
 *    branches cannot be unsubscribed (a promise has no "remove reaction");
 *    their reaction holds only a small box that is emptied at settle, never
 *    the select.
 * 4. Misuse is detected before any side effect: no function branch is called
 *    and nothing is subscribed when a branch or an option is invalid. Past
 *    that point select never throws: whatever a branch does (a `Selectable`
 *    that throws, a function that throws, a promise whose `then` throws)
 *    becomes a rejection, after every subscription was released. A `then`
 *    that throws is that branch's rejection, as for a promise that rejected,
 *    and a winner committed at the call is returned whatever the promise
 *    branches do.
 * 5. No `node:` imports: this module is part of the platform-neutral entry.
 */
import { CancellationToken } from "../cancel/cancellation-token.js";
import { checkSignal, isAborted, ownerOf, subscribeAbort, type AbortLike } from "../internal/abort.js";
import { assertOptions, booleanOption, describe, typeError } from "../internal/errors.js";
import { isSelectable, selectable, type SelectBranch, type Selectable } from "./selectable.js";
import { isAbortSignal, isThenable } from "../internal/guards.js";

/**
 * Anything `select` accepts as a branch.
 *
 * - a `CancellationToken` or an `AbortSignal`: wins when cancelled / aborted;
 *   the value is the reason;
 * - a {@link Selectable} (channel receivers, {@link Sleep}, process-signal
 *   sources, your own): wins when ready; the value is what it commits;
 * - a promise (or thenable): wins when it fulfils; a rejection rejects the select;
 * - a function `(token) => promise`: called once, when the select starts
 *   waiting; its `token` is cancelled if the branch loses;
 * - `false`, `null`, `undefined` (any falsy value): the branch is disabled,
 *   like tokio's `, if condition`.
 *
 * @typeParam T - the value the branch yields when it wins.
 */
export type SelectSource<T = unknown> =
  | CancellationToken
  | AbortSignal
  | Selectable<T>
  | PromiseLike<T>
  | ((token: CancellationToken) => PromiseLike<T> | T)
  | false
  | null
  | undefined
  | 0
  | "";

/**
 * The value a branch yields when it wins: the reason for tokens and signals,
 * the committed value for a {@link Selectable}, the fulfilled value for
 * promises and functions, `never` for a branch that is always disabled.
 *
 * @typeParam S - the branch's type.
 */
export type SelectValue<S> = S extends CancellationToken | AbortSignal
  ? unknown
  : S extends Selectable<infer T>
    ? T
    : S extends (token: CancellationToken) => infer R
      ? Awaited<R>
      : S extends PromiseLike<infer T>
        ? Awaited<T>
        : never;

/**
 * What `select` resolves with: `{ key, value }` for the branch that won, as a
 * discriminated union, so `switch (result.key)` narrows `value`.
 *
 * Branches that are always disabled (typed `false`, `null` or `undefined`)
 * are not part of the union.
 *
 * @typeParam B - the object of branches passed to `select`.
 */
export type SelectResult<B> = {
  [K in keyof B & string]: [SelectValue<B[K]>] extends [never]
    ? never
    : {
        /** The name of the branch that won. */
        readonly key: K;
        /** What the winning branch produced: a token's reason, a channel's value, … */
        readonly value: SelectValue<B[K]>;
      };
}[keyof B & string];

/** Options of {@link select}. */
export interface SelectOptions {
  /**
   * Choose among branches ready at the same time in declaration order instead
   * of at random (tokio's `biased;`). Put the shutdown branch first so a busy
   * branch cannot starve it. Declaration order is `Object.keys` order, so
   * integer-like keys (`"0"`, `"1"`) come before the others.
   * @defaultValue false
   */
  biased?: boolean;
  /**
   * Aborts the select itself: it rejects with the reason, unchanged, and
   * consumes nothing.
   */
  signal?: AbortSignal | CancellationToken;
}

// Entry kinds. A token and an AbortSignal are one kind: `isAborted`,
// `reason` and `subscribeAbort` take either (a token's own signal is raced as
// its token, see `classify`).
const ABORT = 0;
const SELECTABLE = 1;
const PROMISE = 2;
const FUNCTION = 3;
type Kind = typeof ABORT | typeof SELECTABLE | typeof PROMISE | typeof FUNCTION;

// Outcomes of promise and function branches.
const UNSETTLED = 0;
const FULFILLED = 1;
const REJECTED = 2;

const ACTION = "call select()";

/** One enabled branch of one select call. */
class Entry {
  readonly key: string;
  readonly kind: Kind;
  /** The user's value: token, signal, selectable, promise or function. */
  readonly source: unknown;
  /** For `SELECTABLE`: the branch it returned. */
  branch: SelectBranch<unknown> | null = null;
  /** For `ABORT` and `SELECTABLE`: releases the subscription. */
  unsubscribe: (() => void) | null = null;
  /** For `PROMISE` and `FUNCTION`: the select still interested, or `null` once it settled. */
  owner: SelectState | null = null;
  outcome: typeof UNSETTLED | typeof FULFILLED | typeof REJECTED = UNSETTLED;
  result: unknown = undefined;
  /** For `FUNCTION`: the token handed to the function. */
  token: CancellationToken | null = null;
  /** For `PROMISE`: reading its `then` threw this; the branch rejects with it once subscribed. */
  thenError: { error: unknown } | null = null;

  constructor(key: string, kind: Kind, source: unknown) {
    this.key = key;
    this.kind = kind;
    this.source = source;
  }

  /** Ready now, without consuming anything. */
  poll(): boolean {
    switch (this.kind) {
      case ABORT:
        return isAborted(this.source as AbortLike);
      case SELECTABLE:
        return this.branch!.poll();
      default:
        return this.outcome !== UNSETTLED;
    }
  }

  /** Takes the value; throws the branch's error. Only right after `poll()` returned `true`. */
  commit(): unknown {
    switch (this.kind) {
      case ABORT:
        return (this.source as AbortLike).reason;
      case SELECTABLE:
        return this.branch!.commit();
      default:
        if (this.outcome === REJECTED) throw this.result;
        return this.result;
    }
  }
}

/** The state of one pending select (the slow path). */
class SelectState {
  readonly entries: Entry[];
  readonly biased: boolean;
  readonly signal: AbortLike | undefined;
  resolve!: (result: { key: string; value: unknown }) => void;
  reject!: (error: unknown) => void;
  scheduled = false;
  done = false;
  aborted = false;
  unsubscribeSignal: (() => void) | null = null;
  /** Shared by every branch: one closure per select. */
  readonly wake = (): void => {
    // A wake after the select settled (a late one from a broken Selectable)
    // queues a run that returns at once: `run` is the one that checks `done`.
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.run);
  };
  readonly run = (): void => {
    this.scheduled = false;
    if (this.done) return;
    if (this.aborted) {
      this.finish(null, this.signal!.reason, false);
      return;
    }
    let winner: Entry | null;
    try {
      winner = pick(this.entries, this.biased);
    } catch (error) {
      this.finish(null, error, false);
      return;
    }
    if (winner !== null) this.settleWith(winner);
  };

  constructor(entries: Entry[], biased: boolean, signal: AbortLike | undefined) {
    this.entries = entries;
    this.biased = biased;
    this.signal = signal;
  }

  settleWith(winner: Entry): void {
    let value: unknown;
    try {
      value = winner.commit();
    } catch (error) {
      this.finish(winner, error, false);
      return;
    }
    this.finish(winner, value, true);
  }

  /**
   * Releases every subscription, then tells the function branches (losers'
   * tokens cancelled, the winner's disposed), then settles: resolves with
   * `{ key: winner.key, value }` when `fulfilled`, else rejects with `value`.
   * `winner === null` means the select was aborted or failed before a winner
   * was chosen. Runs once: every caller sets off from a select not yet done.
   *
   * An unsubscribe that throws (a broken third-party `Selectable`) must not
   * leave the other subscriptions behind (timers, process listeners) nor the
   * select unsettled: every release is attempted, the select settles as
   * decided, and each error is reported as an uncaught exception on a
   * microtask, in release order, as `cancel()` reports each throwing callback.
   *
   * Nothing here clears the state's or the entries' fields beyond `owner`
   * and `token`: once settled, the state is reachable only from a pending
   * promise branch's reaction, through its entry, and those two links are
   * what such an entry must not keep (the select; the branch's token).
   */
  finish(winner: Entry | null, value: unknown, fulfilled: boolean): void {
    this.done = true;
    const entries = this.entries;
    const releaseErrors: unknown[] = [];
    if (this.unsubscribeSignal !== null) this.unsubscribeSignal();
    for (const entry of entries) {
      const unsubscribe = entry.unsubscribe;
      if (unsubscribe !== null) {
        try {
          unsubscribe();
        } catch (error) {
          releaseErrors.push(error);
        }
      }
      entry.owner = null;
    }
    // Only once nothing is subscribed any more: cancelling a token runs user
    // callbacks, which must see the select fully released.
    // Aborted: every loser carries the select's abort reason, unchanged.
    const aborted = winner === null && this.aborted;
    for (const entry of entries) {
      const token = entry.token;
      if (token === null) continue;
      entry.token = null;
      if (entry === winner) token[Symbol.dispose]();
      else token.cancel(aborted ? value : lostReason(entry.key, winner));
    }
    if (fulfilled) this.resolve({ key: winner!.key, value });
    else this.reject(value);
    for (const error of releaseErrors) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

function lostReason(key: string, winner: Entry | null): DOMException {
  return new DOMException(
    winner === null ? `The select branch '${key}' lost: the select failed` : `The select branch '${key}' lost to '${winner.key}'`,
    "AbortError",
  );
}

/** The ready branch to commit, or `null`: the first one when biased, else a uniformly random one. */
function pick(entries: Entry[], biased: boolean): Entry | null {
  let chosen: Entry | null = null;
  let ready = 0;
  for (const entry of entries) {
    if (!entry.poll()) continue;
    if (biased) return entry;
    // Reservoir sampling: each of the `ready` branches seen so far is kept with probability 1/ready.
    ready++;
    if (ready === 1 || Math.random() * ready < 1) chosen = entry;
  }
  return chosen;
}


function classify(key: string, source: unknown): Entry | null {
  if (!source) return null;
  if (source instanceof CancellationToken) return new Entry(key, ABORT, source);
  if (isSelectable(source)) return new Entry(key, SELECTABLE, source);
  // One of our tokens' signals is raced as its token: it is cancelled before its signal fires.
  if (isAbortSignal(source)) return new Entry(key, ABORT, ownerOf(source));
  if (typeof source === "function") return new Entry(key, FUNCTION, source);
  let thenable: boolean;
  try {
    thenable = isThenable(source);
  } catch (error) {
    // A `then` getter that throws: promise resolution turns that into a
    // rejection, and so does select (when the branch is subscribed).
    const entry = new Entry(key, PROMISE, source);
    entry.thenError = { error };
    return entry;
  }
  if (thenable) return new Entry(key, PROMISE, source);
  throw new TypeError(
    `Cannot ${ACTION}: 'branches.${key}' must be a CancellationToken, an AbortSignal, a Selectable, a promise, ` +
      `a function (token) => promise, or a falsy value to disable it, received ${describe(source)}`,
  );
}

function ignore(): void {}
const promiseThen = Promise.prototype.then;

/**
 * Keeps the rejections of the promise branches the select has not attached
 * to (`owner === null`), and now never will, from being reported as
 * unhandled. Never throws. Only real promises, by brand (so one from another
 * realm too), through the built-in `then` (so an overridden `then`, or one
 * whose getter throws, is never called); other thenables are left alone:
 * calling `then` on a lazy one (a query builder) would start work nobody
 * waits for. Branches of other kinds are not touched, even a `Selectable`
 * that is also a promise: its rejections are its owner's.
 */
function silenceUnwatched(entries: Entry[]): void {
  for (const entry of entries) {
    if (entry.kind !== PROMISE || entry.owner !== null) continue;
    try {
      promiseThen.call(entry.source as Promise<unknown>, undefined, ignore);
    } catch {
      // Not a promise (a thenable), or a hostile `constructor`: nothing to silence.
    }
  }
}

/**
 * Subscribes to a promise branch (or a function branch's result). Never
 * throws: a `then` that throws, or a `then` getter that did (`thenError`),
 * is that branch's rejection, exactly like a promise that rejected. The
 * first outcome wins, should a hostile `then` call both callbacks.
 */
function watchPromise(entry: Entry, promise: PromiseLike<unknown>): void {
  const onFulfilled = (value: unknown): void => {
    const owner = entry.owner;
    if (owner === null || entry.outcome !== UNSETTLED) return;
    entry.outcome = FULFILLED;
    entry.result = value;
    owner.wake();
  };
  const onRejected = (error: unknown): void => {
    const owner = entry.owner;
    if (owner === null || entry.outcome !== UNSETTLED) return;
    entry.outcome = REJECTED;
    entry.result = error;
    owner.wake();
  };
  const thenError = entry.thenError;
  if (thenError !== null) {
    onRejected(thenError.error);
    return;
  }
  try {
    if (promise instanceof Promise) promise.then(onFulfilled, onRejected);
    else Promise.resolve(promise).then(onFulfilled, onRejected);
  } catch (error) {
    onRejected(error);
  }
}

/**
 * Waits for the first of several named branches and resolves with
 * `{ key, value }` for the one that won; the others are left as they were.
 *
 * This is tokio's `select!`. `branches` is an object whose keys name the
 * branches; each value is a {@link SelectSource}: a `CancellationToken` or
 * `AbortSignal` (the value is the reason), a {@link Selectable} such as a
 * oneshot or watch receiver, a {@link Sleep}, a process-signal source (the
 * value is what it yields), a promise (the value it fulfils with), or a
 * function `(token) => promise` whose `token` is cancelled if the branch
 * loses. A falsy branch (`false`, `null`, `undefined`) is disabled, so
 * `{ tick: ready && rx }` reads like tokio's `, if ready`.
 *
 * **Two-phase, cancel-safe.** Tokens, signals and `Selectable`s are first
 * *polled*, which consumes nothing; only the winner is *committed*. So a
 * losing oneshot keeps its value and a losing watch receiver keeps its unseen
 * version. Promises and functions cannot be polled: their work runs whether
 * they win or not, and a value they produce after losing is dropped.
 *
 * **Fairness.** When several branches are ready at the moment select looks
 * (at the call, or after a wake), one of them is chosen uniformly at random;
 * `{ biased: true }` takes the first in declaration order. Pollable branches
 * that are ready when `select` is called win on the spot: their value is
 * committed before `select` returns, and no function branch is called.
 * A promise's state cannot be read synchronously, so an already-settled
 * promise competes only from the first wake on.
 *
 * **No leaks.** When the select settles, every subscription it made is gone
 * (token callbacks, signal listeners, timers of losing sleeps) before its
 * promise settles. The one exception is a promise branch: a promise cannot
 * forget a reaction, so a pending promise keeps a few hundred bytes until it
 * settles. Race long-lived things as tokens, signals or `Selectable`s, not
 * as promises (`token.cancelled()` in a loop is the classic `Promise.race` leak).
 *
 * #### Cancellation
 * With `options.signal` aborted before or while it waits, the select rejects
 * with the signal's reason, unchanged, commits nothing, and cancels the
 * tokens of its function branches with that reason. If the signal is aborted
 * in the same turn as a branch becomes ready, the abort wins.
 *
 * @param branches - an object of named branches; at least one must be enabled.
 * @param options - see {@link SelectOptions}.
 * @returns the winner's `{ key, value }`; rejects with the error a promise
 *   branch rejected with (a `then` that throws counts as a rejection) or a
 *   `Selectable` threw on commit (a closed oneshot: `ChannelClosedError`),
 *   or with the abort reason.
 * @throws {TypeError} when `branches` is not an object, when a branch is of
 *   an unsupported type (the message names its key), when every branch is
 *   disabled (tokio panics there), or when an option has the wrong type.
 *
 * @example Stop on the first shutdown source
 * ```ts
 * import { CancellationToken, select, sleep } from "cancelkit";
 * const token = new CancellationToken();
 * setTimeout(() => token.cancel("deploy"), 10);
 * const result = await select({ cancelled: token, timeout: sleep(60_000) });
 * switch (result.key) {
 *   case "cancelled": console.assert(result.value === "deploy"); break;
 *   case "timeout": break; // result.value is void
 * }
 * // The losing 60 s timer is already cleared: the process can exit now.
 * ```
 *
 * @example A losing oneshot keeps its value
 * ```ts
 * import { CancellationToken, oneshot, select } from "cancelkit";
 * const [tx, rx] = oneshot<number>();
 * const stop = CancellationToken.alreadyCancelled("stop");
 * tx.send(1);
 * const r = await select({ stop, rx }, { biased: true });
 * console.assert(r.key === "stop" && (await rx.recv()) === 1);
 * ```
 */
export function select<B extends { readonly [K in keyof B]: SelectSource<unknown> }>(
  branches: B,
  options?: SelectOptions,
): Promise<SelectResult<B>>;
export function select(branches: Record<string, SelectSource<unknown>>, options?: SelectOptions): Promise<{ key: string; value: unknown }> {
  if (typeof branches !== "object" || branches === null || Array.isArray(branches)) {
    throw typeError(ACTION, "branches", "an object of named branches", branches);
  }
  const entries: Entry[] = [];
  for (const key of Object.keys(branches)) {
    const entry = classify(key, branches[key]);
    if (entry !== null) entries.push(entry);
  }
  assertOptions(ACTION, options, ["biased", "signal"]);
  const biased = booleanOption(ACTION, "options.biased", options?.biased);
  const signal = checkSignal(ACTION, options?.signal);
  if (entries.length === 0) {
    throw new TypeError(
      `Cannot ${ACTION}: every branch is disabled, so it could never settle (received ${describe(branches)} with keys [${Object.keys(branches).join(", ")}])`,
    );
  }

  // From here on, side effects.
  if (signal !== undefined && isAborted(signal)) {
    silenceUnwatched(entries);
    return Promise.reject(signal.reason);
  }
  let winner: Entry | null;
  try {
    for (const entry of entries) {
      if (entry.kind === SELECTABLE) entry.branch = (entry.source as Selectable<unknown>)[selectable]();
    }
    winner = pick(entries, biased === true);
  } catch (error) {
    silenceUnwatched(entries);
    return Promise.reject(error);
  }

  // Fast path: a pollable branch is ready now. Commit it before returning;
  // no function is called, nothing is subscribed.
  if (winner !== null) {
    // Commit first: the winner is taken whatever the other branches do.
    let settled: Promise<{ key: string; value: unknown }>;
    try {
      settled = Promise.resolve({ key: winner.key, value: winner.commit() });
    } catch (error) {
      settled = Promise.reject(error);
    }
    silenceUnwatched(entries);
    return settled;
  }

  // Slow path: subscribe everything, call the functions, wait for a wake.
  // Wakes always go through a microtask, so nothing below can settle the
  // select synchronously.
  const state = new SelectState(entries, biased === true, signal);
  const promise = new Promise<{ key: string; value: unknown }>((resolve, reject) => {
    state.resolve = resolve;
    state.reject = reject;
  });
  const wake = state.wake;
  try {
    if (signal !== undefined) {
      state.unsubscribeSignal = subscribeAbort(signal, () => {
        state.aborted = true;
        wake();
      });
    }
    for (const entry of entries) {
      switch (entry.kind) {
        case ABORT:
          entry.unsubscribe = subscribeAbort(entry.source as AbortLike, wake);
          break;
        case SELECTABLE:
          entry.unsubscribe = entry.branch!.subscribe(wake);
          break;
        case PROMISE:
          entry.owner = state;
          watchPromise(entry, entry.source as PromiseLike<unknown>);
          break;
        // FUNCTION: called below, once nothing can throw any more.
      }
    }
  } catch (error) {
    // A Selectable whose subscribe threw: undo what was subscribed, call no
    // function, and keep the promises not reached yet from reporting an
    // unhandled rejection (as when a branch wins at the call).
    silenceUnwatched(entries);
    state.finish(null, error, false);
    return promise;
  }
  for (const entry of entries) {
    if (entry.kind !== FUNCTION) continue;
    const token = new CancellationToken();
    entry.token = token;
    entry.owner = state;
    let result: unknown;
    let thenable: boolean;
    try {
      result = (entry.source as (token: CancellationToken) => unknown)(token);
      // Inside the try: reading `then` can throw too (a getter, a proxy).
      thenable = isThenable(result);
    } catch (error) {
      // Like a promise that rejected at once: it takes part in the next poll.
      entry.outcome = REJECTED;
      entry.result = error;
      wake();
      continue;
    }
    if (thenable) watchPromise(entry, result as PromiseLike<unknown>);
    else {
      entry.outcome = FULFILLED;
      entry.result = result;
      wake();
    }
  }
  return promise;
}
