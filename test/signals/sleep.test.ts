import { getEventListeners } from "node:events";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import vm from "node:vm";
import { CancellationToken, deadline, select, Sleep, sleep } from "../../src/index.js";
import { buildPackage, flush, removeBuilds, killChildren, outcome, startFixture, stateOf } from "./helpers.js";

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await killChildren();
});

describe("sleep()", () => {
  it("sleep() resolves with undefined once its delay has passed", async () => {
    vi.useFakeTimers();
    const waiting = sleep(100);
    expect(waiting).toBeInstanceOf(Sleep);
    const result = waiting.then();
    vi.advanceTimersByTime(99);
    expect(await stateOf(result)).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await outcome(result)).toEqual({ state: "fulfilled", value: undefined });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("sleep(0) still yields to the event loop before resolving", async () => {
    vi.useFakeTimers();
    const result = sleep(0).then();
    expect(await stateOf(result)).toBe("pending");
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(0);
    expect(await stateOf(result)).toBe("fulfilled");
  });

  it("sleep() fixes its deadline at creation", async () => {
    vi.useFakeTimers();
    const timeout = sleep(100);
    vi.advanceTimersByTime(60);
    expect(timeout.remainingMs).toBe(40);
    const result = timeout.then();
    vi.advanceTimersByTime(40);
    expect(await stateOf(result)).toBe("fulfilled");
    expect(timeout.isElapsed).toBe(true);
    expect(timeout.remainingMs).toBe(0);
  });

  it("sleep() stays elapsed: awaiting again resolves at once, without a timer", async () => {
    vi.useFakeTimers();
    const timeout = sleep(10);
    vi.advanceTimersByTime(10);
    expect(timeout.isElapsed).toBe(true);
    const again = timeout.then();
    expect(vi.getTimerCount()).toBe(0);
    expect(await stateOf(again)).toBe("fulfilled");
  });

  it("sleep() shares one timer among all its waiters and clears it when the last leaves", async () => {
    vi.useFakeTimers();
    const timeout = sleep(1_000);
    const a = new CancellationToken();
    const b = new CancellationToken();
    const first = select({ a, timeout });
    const second = select({ b, timeout });
    await Promise.resolve();
    expect(vi.getTimerCount()).toBe(1);
    a.cancel();
    await first;
    expect(vi.getTimerCount()).toBe(1);
    b.cancel();
    await second;
    expect(vi.getTimerCount()).toBe(0);
    expect(timeout.isElapsed).toBe(false);
  });

  it("sleep() reused across selects in a loop is one deadline for the whole loop", async () => {
    vi.useFakeTimers();
    const timeout = sleep(100);
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const tick = sleep(40);
      const result = select({ timeout, tick }, { biased: true });
      vi.advanceTimersByTime(40);
      keys.push((await result).key);
    }
    expect(keys).toEqual(["tick", "tick", "timeout"]);
  });

  it("sleep() chains delays longer than 2^31-1 ms instead of firing at once", async () => {
    vi.useFakeTimers();
    const long = sleep(2 ** 31 + 1_000);
    const result = long.then();
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(await stateOf(result)).toBe("pending");
    vi.advanceTimersByTime(1_000);
    expect(await stateOf(result)).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await stateOf(result)).toBe("fulfilled");
  });

  it("sleep() past 2^31-1 ms that loses a select in its second link leaves no timer", async () => {
    vi.useFakeTimers();
    const long = sleep(2 * 2 ** 31);
    const token = new CancellationToken();
    const result = select({ long, token });
    await flush();
    vi.advanceTimersByTime(2 ** 31); // into the second link of the chain
    expect(vi.getTimerCount()).toBe(1);
    token.cancel("stop");
    expect(await result).toEqual({ key: "token", value: "stop" });
    expect(vi.getTimerCount()).toBe(0);
    expect(long.isElapsed).toBe(false);
  });

  it("sleep() keeps the process alive while awaited; { ref: false } opts out", async () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const referenced = sleep(60_000);
    void referenced.then();
    const unreferenced = sleep(60_000, { ref: false });
    void unreferenced.then();
    const [first, second] = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
    expect(first!.hasRef()).toBe(true);
    expect(second!.hasRef()).toBe(false);
    clearTimeout(first);
    clearTimeout(second);
  });

  it("sleep().catch() and .finally() behave like a promise's", async () => {
    vi.useFakeTimers();
    let finished = false;
    const done = sleep(5).finally(() => (finished = true));
    vi.advanceTimersByTime(5);
    await done;
    expect(finished).toBe(true);
    const reason = await sleep(5, { signal: AbortSignal.abort("r") }).catch((r: unknown) => r);
    expect(reason).toBe("r");
  });
});

describe("sleep() { signal }", () => {
  it("sleep() rejects with the reason, unchanged, when the signal is already aborted, and arms no timer", async () => {
    vi.useFakeTimers();
    const reason = new Error("stop");
    await expect(sleep(100, { signal: AbortSignal.abort(reason) }).then()).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("sleep() rejects with the reason when aborted while waiting, and clears its timer", async () => {
    vi.useFakeTimers();
    const token = new CancellationToken();
    const result = sleep(100, { signal: token }).then();
    expect(vi.getTimerCount()).toBe(1);
    token.cancel("cancelled");
    await expect(result).rejects.toBe("cancelled");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("sleep() stays resolved when the signal aborts after the deadline", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const result = sleep(10, { signal: controller.signal }).then();
    vi.advanceTimersByTime(10);
    expect(await stateOf(result)).toBe("fulfilled");
    controller.abort("late");
    expect(await stateOf(result)).toBe("fulfilled");
  });

  it("sleep() whose signal aborts rejects the select it takes part in, and leaves nothing", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const timeout = sleep(60_000, { signal: controller.signal });
    const result = select({ timeout, never: new CancellationToken() });
    await Promise.resolve();
    expect(vi.getTimerCount()).toBe(1);
    controller.abort("gone");
    await expect(result).rejects.toBe("gone");
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("deadline()", () => {
  it("deadline() elapses at the given Date", async () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
    const at = deadline(new Date("2026-01-01T00:00:01Z"));
    const result = at.then();
    vi.advanceTimersByTime(999);
    expect(await stateOf(result)).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await stateOf(result)).toBe("fulfilled");
  });

  it("deadline() accepts epoch milliseconds", async () => {
    vi.useFakeTimers();
    const at = deadline(Date.now() + 50);
    expect(at.remainingMs).toBe(50);
  });

  it("deadline() in the past is due at once and wins a select on the spot", async () => {
    vi.useFakeTimers();
    const past = deadline(new Date(Date.now() - 1_000));
    expect(past.isElapsed).toBe(true);
    expect(await select({ past, never: new CancellationToken() })).toEqual({ key: "past", value: undefined });
  });
});

describe("deadline() with a Date from another realm", () => {
  it("deadline() accepts a Date from another realm (node:vm) by brand, not instanceof", () => {
    vi.useFakeTimers();
    const foreign = vm.runInNewContext(`new Date(${Date.now() + 50})`) as Date;
    expect(foreign instanceof Date).toBe(false);
    expect(deadline(foreign).remainingMs).toBe(50);
    const past = vm.runInNewContext(`new Date(${Date.now() - 1_000})`) as Date;
    expect(deadline(past).isElapsed).toBe(true);
  });

  it("deadline() rejects an invalid Date from another realm with a RangeError that does not contradict itself", () => {
    const invalid = vm.runInNewContext(`new Date("nope")`) as Date;
    expect(() => deadline(invalid)).toThrow(RangeError);
    expect(() => deadline(invalid)).toThrow(/'date' must be a valid Date/);
  });

  it("deadline() rejects a Date look-alike (no [[DateValue]]) with a TypeError", () => {
    const fake = Object.create(Date.prototype) as Date;
    expect(() => deadline(fake)).toThrow(TypeError);
    expect(() => deadline(fake)).toThrow(/'date' must be a Date or a number/);
  });
});

describe("sleep() and deadline() misuse", () => {
  it.each([
    [() => sleep(-1), RangeError, /Cannot create sleep\(\): 'ms' must be a finite number >= 0, received number -1/],
    [() => sleep(Number.NaN), RangeError, /'ms'/],
    [() => sleep(Infinity), RangeError, /'ms'/],
    [() => sleep("10" as never), TypeError, /received string "10"/],
    [() => sleep(1, null as never), TypeError, /'options'/],
    [() => sleep(1, { ref: "no" as never }), TypeError, /'options.ref' must be a boolean/],
    [() => sleep(1, { signal: {} as never }), TypeError, /'signal'/],
    [() => deadline(new Date("nope")), RangeError, /'date' must be a valid Date/],
    [() => deadline(Number.NaN), RangeError, /'date'/],
    [() => deadline("2026-01-01" as never), TypeError, /'date' must be a Date or a number/],
  ])("misuse %# throws synchronously", (call, ErrorClass, message) => {
    expect(call).toThrow(ErrorClass);
    expect(call).toThrow(message);
  });
});

describe("sleep() end to end", () => {
  beforeAll(() => void buildPackage(), 120_000);
  afterAll(() => removeBuilds());

  it("a select won by another branch leaves no timer: the process exits at once despite a losing one-hour sleep", async () => {
    const child = startFixture("sleep-loser.mjs");
    expect(await child.line(/^winner /)).toBe("winner token stop");
    expect(await child.exited).toEqual({ code: 0, signal: null });
    // An hour-long timer left armed would keep the child alive and this test would time out.
    expect(child.lines).toContain("exited on its own");
  });

  it("an awaited sleep keeps the process alive until it elapses; { ref: false } does not", async () => {
    const child = startFixture("sleep-ref.mjs");
    expect(await child.exited).toEqual({ code: 13, signal: null });
    // The referenced sleep completed; the unreferenced one left the top-level await unsettled (exit 13).
    expect(child.lines).toEqual(["ref sleep done", "awaiting ref: false"]);
  });
});
