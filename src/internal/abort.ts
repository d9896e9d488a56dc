/**
 * How every awaitable in the library honours `{ signal }`.
 *
 * Invariants:
 * - a signal is an `AbortSignal` or a `CancellationToken`; anything else is a
 *   `TypeError` before any side effect ({@link checkSignal}), and one of our
 *   tokens' own signals is replaced by its token ({@link ownerOf}), which is
 *   cancelled before that signal fires;
 * - callers check {@link isAborted} before subscribing, and reject with the
 *   source's `reason`, unchanged;
 * - {@link subscribeAbort} never adds more than one native listener per
 *   foreign `AbortSignal`, and its unsubscribe is idempotent: call it on
 *   every settle path.
 */
import { CancellationToken, subscribe } from "../cancel/cancellation-token.js";

export { checkSignal, isAborted, ownerOf, subscribe as subscribeAbort } from "../cancel/cancellation-token.js";

/** A signal option: a native `AbortSignal` or one of our tokens. */
export type AbortLike = AbortSignal | CancellationToken;

/**
 * Runs `start(settle)` for a promise that honours `signal`: rejects at once
 * with the reason if already aborted (without calling `start`), otherwise
 * subscribes, and unsubscribes on whichever settle path comes first.
 *
 * `start` receives `resolve`/`reject` that also unsubscribe, and returns an
 * optional `onAbort` cleanup that undoes whatever it registered, so an
 * aborted wait consumes nothing.
 */
export function abortable<T>(
  signal: AbortLike | undefined,
  start: (resolve: (value: T) => void, reject: (error: unknown) => void) => (() => void) | void,
): Promise<T> {
  if (signal === undefined) {
    return new Promise<T>((resolve, reject) => {
      start(resolve, reject);
    });
  }
  if (signal instanceof CancellationToken ? signal.isCancelled : signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let unsubscribe: (() => void) | undefined;
    let cleanup: (() => void) | void = undefined;
    const settle = <A>(fn: (arg: A) => void) => (arg: A): void => {
      if (done) return;
      done = true;
      unsubscribe?.();
      fn(arg);
    };
    cleanup = start(settle(resolve), settle(reject));
    if (done) return;
    unsubscribe = subscribe(signal, (reason) => {
      if (done) return;
      done = true;
      if (typeof cleanup === "function") cleanup();
      reject(reason);
    });
  });
}
