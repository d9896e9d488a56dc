/**
 * Error classes for conditions callers are expected to handle, plus the
 * helpers that build misuse errors (`TypeError` / `RangeError`).
 *
 * Invariants:
 * - every class has a stable `code` that is never renamed or reused, and is
 *   listed in `docs/errors.md` (a test keeps the two in sync);
 * - misuse errors are built where the failure is detected, before any side
 *   effect, and name the call and the received value.
 */

/** Every error code this library raises on purpose. */
export type CancelkitErrorCode =
  | "CANCELKIT_ERR_CHANNEL_CLOSED"
  | "CANCELKIT_ERR_SHUTDOWN_TIMEOUT"
  | "CANCELKIT_ERR_SIGNAL_RECEIVED"
  | "CANCELKIT_ERR_UNCAUGHT";

/**
 * Base class of every error this library raises on purpose.
 *
 * Use `error.code` (or the `isXError()` guards) rather than `instanceof` when
 * two copies of the library may be loaded.
 */
export abstract class CancelkitError extends Error {
  /** Stable, documented identifier of the condition. Never renamed or reused. */
  abstract readonly code: CancelkitErrorCode;
}

/**
 * The other side of a channel is closed.
 *
 * Raised by a receive when the sender closed without sending (and no unseen
 * value is left), and by a send that can never be delivered. `value` holds
 * the value that was not delivered, where there is one.
 *
 * @example Recover the value a closed channel refused
 * ```ts
 * import { ChannelClosedError, oneshot } from "cancelkit/channels";
 * const [tx] = oneshot<number>();
 * tx.send(1);
 * try { tx.send(2); } catch (error) {
 *   if (error instanceof ChannelClosedError) console.assert(error.value === 2);
 * }
 * ```
 */
export class ChannelClosedError<T = unknown> extends CancelkitError {
  /** Always `"CANCELKIT_ERR_CHANNEL_CLOSED"`. */
  readonly code = "CANCELKIT_ERR_CHANNEL_CLOSED" as const;
  /** Always `"ChannelClosedError"`. */
  override readonly name = "ChannelClosedError";
  /** The value that could not be delivered; `undefined` for receive errors. */
  readonly value: T | undefined;

  /**
   * @param message - what could not be done, and why.
   * @param value - the undelivered value, for send errors.
   */
  constructor(message = "Cannot use channel: it is closed", value?: T) {
    super(message);
    this.value = value;
  }
}

/** `true` when `error` is a {@link ChannelClosedError} from any copy of this library. */
export function isChannelClosedError(error: unknown): error is ChannelClosedError {
  return hasCode(error, "CANCELKIT_ERR_CHANNEL_CLOSED");
}

/**
 * Graceful shutdown did not finish within its deadline.
 *
 * It is the reason request tokens carry when the drain deadline forces them
 * closed, and what `shutdown()` tokens carry when their `timeoutMs` elapses.
 */
export class ShutdownTimeoutError extends CancelkitError {
  /** Always `"CANCELKIT_ERR_SHUTDOWN_TIMEOUT"`. */
  readonly code = "CANCELKIT_ERR_SHUTDOWN_TIMEOUT" as const;
  /** Always `"ShutdownTimeoutError"`. */
  override readonly name = "ShutdownTimeoutError";
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * @param timeoutMs - the deadline that passed.
   * @param message - overrides the default message.
   */
  constructor(timeoutMs: number, message?: string) {
    super(message ?? `Cannot finish graceful shutdown: the ${timeoutMs} ms deadline passed`);
    this.timeoutMs = timeoutMs;
  }
}

/** `true` when `error` is a {@link ShutdownTimeoutError} from any copy of this library. */
export function isShutdownTimeoutError(error: unknown): error is ShutdownTimeoutError {
  return hasCode(error, "CANCELKIT_ERR_SHUTDOWN_TIMEOUT");
}

function hasCode(error: unknown, code: CancelkitErrorCode): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

// ---------------------------------------------------------------------------
// Misuse errors

/** Renders a received value for an error message: `number 42`, `string "x"`, `null`. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "string":
      return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case "number":
    case "bigint":
    case "boolean":
      return `${typeof value} ${String(value)}`;
    case "symbol":
      return String(value);
    case "function":
      return `function ${value.name || "(anonymous)"}`;
    default: {
      const name = (value as object).constructor?.name;
      return Array.isArray(value) ? `array of length ${value.length}` : `${name && name !== "Object" ? `an instance of ${name}` : "an object"}`;
    }
  }
}

/** `TypeError: Cannot <action>: '<name>' must be <expected>, received <value>`. */
export function typeError(action: string, name: string, expected: string, received: unknown): TypeError {
  return new TypeError(`Cannot ${action}: '${name}' must be ${expected}, received ${describe(received)}`);
}

/** `RangeError: Cannot <action>: '<name>' must be <expected>, received <value>`. */
export function rangeError(action: string, name: string, expected: string, received: unknown): RangeError {
  return new RangeError(`Cannot ${action}: '${name}' must be ${expected}, received ${describe(received)}`);
}

/** Throws unless `value` is a function. */
export function assertFunction(action: string, name: string, value: unknown): asserts value is (...args: never[]) => unknown {
  if (typeof value !== "function") throw typeError(action, name, "a function", value);
}

// The timer limit lives with the timer that chains past it; re-exported for
// the callers that import it from here.
export { MAX_TIMER_MS } from "./long-timer.js";

/** Throws unless `value` is a finite number >= 0 (a duration in milliseconds). */
export function assertDuration(action: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== "number") throw typeError(action, name, "a finite number >= 0", value);
  if (!Number.isFinite(value) || value < 0) throw rangeError(action, name, "a finite number >= 0", value);
}

/**
 * Throws unless `value` is `undefined` or an options object whose own keys are
 * all in `known`. An unknown key is a `TypeError` naming the call, the key and,
 * when one is close (edit distance <= 2, or a case difference), the option it
 * probably meant. Checked before any state change; each caller then checks
 * the values' types.
 */
export function assertOptions(action: string, value: unknown, known: readonly string[]): void {
  if (value === undefined) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw typeError(action, "options", "an object or undefined", value);
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    throw new TypeError(`Cannot ${action}: unknown option '${key}'${near === undefined ? "" : ` (did you mean '${near}'?)`}`);
  }
}

/**
 * Throws unless an option's value is a boolean or `undefined`; returns it.
 * `name` is the option as the message shows it (`options.keepAlive`).
 */
export function booleanOption(action: string, name: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw typeError(action, name, "a boolean or undefined", value);
  return value;
}

/** The entry of `candidates` nearest to `key`: a case difference, or an edit distance <= 2. */
function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    if (candidate.toLowerCase() === key.toLowerCase()) return candidate;
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}
