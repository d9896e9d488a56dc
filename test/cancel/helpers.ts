/*
 * Test helpers shared by the cancel suites (not a test file: vitest only
 * collects *.test.ts). Orderings are scripted with microtask flushes, never
 * with wall-clock sleeps.
 */

/** Lets every queued microtask (and the ones they queue, a few levels deep) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export type PromiseState = "pending" | "fulfilled" | "rejected";

/** The state of `promise` after a flush; marks a rejection as handled. */
export async function stateOf(promise: Promise<unknown>): Promise<PromiseState> {
  let state: PromiseState = "pending";
  promise.then(
    () => (state = "fulfilled"),
    () => (state = "rejected"),
  );
  await flush();
  return state;
}

/** A promise with its resolve/reject exposed. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Runs `fn` with a process `uncaughtException` listener installed (vitest
 * leaves errors to user code when another listener exists), flushes, and
 * returns what was reported. The listener is removed afterwards.
 */
export async function captureUncaught(fn: (errorsSoFar: readonly unknown[]) => void | Promise<void>): Promise<unknown[]> {
  const errors: unknown[] = [];
  const listener = (error: unknown): void => void errors.push(error);
  const before = process.listenerCount("uncaughtException");
  process.on("uncaughtException", listener);
  try {
    await fn(errors);
    // Errors are reported on a microtask; a macrotask turn lets them land.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await flush();
  } finally {
    process.off("uncaughtException", listener);
  }
  if (process.listenerCount("uncaughtException") !== before) throw new Error("uncaughtException listener leaked");
  return errors;
}

/** Full garbage collection (vitest runs with --expose-gc). */
export async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") throw new Error("tests need --expose-gc");
  // Let pending microtasks and finalizers settle between collections.
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
  }
}

/** Used heap after a full collection. */
export async function heapUsed(): Promise<number> {
  await collectGarbage();
  return process.memoryUsage().heapUsed;
}
