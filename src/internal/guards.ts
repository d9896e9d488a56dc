/** Type guards shared across areas. Platform-neutral. */

/** `true` for a native `AbortSignal` (never a duck-typed look-alike). */
export function isAbortSignal(value: unknown): value is AbortSignal {
  return typeof AbortSignal === "function" && value instanceof AbortSignal;
}

/** `true` for anything with a callable `then`, as promise resolution sees it. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
