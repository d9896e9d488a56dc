/*
 * Helpers shared by every suite (not a test file: vitest only collects
 * *.test.ts). Orderings are scripted with microtask flushes, never with
 * wall-clock sleeps.
 */
import { CancellationToken, type CancelRegistration } from "../src/cancel/index.js";

/** Lets every queued microtask (and the ones they queue, a few levels deep) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export type PromiseState = "pending" | "fulfilled" | "rejected";

/** The state of `promise` after a flush; marks a rejection as handled. */
export async function stateOf(promise: PromiseLike<unknown>): Promise<PromiseState> {
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
 * A token that counts its live `onCancel` registrations: registered, and
 * neither unregistered nor fired. What a wait or a select leaves behind.
 */
export function countedToken(): { token: CancellationToken; live: () => number } {
  const token = new CancellationToken();
  let live = 0;
  const original = token.onCancel.bind(token);
  token.onCancel = (callback: (reason: unknown) => void): CancelRegistration => {
    live++;
    let done = false;
    const release = (): void => {
      if (!done) {
        done = true;
        live--;
      }
    };
    const registration = original((reason) => {
      release();
      callback(reason);
    });
    const unregister = (): void => {
      release();
      registration.unregister();
    };
    return { unregister, [Symbol.dispose]: unregister };
  };
  return { token, live: () => live };
}
