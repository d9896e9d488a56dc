/*
 * sleep / deadline: a fixed deadline that can be awaited and selected.
 *
 * Invariants:
 * 1. The deadline is fixed at creation (tokio's `Sleep`), on the monotonic
 *    `performance.now()` clock, so a `Sleep` reused across selects in a loop
 *    keeps its deadline.
 * 2. Elapsed is sticky: once a timer fired (or the clock was seen past the
 *    deadline) `isElapsed` stays `true`. Node may fire a timer a fraction of
 *    a millisecond before `performance.now()` reaches the deadline, so a
 *    fired final timer sets the flag rather than re-reading the clock.
 * 3. At most one timer per `Sleep`, armed while at least one waiter (an
 *    `await` or a select) is interested and cleared the moment the last one
 *    leaves; `ref` decides whether it keeps the process alive.
 * 4. No `node:` imports: this module is part of the platform-neutral entry.
 */
import type { CancellationToken } from "../cancel/cancellation-token.js";
import { abortable, checkSignal, isAborted, subscribeAbort, type AbortLike } from "../internal/abort.js";
import { assertDuration, assertOptions, booleanOption, rangeError, typeError } from "../internal/errors.js";
import { LongTimer } from "../internal/long-timer.js";
import { selectable, type SelectBranch, type Selectable } from "./selectable.js";
import { dateTime } from "../internal/guards.js";

/** Options of {@link sleep} and {@link deadline}. */
export interface SleepOptions {
  /**
   * Keep the process alive while someone awaits or selects on the sleep,
   * like `timers/promises`. `false` opts out (the timer is `unref()`ed).
   * @defaultValue true
   */
  ref?: boolean;
  /**
   * Aborts every wait on this sleep: an `await` rejects with the reason,
   * unchanged, and a select branch on it rejects the select with the reason.
   */
  signal?: AbortSignal | CancellationToken;
}

/** One wait on a sleep (an `await` or a select subscription); inert once removed (`wake === null`). */
class SleepWaiter {
  wake: (() => void) | null;
  prev: SleepWaiter | null = null;
  next: SleepWaiter | null = null;

  constructor(wake: () => void) {
    this.wake = wake;
  }
}

/**
 * A deadline that can be awaited and raced in `select`; made by {@link sleep}
 * and {@link deadline}.
 *
 * The deadline is fixed when the `Sleep` is created, so one `Sleep` reused by
 * several selects in a loop is a timeout for the whole loop (tokio's pinned
 * `&mut sleep`). Once *elapsed* it stays elapsed: awaiting it again resolves
 * at once and it is ready in every select it takes part in (whether it wins
 * depends on the other ready branches: see `select`'s fairness).
 *
 * It arms a timer only while someone waits on it (an `await`, a `then`, a
 * select) and clears it as soon as nobody does, so a sleep that loses a
 * select leaves nothing behind. While armed, the timer keeps the process
 * alive unless the sleep was made with `{ ref: false }`.
 *
 * @example A deadline for a loop of receives
 * ```ts
 * import { select, sleep, watch } from "cancelkit";
 * const [tx, rx] = watch(0);
 * const timeout = sleep(1_000);
 * setTimeout(() => tx.send(1), 10);
 * const first = await select({ changed: rx, timeout });
 * console.assert(first.key === "changed" && !timeout.isElapsed);
 * ```
 */
export class Sleep implements Selectable<void>, PromiseLike<void> {
  #deadline: number;
  #ref: boolean;
  #signal: AbortLike | undefined;
  #elapsed = false;
  #timer: LongTimer | null = null;
  /** Current waiters, an intrusive list; the timer is armed while it is non-empty. */
  #head: SleepWaiter | null = null;
  #tail: SleepWaiter | null = null;

  /** @internal Use {@link sleep} or {@link deadline}. */
  constructor(deadline: number, ref: boolean, signal: AbortLike | undefined) {
    this.#deadline = deadline;
    this.#ref = ref;
    this.#signal = signal;
  }

  /** `true` once the deadline has passed. Never goes back to `false`. */
  get isElapsed(): boolean {
    // Sticky: once set (by the clock or by the timer) the clock is not read again.
    if (!this.#elapsed) this.#elapsed = performance.now() >= this.#deadline;
    return this.#elapsed;
  }

  /** Milliseconds left until the deadline; `0` once elapsed. */
  get remainingMs(): number {
    return this.isElapsed ? 0 : Math.max(0, this.#deadline - performance.now());
  }

  /**
   * Waits for the deadline, like `await setTimeout(ms)` from `timers/promises`.
   *
   * A sleep that has not elapsed yet always waits for a real timer, even
   * when its deadline is already due, so `await sleep(0)` yields to the event
   * loop. One that already elapsed resolves at once.
   *
   * #### Cancellation
   * With the sleep's `signal` aborted before or while waiting, rejects with
   * the reason, unchanged, and clears the timer if no one else waits.
   *
   * @param onfulfilled - called with `undefined` at the deadline.
   * @param onrejected - called with the abort reason.
   *
   * @example Pause for 20 ms
   * ```ts
   * const started = Date.now();
   * await sleep(20);
   * console.assert(Date.now() - started >= 19);
   * ```
   */
  then<A = void, B = never>(
    onfulfilled?: ((value: void) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#wait().then(onfulfilled, onrejected);
  }

  /**
   * Waits like {@link then} and handles a rejection (an abort).
   *
   * #### Cancellation
   * As {@link then}: the abort reason, unchanged, reaches `onrejected`.
   *
   * @param onrejected - called with the abort reason.
   *
   * @example Turn an abort into a value
   * ```ts
   * const reason = await sleep(1_000, { signal: AbortSignal.abort("stop") }).catch((r: unknown) => r);
   * console.assert(reason === "stop");
   * ```
   */
  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<void | B> {
    return this.#wait().then(undefined, onrejected);
  }

  /**
   * Waits like {@link then} and runs `onfinally` either way.
   *
   * #### Cancellation
   * As {@link then}: the returned promise rejects with the abort reason, unchanged.
   *
   * @param onfinally - runs at the deadline or on abort.
   *
   * @example Clean up either way
   * ```ts
   * let done = false;
   * await sleep(1).finally(() => (done = true));
   * console.assert(done);
   * ```
   */
  finally(onfinally?: (() => void) | null): Promise<void> {
    return this.#wait().finally(onfinally);
  }

  /**
   * The select branch of this sleep: ready once elapsed (or once its signal
   * is aborted, which rejects the select with the reason). Its timer is armed
   * on subscribe and cleared on unsubscribe.
   *
   * @example A sleep as a select branch
   * ```ts
   * const r = await select({ timeout: sleep(5) });
   * console.assert(r.key === "timeout");
   * ```
   */
  [selectable](): SelectBranch<void> {
    return {
      poll: () => (this.#signal !== undefined && isAborted(this.#signal)) || this.isElapsed,
      commit: () => {
        if (this.#signal !== undefined && isAborted(this.#signal)) throw this.#signal.reason;
      },
      subscribe: (wake) => {
        const remove = this.#addWaiter(wake);
        const signal = this.#signal;
        if (signal === undefined) return remove;
        // An abort makes the branch ready too (its commit throws the reason).
        const unsubscribe = subscribeAbort(signal, wake);
        return () => {
          remove();
          unsubscribe();
        };
      },
    };
  }

  #wait(): Promise<void> {
    // An aborted signal rejects first (abortable), even once elapsed.
    return abortable<void>(this.#signal, (resolve) => {
      if (this.#elapsed) {
        resolve();
        return;
      }
      // Woken by the timer only, never during #addWaiter: `remove` is set by then.
      const remove = this.#addWaiter(() => {
        remove();
        resolve();
      });
      return remove;
    });
  }

  /**
   * Registers `wake` until the deadline; returns an idempotent removal.
   * Callers add a waiter only to a sleep not elapsed yet (an `await` resolves
   * at once, a select branch wins at the call); should the deadline have
   * passed since (user code in another branch's subscribe read the clock),
   * the timer armed here fires at once.
   */
  #addWaiter(wake: () => void): () => void {
    const node = new SleepWaiter(wake);
    const tail = this.#tail;
    if (tail === null) this.#head = node;
    else {
      tail.next = node;
      node.prev = tail;
    }
    this.#tail = node;
    if (this.#timer === null) this.#arm();
    return () => this.#removeWaiter(node);
  }

  #removeWaiter(node: SleepWaiter): void {
    if (node.wake === null) return;
    node.wake = null;
    const { prev, next } = node;
    if (prev === null) this.#head = next;
    else prev.next = next;
    if (next === null) this.#tail = prev;
    else next.prev = prev;
    if (this.#head === null && this.#timer !== null) {
      this.#timer.clear();
      this.#timer = null;
    }
  }

  #arm(): void {
    // Chained past 2³¹−1 ms by LongTimer, which calls back only at the
    // deadline, without reading the clock again (invariant 2).
    this.#timer = new LongTimer(
      () => {
        this.#timer = null;
        this.#elapsed = true;
        // Snapshot first: an await's wake removes its own waiter.
        const woken: Array<() => void> = [];
        for (let node = this.#head; node !== null; node = node.next) woken.push(node.wake!);
        for (const wake of woken) wake();
      },
      Math.max(0, this.#deadline - performance.now()),
      this.#ref,
    );
  }
}

function sleepOptions(action: string, options: SleepOptions | undefined): { ref: boolean; signal: AbortLike | undefined } {
  assertOptions(action, options, ["ref", "signal"]);
  const ref = booleanOption(action, "options.ref", options?.ref);
  return { ref: ref !== false, signal: checkSignal(action, options?.signal) };
}

/**
 * Creates a {@link Sleep} that elapses `ms` milliseconds from now: await it,
 * or race it in `select` as a timeout.
 *
 * Like `setTimeout` from `timers/promises` while awaited: it keeps the
 * process alive (`{ ref: false }` opts out) and rejects with the signal's
 * reason when aborted. In a select, its timer exists only while the select
 * waits and is cleared the moment another branch wins, so a lost one-hour
 * timeout never holds the process. Delays longer than 2³¹−1 ms are chained
 * rather than firing at once.
 *
 * #### Cancellation
 * `options.signal` aborts every wait on this sleep with the reason,
 * unchanged; see {@link Sleep.then}.
 *
 * @param ms - the delay, a finite number >= 0.
 * @param options - see {@link SleepOptions}.
 * @throws {TypeError} when `ms` is not a number or an option has the wrong type.
 * @throws {RangeError} when `ms` is negative, `NaN` or infinite.
 *
 * @example A timeout branch
 * ```ts
 * import { CancellationToken, select, sleep } from "cancelkit";
 * const token = new CancellationToken();
 * const r = await select({ token, timeout: sleep(10) });
 * console.assert(r.key === "timeout");
 * ```
 */
export function sleep(ms: number, options?: SleepOptions): Sleep {
  assertDuration("create sleep()", "ms", ms);
  const { ref, signal } = sleepOptions("create sleep()", options);
  return new Sleep(performance.now() + ms, ref, signal);
}

/**
 * Creates a {@link Sleep} that elapses at a wall-clock instant (tokio's
 * `sleep_until`).
 *
 * The instant is converted to a delay once, at creation, and then measured
 * on the monotonic clock, so later changes of the system clock do not move
 * it. An instant in the past gives a sleep that is already due.
 *
 * #### Cancellation
 * As {@link sleep}: `options.signal` aborts every wait with the reason, unchanged.
 *
 * @param date - a `Date` (from any realm: it is recognised by brand, not
 *   `instanceof`), or milliseconds since the epoch.
 * @param options - see {@link SleepOptions}.
 * @throws {TypeError} when `date` is neither a `Date` nor a number, or an option has the wrong type.
 * @throws {RangeError} when `date` is an invalid `Date` or a non-finite number.
 *
 * @example Stop at a fixed time
 * ```ts
 * import { deadline, select } from "cancelkit";
 * const r = await select({ lunch: deadline(new Date(Date.now() + 5)) });
 * console.assert(r.key === "lunch");
 * ```
 */
export function deadline(date: Date | number, options?: SleepOptions): Sleep {
  const action = "create deadline()";
  let time: number;
  if (typeof date === "number") {
    if (!Number.isFinite(date)) throw rangeError(action, "date", "a valid Date or a finite number of epoch milliseconds", date);
    time = date;
  } else {
    // By brand, not instanceof: a Date from another realm (node:vm, an iframe) is a Date.
    const dateValue = dateTime(date);
    if (dateValue === undefined) throw typeError(action, "date", "a Date or a number of epoch milliseconds", date);
    if (Number.isNaN(dateValue)) throw rangeError(action, "date", "a valid Date", date);
    time = dateValue;
  }
  const { ref, signal } = sleepOptions(action, options);
  return new Sleep(performance.now() + (time - Date.now()), ref, signal);
}
