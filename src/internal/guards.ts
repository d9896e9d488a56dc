/**
 * Type guards shared across areas. Platform-neutral.
 *
 * Invariants:
 * - built-ins are recognised by brand (their internal slots), never by
 *   `instanceof` alone, so values from another realm (`node:vm`, an iframe)
 *   are accepted, and look-alikes without the slots are refused;
 * - no guard has a side effect or throws for any input.
 */

const abortedGetter: ((this: unknown) => boolean) | undefined =
  typeof AbortSignal === "function" ? Object.getOwnPropertyDescriptor(AbortSignal.prototype, "aborted")?.get : undefined;
const getTime = Date.prototype.getTime;

/**
 * `true` for a real `AbortSignal`, from this realm or another one (checked by
 * brand: its `aborted` getter accepts it). Never a duck-typed look-alike.
 */
export function isAbortSignal(value: unknown): value is AbortSignal {
  if (typeof AbortSignal !== "function") return false;
  if (value instanceof AbortSignal) return true;
  if (typeof value !== "object" || value === null || abortedGetter === undefined) return false;
  try {
    abortedGetter.call(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The time value of a real `Date` (from any realm; `NaN` for an invalid one),
 * or `undefined` when `value` is not a `Date` (checked by brand).
 */
export function dateTime(value: unknown): number | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  try {
    return getTime.call(value);
  } catch {
    return undefined;
  }
}

/** `true` for anything with a callable `then`, as promise resolution sees it. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
