/*
 * Invariants of the token tree (the "links"):
 *
 * A token is five fields, so that a live child with one callback stays under
 * 100 bytes (64 B token + 32 B registration on 64-bit V8 without pointer
 * compression, which is how Node is built):
 *
 * 1. `#up` is the parent while the token is live (`null` for a root), and the
 *    shared `Cancelled` mark once it is cancelled: a token is cancelled exactly
 *    when `#up instanceof Cancelled`.
 * 2. A live token is linked into its parent's child list: `#first` on the
 *    parent; `#next` on the children (null-terminated) and `#prev`, which is
 *    circular (the first child's `#prev` is the last child), so appending and
 *    unlinking are O(1) and allocate nothing.
 * 3. A cancelled token holds no links: `cancel()` detaches the whole subtree
 *    before it runs a single callback, so callbacks may create, cancel and
 *    dispose tokens freely.
 * 4. `#slot` holds the callbacks: `null`, one `Registration`, or an `Extras`
 *    holding a registration list plus everything a token rarely needs (native
 *    controller, cached promise, source subscriptions, timer).
 *    Unregistering only clears the registration's callback (O(1)); a list
 *    drops such tombstones when it grows past twice its live size, so a
 *    long-lived token that sees register/unregister forever stays small.
 * 5. The default reason lives in the shared `Cancelled` mark of one cancel()
 *    call; the `DOMException` is created on first read, once per tree.
 * 6. A token's own `signal` fires after that token's callbacks, so during
 *    phase 2 it still reads "not aborted" while its token is cancelled.
 *    Wherever a signal is accepted (`from`, `any`, `{ signal }` options
 *    through `checkSignal`, select, shutdown), one of ours is replaced by its
 *    token (`ownerOf`) before anything asks whether it is aborted.
 */
import { assertDuration, assertFunction, assertOptions, booleanOption, typeError } from "../internal/errors.js";
import { LongTimer } from "../internal/long-timer.js";
import { isAbortSignal, isThenable } from "../internal/guards.js";

/** A handle to one `onCancel` registration; dispose it to unregister. */
export interface CancelRegistration extends Disposable {
  /** Unregisters the callback (O(1)). Idempotent; a no-op after the callback ran. */
  unregister(): void;
}

/** Options of {@link CancellationToken.timeout} and {@link CancellationToken.withTimeout}. */
export interface TimeoutOptions {
  /**
   * Keep the process alive while the timer is pending. By default the timer
   * is `unref()`ed, like `AbortSignal.timeout`.
   * @defaultValue false
   */
  keepAlive?: boolean;
}

/** Smallest registration list length at which tombstones are swept. */
const MIN_SWEEP = 8;

/**
 * The mark of one `cancel()` call, shared by every token of the subtree it
 * cancelled. Holds the reason; `undefined` stands for the default reason,
 * a `DOMException` created on first read.
 */
class Cancelled {
  value: unknown;
  constructor(reason: unknown) {
    this.value = reason;
  }
  get(): unknown {
    const value = this.value;
    return value === undefined ? (this.value = new DOMException("This operation was aborted", "AbortError")) : value;
  }
}

/** One `onCancel` registration. A `null` callback means unregistered or spent. */
class Registration implements CancelRegistration {
  callback: ((reason: unknown) => void) | null;

  constructor(callback: ((reason: unknown) => void) | null) {
    this.callback = callback;
  }

  unregister(): void {
    this.callback = null;
  }

  [Symbol.dispose](): void {
    this.callback = null;
  }
}

/** What a token rarely needs, allocated on first need. */
class Extras {
  /** The callbacks, in registration order; tombstones have a `null` callback. */
  regs: Registration | Registration[] | null;
  /** Sweep tombstones from `regs` when it reaches this length. */
  sweepAt = MIN_SWEEP;
  controller: AbortController | null = null;
  promise: Promise<unknown> | null = null;
  resolve: ((reason: unknown) => void) | null = null;
  unsubscribe: Array<() => void> | null = null;
  timer: LongTimer | null = null;

  constructor(regs: Registration | Registration[] | null) {
    this.regs = regs;
  }

  add(registration: Registration): void {
    const regs = this.regs;
    if (regs === null) this.regs = registration;
    else if (!Array.isArray(regs)) this.regs = regs.callback === null ? registration : [regs, registration];
    else {
      const n = regs.length;
      // Register-then-unregister in a loop reuses the last slot. (A list is
      // never empty here: it starts with two and a sweep is followed by a push.)
      if (regs[n - 1]!.callback === null) {
        regs[n - 1] = registration;
        return;
      }
      if (n >= this.sweepAt) {
        let live = 0;
        for (let i = 0; i < n; i++) {
          const r = regs[i]!;
          if (r.callback !== null) regs[live++] = r;
        }
        regs.length = live;
        this.sweepAt = Math.max(MIN_SWEEP, 2 * (live + 1));
      }
      regs.push(registration);
    }
  }
}

/** Clears a token's timer and drops its source subscriptions. */
function releaseSources(extras: Extras): void {
  if (extras.timer !== null) {
    extras.timer.clear();
    extras.timer = null;
  }
  const unsubscribe = extras.unsubscribe;
  if (unsubscribe !== null) {
    extras.unsubscribe = null;
    for (const release of unsubscribe) release();
  }
}

// Filled in by the class's static block: it needs the private fields.
let followSignal: (signal: AbortSignal, callback: (reason: unknown) => void) => () => void;

/** Returned for callbacks that already ran: nothing left to unregister. */
const SPENT = new Registration(null);

/** Calls a callback; an error is reported, never thrown. */
function invoke(callback: (reason: unknown) => void, reason: unknown): void {
  try {
    callback(reason);
  } catch (error) {
    report(error);
  }
}

/** Reports a callback's error the way `EventTarget` does: uncaught, later, without stopping the others. */
function report(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

const tokenOfSignal = new WeakMap<AbortSignal, CancellationToken>();

/**
 * A token that is *cancelled* once, with a *reason*, and tells everyone who
 * asked: callbacks, promises, its native `AbortSignal`, and every *child*.
 *
 * It is a port of tokio-util's `CancellationToken` built for the web
 * platform. A *child* is cancelled whenever its parent is; cancelling a child
 * never cancels the parent. Hand a callee `token.child()` (it may cancel its
 * own subtree) or `token.signal` (it can only observe).
 *
 * `cancel(reason)` marks this token and its whole subtree cancelled, with the
 * same reason, before any callback runs; then it runs the callbacks: this
 * token's in registration order, then each descendant's in pre-order
 * (children in creation order). Each token's native signal fires its `abort`
 * event right after that token's callbacks.
 *
 * Tokens hold no memory for children that are cancelled or disposed, so a
 * long-lived root can hand out a child per request forever.
 *
 * @example A request token under a server token
 * ```ts
 * import { CancellationToken } from "cancelkit";
 * const server = new CancellationToken();
 * const request = server.child();
 * const log: string[] = [];
 * request.onCancel((reason) => log.push(`request: ${String(reason)}`));
 * server.cancel("shutting down");
 * console.assert(request.isCancelled && log[0] === "request: shutting down");
 * ```
 */
export class CancellationToken implements Disposable {
  #up: CancellationToken | Cancelled | null = null;
  #first: CancellationToken | null = null;
  #prev: CancellationToken | null = null;
  #next: CancellationToken | null = null;
  #slot: Registration | Extras | null = null;

  static {
    // One native listener per foreign signal, however many tokens follow it:
    // a hidden root token fans the abort out to their callbacks.
    const followers = new WeakMap<AbortSignal, { root: CancellationToken; count: number }>();
    followSignal = (signal, callback) => {
      let entry = followers.get(signal);
      if (entry === undefined) {
        const root = new CancellationToken();
        const created = { root, count: 0 };
        const onAbort = (): void => {
          followers.delete(signal);
          root.cancel(signal.reason);
        };
        CancellationToken.#ensureExtras(root).unsubscribe = [() => signal.removeEventListener("abort", onAbort)];
        // Not `once`: cancelling the root removes the listener (its unsubscribe).
        signal.addEventListener("abort", onAbort);
        followers.set(signal, created);
        entry = created;
      }
      const live = entry;
      live.count++;
      const registration = live.root.onCancel(callback);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        registration.unregister();
        if (--live.count === 0 && !live.root.isCancelled) {
          followers.delete(signal);
          live.root[Symbol.dispose]();
        }
      };
    };
  }

  /** Creates a root token: not cancelled, with no parent. */
  constructor() {}

  // -------------------------------------------------------------------------
  // Factories

  /**
   * Creates a token that follows `source`, an `AbortSignal` or a token,
   * without leaking.
   *
   * For a token (or a token's own `signal`) this is a {@link child}. For a
   * foreign `AbortSignal` the new token listens through one shared listener
   * per signal, however many tokens follow it; it stops listening when it is
   * cancelled or disposed, and the last follower to go removes the listener.
   * An already-aborted signal gives an already-cancelled token with the
   * signal's reason. Never built on `AbortSignal.any`.
   *
   * @param source - the signal or token to follow.
   * @returns a new token, cancelled when `source` is.
   * @throws {TypeError} when `source` is neither an `AbortSignal` nor a token.
   *
   * @example Follow a request's signal
   * ```ts
   * const controller = new AbortController();
   * const token = CancellationToken.from(controller.signal);
   * controller.abort("client left");
   * console.assert(token.reason === "client left");
   * ```
   */
  static from(source: AbortSignal | CancellationToken): CancellationToken {
    if (source instanceof CancellationToken) return source.child();
    if (!isAbortSignal(source)) {
      throw typeError("create CancellationToken.from()", "source", "an AbortSignal or a CancellationToken", source);
    }
    const owner = tokenOfSignal.get(source);
    if (owner !== undefined) return owner.child();
    if (source.aborted) return CancellationToken.alreadyCancelled(source.reason);
    const token = new CancellationToken();
    CancellationToken.#ensureExtras(token).unsubscribe = [followSignal(source, (reason) => token.cancel(reason))];
    return token;
  }

  /**
   * Creates a token cancelled when any of `sources` is, with that source's
   * reason, like `AbortSignal.any` but without its leaks.
   *
   * If some sources are already cancelled, the first of them in list order
   * gives the reason and no subscription is made. Otherwise the new token
   * subscribes to each source and unsubscribes from all of them the moment it
   * is cancelled or disposed. An empty list gives a token that is never
   * cancelled by a source.
   *
   * @param sources - signals and tokens to follow.
   * @returns a new token.
   * @throws {TypeError} when `sources` is not iterable or holds anything but signals and tokens.
   *
   * @example Cancel on whichever comes first
   * ```ts
   * const shutdown = new CancellationToken();
   * const client = new AbortController();
   * const request = CancellationToken.any([shutdown, client.signal]);
   * client.abort("gone");
   * console.assert(request.reason === "gone");
   * ```
   */
  static any(sources: Iterable<AbortSignal | CancellationToken>): CancellationToken {
    if (typeof (sources as { [Symbol.iterator]?: unknown } | null | undefined)?.[Symbol.iterator] !== "function") {
      throw typeError("create CancellationToken.any()", "sources", "an iterable of AbortSignals and CancellationTokens", sources);
    }
    const list: Array<AbortSignal | CancellationToken> = Array.from(sources);
    for (let i = 0; i < list.length; i++) {
      const source = list[i];
      if (source instanceof CancellationToken) continue;
      if (!isAbortSignal(source)) {
        throw typeError("create CancellationToken.any()", `sources[${i}]`, "an AbortSignal or a CancellationToken", source);
      }
      // One of our tokens' signals stands for its token: inside a cancel
      // callback the token is already cancelled while its signal has not fired.
      list[i] = ownerOf(source);
    }
    for (const source of list) {
      if (source instanceof CancellationToken ? source.isCancelled : source.aborted) {
        return CancellationToken.alreadyCancelled(source.reason);
      }
    }
    const token = new CancellationToken();
    const cancel = (reason: unknown): void => token.cancel(reason);
    // No source is cancelled (checked above, with our signals read through
    // their tokens) and subscribing runs no user code, so no subscription
    // can cancel the token before all of them are recorded for release.
    CancellationToken.#ensureExtras(token).unsubscribe = list.map((source) => subscribe(source, cancel));
    return token;
  }

  /**
   * Creates a root token cancelled after `ms` milliseconds with a
   * `DOMException` named `TimeoutError`.
   *
   * The timer is `unref()`ed (it does not keep the process alive) unless
   * `keepAlive` is set, is cleared when the token is cancelled or disposed,
   * and delays longer than 2³¹−1 ms are chained rather than firing at once.
   *
   * @param ms - the delay, a finite number >= 0.
   * @param options - see {@link TimeoutOptions}.
   * @throws {TypeError} when `ms` is not a number, or `options` has an unknown
   *   key or a value of the wrong type (`keepAlive` must be a boolean).
   * @throws {RangeError} when `ms` is negative, `NaN` or infinite.
   *
   * @example A deadline for a whole operation
   * ```ts
   * const token = CancellationToken.timeout(5_000);
   * await fetch("http://127.0.0.1:8080/", { signal: token.signal }).catch(() => {});
   * token[Symbol.dispose](); // clears the timer if it has not fired
   * ```
   */
  static timeout(ms: number, options?: TimeoutOptions): CancellationToken {
    const action = "create CancellationToken.timeout()";
    assertDuration(action, "ms", ms);
    assertOptions(action, options, ["keepAlive"]);
    const keepAlive = booleanOption(action, "options.keepAlive", options?.keepAlive) === true;
    const token = new CancellationToken();
    CancellationToken.#armTimer(token, ms, keepAlive);
    return token;
  }

  /**
   * Creates a token that is already cancelled with `reason` (by default an
   * `AbortError` `DOMException`), like `AbortSignal.abort(reason)`.
   *
   * @param reason - the reason; `undefined` means the default reason.
   *
   * @example
   * ```ts
   * const token = CancellationToken.alreadyCancelled("no longer needed");
   * console.assert(token.isCancelled);
   * ```
   */
  static alreadyCancelled(reason?: unknown): CancellationToken {
    const token = new CancellationToken();
    token.#up = new Cancelled(reason);
    return token;
  }

  // -------------------------------------------------------------------------
  // Queries

  /** `true` once this token is cancelled. Never goes back to `false`. */
  get isCancelled(): boolean {
    return this.#up instanceof Cancelled;
  }

  /**
   * The reason this token was cancelled with, or `undefined` while it is not
   * cancelled. Without an explicit reason it is a `DOMException` named
   * `AbortError`, the same object for the whole tree that was cancelled.
   */
  get reason(): unknown {
    const up = this.#up;
    return up instanceof Cancelled ? up.get() : undefined;
  }

  /** Throws {@link reason} when this token is cancelled, like `signal.throwIfAborted()`. */
  throwIfCancelled(): void {
    const up = this.#up;
    if (up instanceof Cancelled) throw up.get();
  }

  /**
   * A real `AbortSignal` that aborts with this token's reason, for APIs that
   * take one (`fetch`, `timers/promises`, `events.once`, streams).
   *
   * It is created on first read (native signals are expensive to create on
   * Node 20). On a cancelled token it is already aborted; otherwise it fires
   * its `abort` event during `cancel()`, right after this token's callbacks.
   */
  get signal(): AbortSignal {
    const extras = CancellationToken.#ensureExtras(this);
    if (extras.controller === null) {
      const controller = new AbortController();
      extras.controller = controller;
      tokenOfSignal.set(controller.signal, this);
      const up = this.#up;
      if (up instanceof Cancelled) controller.abort(up.get());
    }
    return extras.controller.signal;
  }

  // -------------------------------------------------------------------------
  // Tree

  /**
   * Creates a *child*: cancelled whenever this token is, with the same
   * reason; cancelling or disposing the child never affects this token.
   *
   * A child of a cancelled token is born cancelled with this token's reason
   * and is never linked. O(1); allocates only the child.
   *
   * @example
   * ```ts
   * const parent = new CancellationToken();
   * const child = parent.child();
   * child.cancel();
   * console.assert(!parent.isCancelled);
   * ```
   */
  child(): CancellationToken {
    const child = new CancellationToken();
    const up = this.#up;
    if (up instanceof Cancelled) {
      child.#up = up;
      return child;
    }
    child.#up = this;
    const first = this.#first;
    if (first === null) {
      this.#first = child;
      child.#prev = child;
    } else {
      const last = first.#prev!;
      last.#next = child;
      child.#prev = last;
      first.#prev = child;
    }
    return child;
  }

  /**
   * Creates a child that is also cancelled after `ms` milliseconds with a
   * `TimeoutError` `DOMException`. The timer behaves as in {@link timeout}.
   *
   * @param ms - the delay, a finite number >= 0.
   * @param options - see {@link TimeoutOptions}.
   * @throws {TypeError} when `ms` is not a number, or `options` has an unknown
   *   key or a value of the wrong type (`keepAlive` must be a boolean).
   * @throws {RangeError} when `ms` is negative, `NaN` or infinite.
   *
   * @example
   * ```ts
   * const request = server.withTimeout(30_000);
   * ```
   */
  withTimeout(ms: number, options?: TimeoutOptions): CancellationToken {
    const action = "create token.withTimeout()";
    assertDuration(action, "ms", ms);
    assertOptions(action, options, ["keepAlive"]);
    const keepAlive = booleanOption(action, "options.keepAlive", options?.keepAlive) === true;
    const child = this.child();
    if (!child.isCancelled) CancellationToken.#armTimer(child, ms, keepAlive);
    return child;
  }

  // -------------------------------------------------------------------------
  // Cancellation

  /**
   * Cancels this token and its whole subtree with `reason`.
   *
   * First every token of the subtree is marked: `isCancelled` is `true` and
   * `reason` is set on all of them before anything else happens. Then the
   * callbacks run: this token's in registration order, then each
   * descendant's, in pre-order with children in creation order; each token's
   * native `signal` fires right after its own callbacks. A callback that
   * throws does not stop the others: its error is reported as an uncaught
   * exception on a microtask, as `EventTarget` does, and `cancel()` itself
   * never throws.
   *
   * Idempotent: the first reason wins and later calls do nothing. Never
   * cancels the parent. Iterative, so a chain a million tokens deep is fine.
   *
   * @param reason - any value; `undefined` means a `DOMException` named
   *   `AbortError`, created only when someone reads it.
   *
   * @example The first reason wins
   * ```ts
   * const token = new CancellationToken();
   * token.cancel("first");
   * token.cancel("second");
   * console.assert(token.reason === "first");
   * ```
   */
  cancel(reason?: unknown): void {
    const up = this.#up;
    if (up instanceof Cancelled) return;
    const mark = new Cancelled(reason);
    if (up !== null) CancellationToken.#unlink(this, up);

    // Fast path: a leaf (the per-request case) needs no traversal.
    if (this.#first === null) {
      this.#up = mark;
      CancellationToken.#run(this, mark);
      return;
    }

    // Phase 1: mark the subtree in pre-order (children in creation order)
    // before any callback runs. No array: each visited token's `#prev` is
    // reused as the "next in pre-order" thread, and its `#first` (no longer
    // needed once we descended) keeps its parent for the climb back up.
    let node: CancellationToken = this;
    let last: CancellationToken = this;
    for (;;) {
      const first: CancellationToken | null = node.#first;
      node.#first = node.#up as CancellationToken | null;
      node.#up = mark;
      last.#prev = node;
      last = node;
      if (first !== null) {
        node = first;
        continue;
      }
      while (node !== this && node.#next === null) node = node.#first!;
      if (node === this) break;
      node = node.#next!;
    }
    last.#prev = null;

    // Phase 2: drop the links and run the callbacks, in the same order.
    // Callbacks cannot disturb the thread: every method leaves the links of
    // a cancelled token alone.
    for (let member: CancellationToken | null = this; member !== null; ) {
      const next: CancellationToken | null = member.#prev;
      member.#first = member.#prev = member.#next = null;
      CancellationToken.#run(member, mark);
      member = next;
    }
  }

  /**
   * Registers `callback` to run once with the reason when this token is
   * cancelled.
   *
   * Callbacks run synchronously inside `cancel()`, in registration order
   * (see {@link cancel} for the order across the tree). On a token that is
   * already cancelled, `callback` runs synchronously before `onCancel`
   * returns. A throwing callback is reported as an uncaught exception on a
   * microtask and never stops the others.
   *
   * @param callback - receives the reason.
   * @returns a registration; dispose it (or call `unregister()`) to remove the callback in O(1).
   * @throws {TypeError} when `callback` is not a function.
   *
   * @example Unregister when the work is done
   * ```ts
   * using registration = token.onCancel((reason) => socket.destroy(reason as Error));
   * await work();
   * ```
   */
  onCancel(callback: (reason: unknown) => void): CancelRegistration {
    assertFunction("register token.onCancel()", "callback", callback);
    const up = this.#up;
    if (up instanceof Cancelled) {
      invoke(callback, up.get());
      return SPENT;
    }
    const registration = new Registration(callback);
    const slot = this.#slot;
    if (slot === null) this.#slot = registration;
    else if (slot instanceof Registration) {
      this.#slot = slot.callback === null ? registration : new Extras([slot, registration]);
    } else slot.add(registration);
    return registration;
  }

  /**
   * Resolves with the reason once this token is cancelled; never rejects.
   *
   * Every call returns the same promise. Awaiting it is fine; racing it over
   * and over in a loop (`Promise.race`) is the classic leak: use `select` or
   * {@link runUntilCancelled}, which unsubscribe when they settle.
   *
   * #### Cancellation
   * There is nothing to abort: the promise settles only when this token is cancelled.
   *
   * @example
   * ```ts
   * setTimeout(() => token.cancel("done"), 10);
   * console.assert((await token.cancelled()) === "done");
   * ```
   */
  cancelled(): Promise<unknown> {
    const extras = CancellationToken.#ensureExtras(this);
    if (extras.promise === null) {
      const up = this.#up;
      if (up instanceof Cancelled) extras.promise = Promise.resolve(up.get());
      else extras.promise = new Promise((resolve) => (extras.resolve = resolve));
    }
    return extras.promise;
  }

  /**
   * Runs `work` until it settles or this token is cancelled, whichever comes
   * first.
   *
   * `work` is a promise, or a function that receives a child token and
   * returns a promise (or a value); that child is disposed when `work`
   * settles, and cancelled when this token is. Resolves with the value, or
   * rejects with `work`'s error; if this token is cancelled first, rejects
   * with the reason. If both are ready at once, the value wins. On a token
   * that is already cancelled it rejects without calling `work`. Either way
   * no callback of it is left on this token.
   *
   * #### Cancellation
   * Rejects with the reason, unchanged. `work` is not stopped by this call;
   * a function `work` learns of it through its token.
   *
   * @param work - a promise, or `(token) => promise`.
   * @throws {TypeError} when `work` is neither a function nor a thenable.
   *
   * @example Give up on a slow lookup at shutdown
   * ```ts
   * const user = await shutdown.runUntilCancelled((token) => db.find(id, { signal: token.signal }));
   * ```
   */
  runUntilCancelled<T>(work: PromiseLike<T> | ((token: CancellationToken) => PromiseLike<T> | T)): Promise<T> {
    if (typeof work !== "function" && !isThenable(work)) {
      throw typeError("call token.runUntilCancelled()", "work", "a promise or a function", work);
    }
    const up = this.#up;
    if (up instanceof Cancelled) return Promise.reject(up.get());
    return new Promise<T>((resolve, reject) => {
      let child: CancellationToken | null = null;
      let registration: CancelRegistration = SPENT;
      // May run twice (work settles, then the cancel's microtask, or the
      // reverse): unregister, dispose, resolve and reject are all idempotent.
      const finish = (): void => {
        registration.unregister();
        child?.[Symbol.dispose]();
      };
      let pending: PromiseLike<T> | T;
      if (typeof work === "function") {
        child = this.child();
        try {
          pending = work(child);
        } catch (error) {
          finish();
          reject(error);
          return;
        }
      } else pending = work;
      try {
        Promise.resolve(pending).then(
          (value) => {
            finish();
            resolve(value);
          },
          (error: unknown) => {
            finish();
            reject(error);
          },
        );
      } catch (error) {
        // A promise whose `then` throws: rejected, and the child goes with it.
        finish();
        reject(error);
        return;
      }
      // Deferred by a microtask so that work which settled before the cancel
      // (its reaction already queued) wins, as in tokio.
      registration = this.onCancel((reason) =>
        queueMicrotask(() => {
          finish();
          reject(reason);
        }),
      );
    });
  }

  /**
   * Returns a guard that cancels this token when it is disposed, unless
   * `disarm()` was called first (tokio's `DropGuard`).
   *
   * @example Cancel everything spawned in a scope if the scope throws
   * ```ts
   * {
   *   using guard = token.guard();
   *   await step1(token);
   *   guard.disarm();
   * }
   * ```
   */
  guard(): CancelGuard {
    return new CancelGuard(this);
  }

  /**
   * Says "I am done with this token": detaches it from its parent and from
   * the sources it follows, and clears its timer, so nothing long-lived holds
   * it. Disposing never cancels.
   *
   * Its children are moved to its parent, in its place, so cancelling an
   * ancestor still reaches them (tokio moves them to the grandparent). A
   * disposed root's children become roots. Idempotent.
   *
   * @example A per-request token
   * ```ts
   * using request = server.child();
   * await handle(req, request);
   * ```
   */
  [Symbol.dispose](): void {
    const slot = this.#slot;
    if (slot instanceof Extras) releaseSources(slot);
    const up = this.#up;
    if (up instanceof Cancelled) return;
    const first = this.#first;
    if (first === null) {
      if (up !== null) CancellationToken.#unlink(this, up);
      return;
    }
    this.#first = null;
    const last = first.#prev!;
    if (up === null) {
      // A disposed root's children become roots.
      for (let child: CancellationToken | null = first; child !== null; ) {
        const next: CancellationToken | null = child.#next;
        child.#up = child.#prev = child.#next = null;
        child = next;
      }
      return;
    }
    // Splice the children in where this token was, keeping pre-order.
    for (let child: CancellationToken | null = first; child !== null; child = child.#next) child.#up = up;
    const prev = this.#prev!;
    const next = this.#next;
    if (up.#first === this) {
      up.#first = first;
      // `prev` is the parent's last child, or this token when it was the only one.
      first.#prev = next === null ? last : prev;
    } else {
      prev.#next = first;
      first.#prev = prev;
      if (next === null) up.#first!.#prev = last;
    }
    last.#next = next;
    if (next !== null) next.#prev = last;
    this.#up = this.#prev = this.#next = null;
  }

  // -------------------------------------------------------------------------
  // Internals

  static #ensureExtras(token: CancellationToken): Extras {
    const slot = token.#slot;
    if (slot instanceof Extras) return slot;
    const extras = new Extras(slot);
    token.#slot = extras;
    return extras;
  }

  /** Unlinks this live token from its parent's child list. */
  static #unlink(token: CancellationToken, parent: CancellationToken): void {
    const prev = token.#prev!;
    const next = token.#next;
    if (parent.#first === token) {
      parent.#first = next;
      if (next !== null) next.#prev = prev;
    } else {
      prev.#next = next;
      if (next !== null) next.#prev = prev;
      else parent.#first!.#prev = prev;
    }
    token.#up = token.#prev = token.#next = null;
  }

  /** Phase 2 for one token: its callbacks, then its native signal and promise. */
  static #run(token: CancellationToken, mark: Cancelled): void {
    const slot = token.#slot;
    if (slot === null) return;
    if (slot instanceof Registration) {
      token.#slot = null;
      const callback = slot.callback;
      if (callback !== null) {
        slot.callback = null;
        invoke(callback, mark.get());
      }
      return;
    }
    releaseSources(slot);
    const regs = slot.regs;
    if (regs !== null) {
      slot.regs = null;
      if (Array.isArray(regs)) {
        const reason = mark.get();
        for (let i = 0; i < regs.length; i++) {
          const registration = regs[i]!;
          const callback = registration.callback;
          if (callback !== null) {
            registration.callback = null;
            invoke(callback, reason);
          }
        }
      } else {
        const callback = regs.callback;
        if (callback !== null) {
          regs.callback = null;
          invoke(callback, mark.get());
        }
      }
    }
    if (slot.controller !== null) slot.controller.abort(mark.get());
    const resolve = slot.resolve;
    if (resolve !== null) {
      slot.resolve = null;
      resolve(mark.get());
    }
  }

  static #armTimer(token: CancellationToken, ms: number, keepAlive: boolean): void {
    const extras = CancellationToken.#ensureExtras(token);
    extras.timer = new LongTimer(() => {
      extras.timer = null;
      token.cancel(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
    }, ms, keepAlive);
  }
}

/**
 * Cancels its token when disposed, unless disarmed (tokio's `DropGuard`).
 * Made by {@link CancellationToken.guard}.
 */
export class CancelGuard implements Disposable {
  #token: CancellationToken | null;

  /** @param token - the token to cancel at scope exit. */
  constructor(token: CancellationToken) {
    if (!(token instanceof CancellationToken)) {
      throw typeError("create CancelGuard", "token", "a CancellationToken", token);
    }
    this.#token = token;
  }

  /** The guarded token, until the guard is disarmed or disposed. */
  get token(): CancellationToken | null {
    return this.#token;
  }

  /** Stops the guard from cancelling, and returns the token. Other guards are not affected. */
  disarm(): CancellationToken {
    const token = this.#token;
    if (token === null) throw new TypeError("Cannot disarm CancelGuard: it was already disarmed or disposed");
    this.#token = null;
    return token;
  }

  /** Cancels the token unless the guard was disarmed. Idempotent. */
  [Symbol.dispose](): void {
    const token = this.#token;
    this.#token = null;
    token?.cancel();
  }
}


/**
 * Calls `callback(reason)` when `source` is cancelled or aborted; returns an
 * idempotent unsubscribe. The caller checks for "already aborted" first, and
 * passes one of our tokens' signals as its token ({@link checkSignal} and
 * {@link ownerOf} do that): a signal is followed as a foreign one.
 * @internal
 */
export function subscribe(source: AbortSignal | CancellationToken, callback: (reason: unknown) => void): () => void {
  if (!(source instanceof CancellationToken)) return followSignal(source, callback);
  const registration = source.onCancel(callback);
  return () => registration.unregister();
}

/**
 * Validates the `signal` option of an awaitable.
 * @internal
 */
export function checkSignal(action: string, signal: unknown): AbortSignal | CancellationToken | undefined {
  if (signal === undefined || signal instanceof CancellationToken) return signal;
  if (isAbortSignal(signal)) return ownerOf(signal);
  throw typeError(action, "signal", "an AbortSignal, a CancellationToken or undefined", signal);
}

/**
 * The token whose `signal` this is, or the signal itself when it is foreign.
 * A token's signal fires only after the token's callbacks ran, so inside a
 * cancel callback it still reads "not aborted" while its token is
 * cancelled: code that asks "already aborted?" must ask the token.
 * @internal
 */
export function ownerOf(signal: AbortSignal): AbortSignal | CancellationToken {
  return tokenOfSignal.get(signal) ?? signal;
}

/**
 * `true` when `source` is cancelled or aborted.
 * @internal
 */
export function isAborted(source: AbortSignal | CancellationToken): boolean {
  return source instanceof CancellationToken ? source.isCancelled : source.aborted;
}

