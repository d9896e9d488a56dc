/*
 * Test helpers shared by the cancel suites (not a test file: vitest only
 * collects *.test.ts). Orderings are scripted with microtask flushes, never
 * with wall-clock sleeps.
 */

import { flush } from "../support.js";

export { deferred, flush, stateOf, type PromiseState } from "../support.js";

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
