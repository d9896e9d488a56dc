/*
 * The token `shutdown()` and `uncaughtErrors()` return: a `CancellationToken`
 * that also lets go of its sources (process listeners, a timer) when it is
 * disposed, so `using token = shutdown()` leaves nothing behind.
 *
 * Invariants: the release runs at most once, before the token's own
 * disposal; disposing never cancels.
 */
import { CancellationToken } from "../cancel/cancellation-token.js";

// Filled in by ReleasingToken's static block: it needs the private field.
let setReleaseOf: (token: ReleasingToken, release: () => void) => void;

/** A token that also releases its sources when disposed. */
export class ReleasingToken extends CancellationToken {
  #release: (() => void) | null = null;

  static {
    setReleaseOf = (token, release) => {
      token.#release = release;
    };
  }

  override [Symbol.dispose](): void {
    const release = this.#release;
    this.#release = null;
    release?.();
    super[Symbol.dispose]();
  }
}

/** Sets what `token[Symbol.dispose]()` releases. */
export function setRelease(token: ReleasingToken, release: () => void): void {
  setReleaseOf(token, release);
}
