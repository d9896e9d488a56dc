/*
 * One timer for any delay: `setTimeout` fires at once for delays past
 * 2³¹−1 ms (about 24.8 days), so longer ones are chained here, once, for
 * every timer of the library (token timeouts, `shutdown({ timeoutMs })`,
 * `sleep()` / `deadline()`, and through `sleep()` the HTTP drain's
 * `beforeCloseMs`).
 *
 * Invariants:
 * - the deadline is fixed at the start, on the monotonic `performance.now()`
 *   clock; each link of the chain waits min(remaining, MAX_TIMER_MS), so a
 *   chain never fires early and a wall-clock change does not move it;
 * - `callback` runs at most once, when the final link fires (without reading
 *   the clock again: Node may fire a timer a fraction of a millisecond before
 *   `performance.now()` reaches its deadline); never after `clear()`;
 * - at most one native timer is pending per `LongTimer`; `ref` decides for
 *   every link whether it keeps the process alive (`unref()` where the
 *   platform has it);
 * - no `node:` imports: platform-neutral.
 */

/** Largest delay `setTimeout` honours; longer ones are chained. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

type Timer = ReturnType<typeof setTimeout>;

/** A one-shot timer for any finite delay >= 0, chained past {@link MAX_TIMER_MS}. */
export class LongTimer {
  #timer: Timer | null = null;
  readonly #deadline: number;
  #callback: (() => void) | null;
  readonly #ref: boolean;

  /**
   * Starts the timer.
   * @param callback - runs once, when the delay has passed.
   * @param ms - the delay, a finite number >= 0 (the caller validated it).
   * @param ref - keep the process alive while pending.
   */
  constructor(callback: () => void, ms: number, ref: boolean) {
    this.#callback = callback;
    this.#ref = ref;
    this.#deadline = performance.now() + ms;
    this.#arm(ms);
  }

  /** `true` until the callback ran or the timer was cleared. */
  get isPending(): boolean {
    return this.#callback !== null;
  }

  /** Stops the timer; the callback will not run. Idempotent. */
  clear(): void {
    this.#callback = null;
    const timer = this.#timer;
    if (timer !== null) {
      this.#timer = null;
      clearTimeout(timer);
    }
  }

  #arm(remaining: number): void {
    const final = remaining <= MAX_TIMER_MS;
    // Static handlers with `this` as the argument: no closure per timer.
    const timer = setTimeout(final ? LongTimer.#fire : LongTimer.#next, final ? remaining : MAX_TIMER_MS, this);
    if (!this.#ref) (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  static #next(self: LongTimer): void {
    self.#timer = null;
    if (self.#callback !== null) self.#arm(Math.max(0, self.#deadline - performance.now()));
  }

  static #fire(self: LongTimer): void {
    self.#timer = null;
    const callback = self.#callback;
    self.#callback = null;
    callback?.();
  }
}
