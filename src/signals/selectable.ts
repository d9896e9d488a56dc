/*
 * The two-phase protocol `select` speaks with its branches: the public
 * `selectable` symbol and the `Selectable` / `SelectBranch` interfaces live
 * here, beside `select`, and are exported from `cancelkit` and
 * `cancelkit/signals`. The channels (`src/channels/`) implement the protocol
 * by importing this file; it imports nothing, so that dependency brings no
 * `node:` module into the platform-neutral entry points.
 *
 * Invariants a branch must keep:
 * - `poll()` never consumes anything: calling it any number of times leaves
 *   the source as it was;
 * - `commit()` is called only right after `poll()` returned `true`, in the
 *   same synchronous turn, and consumes the value (or throws the branch's
 *   error, which rejects the select);
 * - `subscribe(wake)` calls `wake` (possibly synchronously, possibly more
 *   than once) whenever `poll()` may have become `true`, and returns an
 *   idempotent unsubscribe that leaves nothing behind.
 */

/**
 * The key under which a value offers itself to `select`.
 *
 * It is `Symbol.for("cancelkit.selectable")`, so two copies of the library,
 * or another library that never imports this one, agree on it.
 *
 * @example Check whether a value can be raced without being consumed
 * ```ts
 * import { oneshot, selectable } from "cancelkit";
 * const [, rx] = oneshot<number>();
 * console.assert(typeof rx[selectable] === "function");
 * ```
 */
export const selectable: unique symbol = Symbol.for("cancelkit.selectable");

/**
 * One branch of one `select` call: a way to look without taking, take, and be told.
 *
 * `select` polls every branch first and commits only the winner, so losing
 * branches keep their values. See `Selectable`.
 */
export interface SelectBranch<T> {
  /** `true` when {@link commit} would succeed (or throw the branch's error) right now. Never consumes. */
  poll(): boolean;
  /** Takes the value. Called only right after {@link poll} returned `true`. Throws to reject the select. */
  commit(): T;
  /** Calls `wake` whenever {@link poll} may have become `true`; returns an idempotent unsubscribe. */
  subscribe(wake: () => void): () => void;
}

/**
 * Anything `select` can wait on without consuming it unless it wins.
 *
 * Implement `[selectable]()` to return a fresh {@link SelectBranch} for each
 * select. The library's tokens, channel receivers, timers and process-signal
 * sources all implement it.
 *
 * @example A branch that is ready when a counter reaches a limit
 * ```ts
 * import { select, selectable, type Selectable } from "cancelkit";
 * const listeners = new Set<() => void>();
 * let count = 0;
 * const limit: Selectable<number> = {
 *   [selectable]: () => ({
 *     poll: () => count >= 3, // look, never take
 *     commit: () => (count -= 3), // take: only the winner gets here
 *     subscribe: (wake) => (listeners.add(wake), () => void listeners.delete(wake)),
 *   }),
 * };
 * const result = select({ limit });
 * for (let i = 0; i < 3; i++) { count++; listeners.forEach((wake) => wake()); }
 * console.assert((await result).value === 0 && listeners.size === 0);
 * ```
 */
export interface Selectable<T> {
  /** Returns a fresh branch for one select. */
  [selectable](): SelectBranch<T>;
}

/**
 * `true` when `value` implements {@link Selectable}: an object or a function
 * (never a primitive, whatever its prototype offers, as for thenables) with
 * a `[selectable]` method.
 * @internal
 */
export function isSelectable(value: unknown): value is Selectable<unknown> {
  return Object(value) === value && typeof (value as { [selectable]?: unknown })[selectable] === "function";
}
