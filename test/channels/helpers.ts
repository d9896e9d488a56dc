// Test helpers shared by the channel suites (not a test file).
import { getEventListeners } from "node:events";

/** Lets every queued microtask (and promise reaction chain) run: one macrotask turn. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface Tracked<T> {
  state: "pending" | "fulfilled" | "rejected";
  value: T | undefined;
  error: unknown;
}

/** Observes a promise's state without awaiting it. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const tracked: Tracked<T> = { state: "pending", value: undefined, error: undefined };
  promise.then(
    (value) => {
      tracked.state = "fulfilled";
      tracked.value = value;
    },
    (error: unknown) => {
      tracked.state = "rejected";
      tracked.error = error;
    },
  );
  return tracked;
}

/** Native `abort` listeners on a signal. */
export function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, "abort").length;
}

export { countedToken as countingToken } from "../support.js";

/** Asserts a value is not a thenable and that `async` functions returning it do not wait. */
export async function resolvesToItself(value: object): Promise<boolean> {
  const returned = await (async () => value)();
  const resolved = await Promise.resolve(value);
  return returned === value && resolved === value && !("then" in value);
}

/** Full garbage collection (vitest runs with --expose-gc), with a turn between collections for finalizers. */
export async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") throw new Error("tests need --expose-gc");
  for (let i = 0; i < 3; i++) {
    await flush();
    gc();
  }
}
