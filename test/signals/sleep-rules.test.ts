/*
 * sleep() / deadline(): rules the main suite (sleep.test.ts) leaves loose —
 * the exact deadline, the sticky elapsed flag when a timer fires before the
 * clock reads the deadline, the waiter list under every removal order, what
 * a sleep with a signal leaves behind, and the exact misuse messages.
 */
import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CancellationToken, deadline, select, selectable, sleep } from "../../src/index.js";
import { flush, outcome, stateOf } from "./helpers.js";

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("Sleep deadline and elapsed state", () => {
  it("Sleep.isElapsed turns true exactly at the deadline, with nobody waiting", () => {
    vi.useFakeTimers();
    const timeout = sleep(100);
    vi.advanceTimersByTime(99);
    expect(timeout.isElapsed).toBe(false);
    expect(timeout.remainingMs).toBe(1);
    vi.advanceTimersByTime(1);
    expect(timeout.isElapsed).toBe(true);
    expect(timeout.remainingMs).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("Sleep stays elapsed once its timer fired, even before performance.now() reaches the deadline", async () => {
    // Only the timers are fake: the clock stays far from the deadline, as when
    // Node fires a timer a fraction of a millisecond early.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const timeout = sleep(60_000);
    const waiting = timeout.then();
    vi.advanceTimersByTime(60_000);
    expect(await stateOf(waiting)).toBe("fulfilled");
    expect(timeout.isElapsed).toBe(true);
    expect(timeout.remainingMs).toBe(0);
    // Elapsed: a select takes it at the call, and a new wait resolves at once.
    expect(await select({ timeout, never: new CancellationToken() })).toEqual({ key: "timeout", value: undefined });
    expect(await stateOf(timeout.then())).toBe("fulfilled");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("Sleep.then() on an elapsed sleep calls back in the next microtask, like an already-resolved promise", async () => {
    vi.useFakeTimers();
    const timeout = sleep(10);
    vi.advanceTimersByTime(10);
    expect(timeout.isElapsed).toBe(true);
    const order: string[] = [];
    void timeout.then(() => order.push("sleep"));
    void Promise.resolve().then(() => order.push("resolved"));
    await flush();
    expect(order).toEqual(["sleep", "resolved"]);
  });
});

describe("Sleep waiters", () => {
  it("Sleep resolves every concurrent await at the deadline with one timer", async () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const waits = [timeout.then(), timeout.then(), timeout.then()];
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(await Promise.all(waits.map((w) => stateOf(w)))).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([
    ["first", [0]],
    ["middle", [1]],
    ["last", [2]],
    ["last, then first", [2, 0]],
    ["first, then last", [0, 2]],
    ["middle, then last", [1, 2]],
  ])("Sleep keeps its timer and wakes the others when the %s of three select subscriptions leaves", async (_order, removed) => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const woken = [vi.fn(), vi.fn(), vi.fn()];
    const unsubscribes = woken.map((wake) => timeout[selectable]().subscribe(wake));
    for (const i of removed) unsubscribes[i]!();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    woken.forEach((wake, i) => expect(wake).toHaveBeenCalledTimes(removed.includes(i) ? 0 : 1));
    for (const unsubscribe of unsubscribes) unsubscribe();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("Sleep clears its timer when the last of several select subscriptions leaves, in any order", () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const unsubscribes = [0, 1, 2].map(() => timeout[selectable]().subscribe(() => {}));
    unsubscribes[1]!();
    unsubscribes[2]!();
    expect(vi.getTimerCount()).toBe(1);
    unsubscribes[0]!();
    expect(vi.getTimerCount()).toBe(0);
    expect(timeout.isElapsed).toBe(false);
  });

  it("Sleep's select branch unsubscribe is idempotent: calling it twice leaves the other waiters and the timer", () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const first = vi.fn();
    const second = vi.fn();
    const third = vi.fn();
    const unsubscribeFirst = timeout[selectable]().subscribe(first);
    timeout[selectable]().subscribe(second);
    const unsubscribeThird = timeout[selectable]().subscribe(third);
    unsubscribeFirst();
    unsubscribeFirst();
    unsubscribeThird();
    unsubscribeThird();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
    expect(third).not.toHaveBeenCalled();
  });

  it("Sleep's select branch unsubscribe stays a no-op after its neighbours left too", () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const woken = [vi.fn(), vi.fn(), vi.fn()];
    const [first, second, third] = woken.map((wake) => timeout[selectable]().subscribe(wake));
    second!();
    third!();
    second!(); // its old neighbours have changed since
    first!();
    expect(vi.getTimerCount()).toBe(0);
    const late = vi.fn();
    timeout[selectable]().subscribe(late);
    vi.advanceTimersByTime(50);
    expect(late).toHaveBeenCalledTimes(1);
    woken.forEach((wake) => expect(wake).not.toHaveBeenCalled());
  });

  it("Sleep's select branch subscribed after the deadline fired still wakes its subscriber, on a new timer", () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const early = vi.fn();
    // A subscriber that keeps its subscription past the deadline.
    timeout[selectable]().subscribe(early);
    vi.advanceTimersByTime(50);
    expect(early).toHaveBeenCalledTimes(1);
    const late = vi.fn();
    timeout[selectable]().subscribe(late);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(0);
    expect(late).toHaveBeenCalledTimes(1);
  });

  it("Sleep arms a new timer for a wait that comes after every earlier one left", async () => {
    vi.useFakeTimers();
    const timeout = sleep(50);
    const token = new CancellationToken();
    const lost = select({ token, timeout });
    await flush();
    token.cancel("stop");
    expect((await lost).key).toBe("token");
    expect(vi.getTimerCount()).toBe(0);
    const waiting = timeout.then();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(await stateOf(waiting)).toBe("fulfilled");
  });

  it("Sleep holds none of the awaits it resolved", async () => {
    const gc = (globalThis as { gc?: () => void }).gc!;
    vi.useFakeTimers();
    const timeout = sleep(10);
    const heap = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) {
        await flush();
        gc();
      }
      return process.memoryUsage().heapUsed;
    };
    const before = await heap();
    let waits: Array<Promise<void>> | null = Array.from({ length: 20_000 }, () => timeout.then());
    vi.advanceTimersByTime(10);
    await Promise.all(waits);
    waits = null;
    // Each waiter left in the list would keep a node, a closure and a promise (~200 bytes).
    expect((await heap()) - before).toBeLessThan(1024 * 1024);
    expect(timeout.isElapsed).toBe(true);
  });
});

describe("Sleep { signal }", () => {
  it("Sleep with a signal that loses a select leaves no listener on the signal and no timer", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const timeout = sleep(60_000, { signal: controller.signal });
    const token = new CancellationToken();
    const result = select({ token, timeout });
    await flush();
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    token.cancel("won");
    expect(await result).toEqual({ key: "token", value: "won" });
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("Sleep that elapsed and whose signal was aborted since rejects a new wait, and a select, with the reason", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const timeout = sleep(10, { signal: controller.signal });
    vi.advanceTimersByTime(10);
    expect(timeout.isElapsed).toBe(true);
    controller.abort("gone");
    expect(await outcome(timeout.then())).toEqual({ state: "rejected", error: "gone" });
    await expect(select({ timeout })).rejects.toBe("gone");
  });

  it("Sleep that elapsed with its signal never aborted resolves a new wait at once", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const timeout = sleep(10, { signal: controller.signal });
    vi.advanceTimersByTime(10);
    expect(timeout.isElapsed).toBe(true);
    expect(await outcome(timeout.then())).toEqual({ state: "fulfilled", value: undefined });
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("sleep() and deadline() misuse messages", () => {
  it.each([
    [() => sleep(1, { ref: "no" as never }), TypeError, `Cannot create sleep(): 'options.ref' must be a boolean or undefined, received string "no"`],
    [() => deadline(Date.now(), { ref: 1 as never }), TypeError, `Cannot create deadline(): 'options.ref' must be a boolean or undefined, received number 1`],
    [() => deadline(Number.NaN), RangeError, `Cannot create deadline(): 'date' must be a valid Date or a finite number of epoch milliseconds, received number NaN`],
    [() => deadline(Infinity), RangeError, `Cannot create deadline(): 'date' must be a valid Date or a finite number of epoch milliseconds, received number Infinity`],
    [() => deadline("2026-01-01" as never), TypeError, `Cannot create deadline(): 'date' must be a Date or a number of epoch milliseconds, received string "2026-01-01"`],
    [() => deadline(new Date("nope")), RangeError, `Cannot create deadline(): 'date' must be a valid Date, received `],
  ])("sleep() and deadline() misuse %# throws with the full message", (call, ErrorClass, message) => {
    expect(call).toThrow(ErrorClass);
    expect(call).toThrow(message);
  });
});
