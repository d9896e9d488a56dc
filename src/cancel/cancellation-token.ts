/*
 * Invariants of the token tree (the "links"):
 *
 * 1. A live (not cancelled) token is linked into its parent's child list, an
 *    intrusive doubly linked list (`#firstChild`/`#lastChild` on the parent,
 *    `#prev`/`#next` on the children), so linking and unlinking are O(1) and
 *    allocate nothing.
 * 2. A cancelled token holds no links: `cancel()` detaches the whole subtree
 *    before it runs a single callback, so callbacks may create, cancel and
 *    dispose tokens freely.
 * 3. Callbacks live in an intrusive list of `Registration`s per token. Running
 *    them detaches the list first; a registration disposed mid-run is skipped.
 * 4. Everything a token rarely needs (native controller, cached promise,
 *    source subscriptions, timer) lives in one lazily allocated `Extras`, so a
 *    live child with a callback stays well under 100 bytes.
 * 5. The default reason is a shared `DefaultReason` box per cancelled tree;
 *    the `DOMException` inside it is created on first read, once.
 */
import { assertDuration, assertFunction, assertOptions, typeError } from "../internal/errors.js";

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

const CANCELLED = 1;

/** Largest delay `setTimeout` honours; longer ones are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Shared by every token of one tree cancelled without an explicit reason. */
class DefaultReason {
  value: DOMException | undefined = undefined;
  get(): DOMException {
    return (this.value ??= new DOMException("This operation was aborted", "AbortError"));
  }
}

class Extras {
  controller: AbortController | null = null;
  promise: Promise<unknown> | null = null;
  resolve: ((reason: unknown) => void) | null = null;
  unsubscribe: Array<() => void> | null = null;
  timer: ReturnType<typeof setTimeout> | null = null;
}

// Filled in by the class's static block: they need the private fields.
let unregister: (registration: Registration) => void;
let followSignal: (signal: AbortSignal, callback: (reason: unknown) => void) => () => void;

class Registration implements CancelRegistration {
  token: CancellationToken | null;
  callback: ((reason: unknown) => void) | null;
  prev: Registration | null = null;
  next: Registration | null = null;

  constructor(token: CancellationToken | null, callback: ((reason: unknown) => void) | null) {
    this.token = token;
    this.callback = callback;
  }

  unregister(): void {
    if (this.callback !== null) unregister(this);
  }

  [Symbol.dispose](): void {
    if (this.callback !== null) unregister(this);
  }
}

/** Returned for callbacks that already ran: nothing left to unregister. */
const SPENT = new Registration(null, null);

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
  #state = 0;
  #reason: unknown = undefined;
  #parent: CancellationToken | null = null;
  #firstChild: CancellationToken | null = null;
  #lastChild: CancellationToken | null = null;
  #prev: CancellationToken | null = null;
  #next: CancellationToken | null = null;
  #head: Registration | null = null;
  #tail: Registration | null = null;
  #extras: Extras | null = null;

  static {
    unregister = (registration) => {
      const token = registration.token!;
      registration.callback = null;
      registration.token = null;
      const { prev, next } = registration;
      registration.prev = registration.next = null;
      // A registration whose list is being run (the token is cancelled) was
      // detached already; clearing `callback` is enough to skip it.
      if (token.#state & CANCELLED) return;
      if (prev === null) token.#head = next;
      else prev.next = next;
      if (next === null) token.#tail = prev;
      else next.prev = prev;
    };

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
        root.#ensureExtras().unsubscribe = [() => signal.removeEventListener("abort", onAbort)];
        signal.addEventListener("abort", onAbort, { once: true });
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
    token.#ensureExtras().unsubscribe = [followSignal(source, (reason) => token.cancel(reason))];
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
    if (sources === null || typeof (sources as { [Symbol.iterator]?: unknown })?.[Symbol.iterator] !== "function") {
      throw typeError("create CancellationToken.any()", "sources", "an iterable of AbortSignals and CancellationTokens", sources);
    }
    const list = Array.from(sources);
    for (let i = 0; i < list.length; i++) {
      const source = list[i];
      if (!(source instanceof CancellationToken) && !isAbortSignal(source)) {
        throw typeError("create CancellationToken.any()", `sources[${i}]`, "an AbortSignal or a CancellationToken", source);
      }
    }
    for (const source of list) {
      if (source instanceof CancellationToken ? source.isCancelled : source.aborted) {
        return CancellationToken.alreadyCancelled(source.reason);
      }
    }
    const token = new CancellationToken();
    if (list.length === 0) return token;
    const cancel = (reason: unknown): void => token.cancel(reason);
    token.#ensureExtras().unsubscribe = list.map((source) => subscribe(source, cancel));
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
   * @throws {TypeError} when `ms` is not a number.
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
    assertDuration("create CancellationToken.timeout()", "ms", ms);
    assertOptions("create CancellationToken.timeout()", options);
    const token = new CancellationToken();
    token.#armTimer(ms, options?.keepAlive === true);
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
    token.#state = CANCELLED;
    token.#reason = reason === undefined ? new DefaultReason() : reason;
    return token;
  }

  // -------------------------------------------------------------------------
  // Queries

  /** `true` once this token is cancelled. Never goes back to `false`. */
  get isCancelled(): boolean {
    return (this.#state & CANCELLED) !== 0;
  }

  /**
   * The reason this token was cancelled with, or `undefined` while it is not
   * cancelled. Without an explicit reason it is a `DOMException` named
   * `AbortError`, the same object for the whole tree that was cancelled.
   */
  get reason(): unknown {
    const reason = this.#reason;
    return reason instanceof DefaultReason ? reason.get() : reason;
  }

  /** Throws {@link reason} when this token is cancelled, like `signal.throwIfAborted()`. */
  throwIfCancelled(): void {
    if (this.#state & CANCELLED) throw this.reason;
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
    const extras = this.#ensureExtras();
    if (extras.controller === null) {
      const controller = new AbortController();
      extras.controller = controller;
      tokenOfSignal.set(controller.signal, this);
      if (this.#state & CANCELLED) controller.abort(this.reason);
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
    if (this.#state & CANCELLED) {
      child.#state = CANCELLED;
      child.#reason = this.#reason;
      return child;
    }
    child.#parent = this;
    const last = this.#lastChild;
    if (last === null) this.#firstChild = child;
    else {
      last.#next = child;
      child.#prev = last;
    }
    this.#lastChild = child;
    return child;
  }

  /**
   * Creates a child that is also cancelled after `ms` milliseconds with a
   * `TimeoutError` `DOMException`. The timer behaves as in {@link timeout}.
   *
   * @param ms - the delay, a finite number >= 0.
   * @param options - see {@link TimeoutOptions}.
   * @throws {TypeError} when `ms` is not a number.
   * @throws {RangeError} when `ms` is negative, `NaN` or infinite.
   *
   * @example
   * ```ts
   * const request = server.withTimeout(30_000);
   * ```
   */
  withTimeout(ms: number, options?: TimeoutOptions): CancellationToken {
    assertDuration("create token.withTimeout()", "ms", ms);
    assertOptions("create token.withTimeout()", options);
    const child = this.child();
    if (!child.isCancelled) child.#armTimer(ms, options?.keepAlive === true);
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
    if (this.#state & CANCELLED) return;
    const shared = reason === undefined ? new DefaultReason() : reason;
    this.#unlinkFromParent();

    // Fast path: a leaf (the per-request case) needs no traversal.
    if (this.#firstChild === null) {
      this.#state = CANCELLED;
      this.#reason = shared;
      this.#runCallbacks();
      return;
    }

    // Phase 1: mark the subtree in pre-order, collecting it, then drop every link.
    const subtree: CancellationToken[] = [];
    let node: CancellationToken | null = this;
    while (node !== null) {
      node.#state = CANCELLED;
      node.#reason = shared;
      subtree.push(node);
      if (node.#firstChild !== null) {
        node = node.#firstChild;
        continue;
      }
      while (node !== this && node!.#next === null) node = node!.#parent;
      node = node === this ? null : node!.#next;
    }
    for (const member of subtree) {
      member.#parent = member.#firstChild = member.#lastChild = member.#prev = member.#next = null;
    }

    // Phase 2: callbacks, in the same order.
    for (const member of subtree) member.#runCallbacks();
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
    if (this.#state & CANCELLED) {
      try {
        callback(this.reason);
      } catch (error) {
        report(error);
      }
      return SPENT;
    }
    const registration = new Registration(this, callback);
    const tail = this.#tail;
    if (tail === null) this.#head = registration;
    else {
      tail.next = registration;
      registration.prev = tail;
    }
    this.#tail = registration;
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
    const extras = this.#ensureExtras();
    if (extras.promise === null) {
      if (this.#state & CANCELLED) extras.promise = Promise.resolve(this.reason);
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
    if (this.#state & CANCELLED) return Promise.reject(this.reason);
    return new Promise<T>((resolve, reject) => {
      let child: CancellationToken | null = null;
      let settled = false;
      let registration: CancelRegistration = SPENT;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        registration.unregister();
        child?.[Symbol.dispose]();
        return true;
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
      Promise.resolve(pending).then(
        (value) => finish() && resolve(value),
        (error: unknown) => finish() && reject(error),
      );
      // Deferred by a microtask so that work which settled before the cancel
      // (its reaction already queued) wins, as in tokio.
      registration = this.onCancel((reason) => queueMicrotask(() => finish() && reject(reason)));
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
    const extras = this.#extras;
    if (extras !== null) this.#releaseSources(extras);
    if (this.#state & CANCELLED) return;
    const parent = this.#parent;
    const first = this.#firstChild;
    if (first !== null) {
      const last = this.#lastChild!;
      for (let child: CancellationToken | null = first; child !== null; child = child.#next) child.#parent = parent;
      if (parent !== null) {
        // Splice the children in where this token was, keeping pre-order.
        const prev = this.#prev;
        const next = this.#next;
        first.#prev = prev;
        last.#next = next;
        if (prev === null) parent.#firstChild = first;
        else prev.#next = first;
        if (next === null) parent.#lastChild = last;
        else next.#prev = last;
        this.#parent = this.#prev = this.#next = null;
      } else {
        for (let child: CancellationToken | null = first; child !== null; ) {
          const next: CancellationToken | null = child.#next;
          child.#prev = child.#next = null;
          child = next;
        }
      }
      this.#firstChild = this.#lastChild = null;
    }
    this.#unlinkFromParent();
  }

  // -------------------------------------------------------------------------
  // Internals

  #ensureExtras(): Extras {
    return (this.#extras ??= new Extras());
  }

  #unlinkFromParent(): void {
    const parent = this.#parent;
    if (parent === null) return;
    const prev = this.#prev;
    const next = this.#next;
    if (prev === null) parent.#firstChild = next;
    else prev.#next = next;
    if (next === null) parent.#lastChild = prev;
    else next.#prev = prev;
    this.#parent = this.#prev = this.#next = null;
  }

  #releaseSources(extras: Extras): void {
    if (extras.timer !== null) {
      clearTimeout(extras.timer);
      extras.timer = null;
    }
    const unsubscribe = extras.unsubscribe;
    if (unsubscribe !== null) {
      extras.unsubscribe = null;
      for (const release of unsubscribe) release();
    }
  }

  /** Phase 2 for one token: its callbacks, then its native signal and promise. */
  #runCallbacks(): void {
    const extras = this.#extras;
    if (extras !== null) this.#releaseSources(extras);
    let registration = this.#head;
    if (registration !== null) {
      this.#head = this.#tail = null;
      const reason = this.reason;
      while (registration !== null) {
        const next: Registration | null = registration.next;
        const callback = registration.callback;
        registration.callback = null;
        registration.token = null;
        registration.prev = registration.next = null;
        if (callback !== null) {
          try {
            callback(reason);
          } catch (error) {
            report(error);
          }
        }
        registration = next;
      }
    }
    if (extras !== null) {
      extras.controller?.abort(this.reason);
      if (extras.resolve !== null) {
        extras.resolve(this.reason);
        extras.resolve = null;
      }
    }
  }

  #armTimer(ms: number, keepAlive: boolean): void {
    const extras = this.#ensureExtras();
    let remaining = ms;
    const arm = (): void => {
      const step = Math.min(remaining, MAX_TIMER_MS);
      remaining -= step;
      const timer = setTimeout(() => {
        extras.timer = null;
        if (remaining > 0) arm();
        else this.cancel(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
      }, step);
      if (!keepAlive) (timer as { unref?: () => void }).unref?.();
      extras.timer = timer;
    };
    arm();
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

function isAbortSignal(value: unknown): value is AbortSignal {
  return typeof AbortSignal === "function" && value instanceof AbortSignal;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * Calls `callback(reason)` when `source` is cancelled or aborted; returns an
 * idempotent unsubscribe. The caller checks for "already aborted" first.
 * @internal
 */
export function subscribe(source: AbortSignal | CancellationToken, callback: (reason: unknown) => void): () => void {
  if (!(source instanceof CancellationToken)) {
    const owner = tokenOfSignal.get(source);
    if (owner === undefined) return followSignal(source, callback);
    source = owner;
  }
  const registration = source.onCancel(callback);
  return () => registration.unregister();
}

/**
 * Validates the `signal` option of an awaitable.
 * @internal
 */
export function checkSignal(action: string, signal: unknown): AbortSignal | CancellationToken | undefined {
  if (signal === undefined || signal instanceof CancellationToken || isAbortSignal(signal)) return signal;
  throw typeError(action, "signal", "an AbortSignal, a CancellationToken or undefined", signal);
}

/**
 * `true` when `source` is cancelled or aborted.
 * @internal
 */
export function isAborted(source: AbortSignal | CancellationToken): boolean {
  return source instanceof CancellationToken ? source.isCancelled : source.aborted;
}

