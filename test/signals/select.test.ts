import { getEventListeners } from "node:events";
import vm from "node:vm";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  CancellationToken,
  ChannelClosedError,
  oneshot,
  select,
  selectable,
  sleep,
  watch,
  type SelectBranch,
  type Selectable,
} from "../../src/index.js";
import { processSignal } from "../../src/signals/index.js";
import { Cell, countedToken, deferred, flush, outcome, stateOf } from "./helpers.js";

const abortListeners = (signal: AbortSignal): number => getEventListeners(signal, "abort").length;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------
describe("select() branch kinds", () => {
  it("select() resolves with a cancelled token's key and reason", async () => {
    const token = new CancellationToken();
    const other = new CancellationToken();
    const result = select({ token, other });
    expect(await stateOf(result)).toBe("pending");
    token.cancel("stop");
    expect(await result).toEqual({ key: "token", value: "stop" });
  });

  it("select() resolves at once for a token that is already cancelled", async () => {
    const result = select({ done: CancellationToken.alreadyCancelled("early"), never: new CancellationToken() });
    expect(await outcome(result)).toEqual({ state: "fulfilled", value: { key: "done", value: "early" } });
  });

  it("select() resolves with an aborted AbortSignal's reason and removes its listener", async () => {
    const controller = new AbortController();
    const result = select({ signal: controller.signal, never: new CancellationToken() });
    await flush();
    expect(abortListeners(controller.signal)).toBe(1);
    const reason = new Error("client left");
    controller.abort(reason);
    expect(await result).toEqual({ key: "signal", value: reason });
    expect(abortListeners(controller.signal)).toBe(0);
  });

  it("select() takes an already-aborted AbortSignal without subscribing", async () => {
    const signal = AbortSignal.abort("gone");
    expect(await select({ signal })).toEqual({ key: "signal", value: "gone" });
    expect(abortListeners(signal)).toBe(0);
  });

  it("select() commits a ready Selectable before it returns", async () => {
    const cell = new Cell(7);
    const result = select({ cell, never: new CancellationToken() });
    // Committed synchronously, like tokio's first poll.
    expect(cell.commits).toBe(1);
    expect(cell.isFull).toBe(false);
    expect(cell.subscriptions).toBe(0);
    expect(await result).toEqual({ key: "cell", value: 7 });
  });

  it("select() wins a Selectable that becomes ready, and unsubscribes it", async () => {
    const cell = new Cell<string>();
    const result = select({ cell, never: new CancellationToken() });
    await flush();
    expect(cell.subscriptions).toBe(1);
    cell.put("hello");
    expect(await result).toEqual({ key: "cell", value: "hello" });
    expect(cell.subscriptions).toBe(0);
    expect(cell.commits).toBe(1);
  });

  it("select() works with the Selectable from the interface's doc example", async () => {
    const listeners = new Set<() => void>();
    let count = 0;
    const limit: Selectable<number> = {
      [selectable]: () => ({
        poll: () => count >= 3,
        commit: () => (count -= 3),
        subscribe: (wake) => (listeners.add(wake), () => void listeners.delete(wake)),
      }),
    };
    const result = select({ limit });
    for (let i = 0; i < 3; i++) {
      count++;
      listeners.forEach((wake) => wake());
    }
    expect(await result).toEqual({ key: "limit", value: 0 });
    expect(listeners.size).toBe(0);
  });

  it("select() rejects with the error a Selectable's commit throws", async () => {
    const cell = new Cell(1);
    cell.failWith = new Error("broken");
    await expect(select({ cell })).rejects.toThrow("broken");
  });

  it("select() resolves with a promise branch's value", async () => {
    const { promise, resolve } = deferred<number>();
    const result = select({ promise, never: new CancellationToken() });
    expect(await stateOf(result)).toBe("pending");
    resolve(42);
    expect(await result).toEqual({ key: "promise", value: 42 });
  });

  it("select() accepts a thenable that is not a promise", async () => {
    const thenable: PromiseLike<string> = { then: (onFulfilled) => Promise.resolve("thenable").then(onFulfilled) };
    expect(await select({ thenable })).toEqual({ key: "thenable", value: "thenable" });
  });

  it("select() rejects with a promise branch's rejection", async () => {
    const error = new Error("failed");
    const { promise, reject } = deferred<number>();
    const token = countedToken();
    const result = select({ promise, token: token.token });
    reject(error);
    await expect(result).rejects.toBe(error);
    expect(token.live()).toBe(0);
  });

  it("select() keeps a losing promise's later rejection from being unhandled", async () => {
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      const { promise, reject } = deferred<number>();
      const token = CancellationToken.alreadyCancelled("now");
      await select({ token, promise });
      reject(new Error("late"));
      await new Promise((resolve) => setImmediate(resolve));
      const pending = deferred<number>();
      const cell = new Cell<number>();
      const result = select({ cell, pending: pending.promise });
      cell.put(1);
      await result;
      pending.reject(new Error("late too"));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });

  it("select() does not start a lazy thenable when a pollable branch wins at the call", async () => {
    const then = vi.fn();
    const lazy = { then } as unknown as PromiseLike<number>;
    expect(await select({ ready: new Cell(1), lazy })).toEqual({ key: "ready", value: 1 });
    await flush();
    expect(then).not.toHaveBeenCalled();
  });

  it("select() calls a function branch with a fresh token and resolves with its value", async () => {
    let received: CancellationToken | undefined;
    const { promise, resolve } = deferred<string>();
    const result = select({
      work: (token: CancellationToken) => {
        received = token;
        return promise;
      },
      never: new CancellationToken(),
    });
    expect(received).toBeInstanceOf(CancellationToken);
    expect(received!.isCancelled).toBe(false);
    resolve("done");
    expect(await result).toEqual({ key: "work", value: "done" });
    // The winner's token is not cancelled: its work is finished.
    expect(received!.isCancelled).toBe(false);
  });

  it("select() cancels a losing function branch's token, naming the winner", async () => {
    const tokens: CancellationToken[] = [];
    const cell = new Cell<number>();
    const result = select({
      slow: (token: CancellationToken) => (tokens.push(token), new Promise<never>(() => {})),
      fast: cell,
    });
    expect(tokens).toHaveLength(1);
    cell.put(1);
    expect(await result).toEqual({ key: "fast", value: 1 });
    expect(tokens[0]!.isCancelled).toBe(true);
    expect(tokens[0]!.reason).toBeInstanceOf(DOMException);
    expect((tokens[0]!.reason as DOMException).name).toBe("AbortError");
    expect((tokens[0]!.reason as DOMException).message).toContain("'fast'");
  });

  it("select() does not call a function branch when a pollable branch is ready at the call", async () => {
    const work = vi.fn(() => Promise.resolve(1));
    const result = await select({ ready: new Cell("now"), work });
    expect(result).toEqual({ key: "ready", value: "now" });
    expect(work).not.toHaveBeenCalled();
  });

  it("select() rejects with what a function branch throws synchronously", async () => {
    const error = new Error("sync");
    const cell = new Cell<number>();
    await expect(
      select({
        boom: () => {
          throw error;
        },
        cell,
      }),
    ).rejects.toBe(error);
    expect(cell.subscriptions).toBe(0);
  });

  it("select() cancels each losing function branch's token with a reason naming that branch and the winner", async () => {
    const tokens: Record<string, CancellationToken> = {};
    const cell = new Cell<number>();
    const result = select({
      first: (token: CancellationToken) => ((tokens["first"] = token), new Promise<never>(() => {})),
      second: (token: CancellationToken) => ((tokens["second"] = token), new Promise<never>(() => {})),
      cell,
    });
    await flush();
    cell.put(1);
    expect(await result).toEqual({ key: "cell", value: 1 });
    expect((tokens["first"]!.reason as DOMException).message).toBe("The select branch 'first' lost to 'cell'");
    expect((tokens["second"]!.reason as DOMException).message).toBe("The select branch 'second' lost to 'cell'");
  });

  it("select() has released every subscription before a losing function branch's token callbacks run", async () => {
    const cell = new Cell<number>();
    const winner = new Cell<string>();
    let seen: number | undefined;
    const result = select({
      work: (token: CancellationToken) => {
        token.onCancel(() => (seen = cell.subscriptions + winner.subscriptions));
        return new Promise<never>(() => {});
      },
      cell,
      winner,
    });
    await flush();
    winner.put("w");
    expect(await result).toEqual({ key: "winner", value: "w" });
    expect(seen).toBe(0);
  });

  it("select() rejects (never throws) when a function branch returns an object whose then getter throws", async () => {
    const cell = new Cell<number>();
    const error = new Error("then getter");
    const hostile = {
      get then(): never {
        throw error;
      },
    };
    let result: Promise<unknown> | undefined;
    expect(() => (result = select({ cell, work: () => hostile as unknown as Promise<number> }))).not.toThrow();
    await expect(result).rejects.toBe(error);
    expect(cell.subscriptions).toBe(0);
  });

  it("select() resolves with a function branch's plain return value", async () => {
    expect(await select({ plain: () => 5, never: new CancellationToken() })).toEqual({ key: "plain", value: 5 });
  });

  it("select() treats false, null, undefined, 0 and '' as disabled branches", async () => {
    const cell = new Cell(1);
    const result = await select({ a: false, b: null, c: undefined, d: 0, e: "", cell });
    expect(result).toEqual({ key: "cell", value: 1 });
  });

  it("select() with a sleep branch that loses clears its timer", async () => {
    vi.useFakeTimers();
    const token = new CancellationToken();
    const result = select({ token, timeout: sleep(3_600_000) });
    await flush();
    expect(vi.getTimerCount()).toBe(1);
    token.cancel("stop");
    expect(await result).toEqual({ key: "token", value: "stop" });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("select() with a sleep branch that wins resolves with undefined at the deadline", async () => {
    vi.useFakeTimers();
    const token = countedToken();
    const result = select({ token: token.token, timeout: sleep(100) });
    vi.advanceTimersByTime(99);
    expect(await stateOf(result)).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await result).toEqual({ key: "timeout", value: undefined });
    expect(token.live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe("select() misuse", () => {
  it.each([
    ["null", null],
    ["a number", 42],
    ["a string", "x"],
    ["an array", [new CancellationToken()]],
  ])("select() throws a TypeError for %s as branches", (_name, branches) => {
    expect(() => select(branches as never)).toThrow(TypeError);
    expect(() => select(branches as never)).toThrow(/Cannot call select\(\): 'branches' must be an object of named branches/);
  });

  it.each([
    [42, "number 42"],
    ["x", 'string "x"'],
    [true, "boolean true"],
    [{}, "an object"],
  ])("select() throws a TypeError naming the key of a bad branch (%s)", (bad, described) => {
    expect(() => select({ good: new CancellationToken(), bad: bad as never })).toThrow(
      new RegExp(`'branches\\.bad' must be .* received ${described.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
  });

  it("select() throws a TypeError when every branch is disabled, as tokio panics", () => {
    expect(() => select({ a: false, b: null })).toThrow(TypeError);
    expect(() => select({ a: false, b: null })).toThrow(/every branch is disabled/);
    expect(() => select({})).toThrow(/every branch is disabled/);
  });

  it("select() validates options before any side effect", () => {
    const work = vi.fn(() => Promise.resolve());
    expect(() => select({ work }, null as never)).toThrow(TypeError);
    expect(() => select({ work }, { biased: "yes" as never })).toThrow(/'options.biased' must be a boolean/);
    expect(() => select({ work }, { signal: 5 as never })).toThrow(/'signal' must be an AbortSignal, a CancellationToken/);
    expect(() => select({ work, bad: 42 as never })).toThrow(TypeError);
    expect(work).not.toHaveBeenCalled();
  });
});

// ---------------------------------------------------------------------------
// A promise whose `then` throws (an own property, a subclass, a proxy) must
// behave like a promise that rejected with that error: select never throws
// once it has started subscribing, releases everything, and never loses a
// winner it already committed.

/** A real, never-settling promise whose `then` throws `error`. */
function hostilePromise(error: unknown): Promise<number> {
  const promise = new Promise<number>(() => {});
  Object.defineProperty(promise, "then", {
    value: () => {
      throw error;
    },
  });
  return promise;
}

describe("select() with values from another realm", () => {
  it("select() keeps a losing promise from another realm (node:vm) from reporting its later rejection as unhandled", async () => {
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      const context = vm.createContext({});
      const promise = vm.runInContext("new Promise((_, reject) => { globalThis.fail = reject; })", context) as Promise<number>;
      expect(promise instanceof Promise).toBe(false);
      const result = select({ stop: CancellationToken.alreadyCancelled("stop"), promise });
      expect(await result).toEqual({ key: "stop", value: "stop" });
      vm.runInContext("fail(new Error('late'))", context);
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });

  it("select() wins on a promise from another realm like on any promise", async () => {
    const promise = vm.runInNewContext("Promise.resolve(7)") as Promise<number>;
    expect(await select({ promise, never: new CancellationToken() })).toEqual({ key: "promise", value: 7 });
  });
});

describe("select() with a promise whose then throws", () => {
  it("select() does not throw when a function branch's promise has a throwing then: the select rejects with it and releases every subscription", async () => {
    vi.useFakeTimers();
    const error = new Error("then threw");
    const controller = new AbortController();
    const stop = countedToken();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = select({ stop: stop.token, abort: controller.signal, timeout: sleep(60_000), work: () => hostilePromise(error) });
    }).not.toThrow();
    await expect(result).rejects.toBe(error);
    expect(stop.live()).toBe(0);
    expect(abortListeners(controller.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("select() treats a throwing then as that branch's rejection: another branch ready at the same wake can win", async () => {
    const result = select({ good: async () => 1, bad: () => hostilePromise(new Error("then threw")) }, { biased: true });
    expect(await outcome(result)).toEqual({ state: "fulfilled", value: { key: "good", value: 1 } });
  });

  it("select() commits a pollable winner ready at the call even when a promise branch's then throws", async () => {
    const [tx, rx] = oneshot<string>();
    tx.send("kept");
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = select({ rx, promise: hostilePromise(new Error("then threw")) });
    }).not.toThrow();
    expect(await outcome(result!)).toEqual({ state: "fulfilled", value: { key: "rx", value: "kept" } });
    expect(rx.isTerminated).toBe(true);
  });

  it("select() rejects with the error of a promise branch whose then throws and releases every subscription", async () => {
    const error = new Error("then threw");
    const token = countedToken();
    const cell = new Cell<number>();
    const result = select({ token: token.token, cell, promise: hostilePromise(error) });
    await expect(result).rejects.toBe(error);
    expect(token.live()).toBe(0);
    expect(cell.subscriptions).toBe(0);
  });

  it("select() treats a branch whose then getter throws as a rejected promise, not a synchronous throw", async () => {
    const error = new Error("getter threw");
    const branch = {
      get then(): never {
        throw error;
      },
    };
    const token = countedToken();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = select({ token: token.token, branch: branch as unknown as PromiseLike<number> });
    }).not.toThrow();
    await expect(result).rejects.toBe(error);
    expect(token.live()).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe("select() two-phase commit (cancel-safety)", () => {
  it("select() commits only the winner when several are ready at the call", async () => {
    const a = new Cell("a");
    const b = new Cell("b");
    const c = new Cell("c");
    const result = await select({ a, b, c });
    expect(a.commits + b.commits + c.commits).toBe(1);
    const losers = [a, b, c].filter((cell) => cell.commits === 0);
    expect(losers).toHaveLength(2);
    for (const loser of losers) expect(loser.isFull).toBe(true);
    expect([a, b, c][["a", "b", "c"].indexOf(result.key)]!.commits).toBe(1);
  });

  it("select() commits only the winner when several become ready in the same turn", async () => {
    const a = new Cell<number>();
    const b = new Cell<number>();
    const result = select({ a, b });
    await flush();
    a.put(1);
    b.put(2);
    const { key } = await result;
    const [winner, loser] = key === "a" ? [a, b] : [b, a];
    expect(winner.commits).toBe(1);
    expect(loser.commits).toBe(0);
    expect(loser.isFull).toBe(true);
    expect(a.subscriptions + b.subscriptions).toBe(0);
  });

  it("select() keeps waiting after a spurious wake", async () => {
    const cell = new Cell<number>();
    const result = select({ cell });
    await flush();
    cell.wakeAll();
    expect(await stateOf(result)).toBe("pending");
    cell.put(3);
    expect(await result).toEqual({ key: "cell", value: 3 });
  });

  it("select() keeps waiting when another consumer took the value before it looked", async () => {
    const cell = new Cell<number>();
    const result = select({ cell });
    await flush();
    cell.put(1); // wake queued...
    cell.steal(); // ...but the value is gone before the select re-polls
    expect(await stateOf(result)).toBe("pending");
    expect(cell.commits).toBe(0);
    cell.put(2);
    expect(await result).toEqual({ key: "cell", value: 2 });
  });

  it("select() wakes run on a microtask, never inside the waker's own call", async () => {
    const cell = new Cell<number>();
    const result = select({ cell });
    await flush();
    cell.put(1);
    // put() returned and the select has not committed yet: no re-entrancy.
    expect(cell.commits).toBe(0);
    expect(await result).toEqual({ key: "cell", value: 1 });
  });

  it("select() started inside a cancel callback sees the cancelled token", async () => {
    const token = new CancellationToken();
    let inner: Promise<unknown> | undefined;
    token.onCancel(() => {
      inner = select({ token, other: new Cell<number>() });
    });
    token.cancel("now");
    expect(await inner).toEqual({ key: "token", value: "now" });
  });

  it("select() commits once, after subscribe returned, when a Selectable wakes synchronously in subscribe", async () => {
    let polls = 0;
    let commits = 0;
    let inSubscribe = false;
    let committedInSubscribe = false;
    let unsubscribed = 0;
    const eager: Selectable<string> = {
      [selectable](): SelectBranch<string> {
        return {
          poll: () => ++polls > 1,
          commit: () => {
            commits++;
            committedInSubscribe ||= inSubscribe;
            return "eager";
          },
          subscribe: (wake) => {
            inSubscribe = true;
            wake();
            wake();
            inSubscribe = false;
            return () => void unsubscribed++;
          },
        };
      },
    };
    expect(await select({ eager })).toEqual({ key: "eager", value: "eager" });
    // The two wakes coalesced into one re-poll, run on a microtask, not inside subscribe().
    expect(polls).toBe(2);
    expect(commits).toBe(1);
    expect(committedInSubscribe).toBe(false);
    expect(unsubscribed).toBe(1);
  });

  it("select() rejects (never throws) when a Selectable's poll throws at the call", async () => {
    const work = vi.fn(() => Promise.resolve(1));
    const broken: Selectable<never> = {
      [selectable]: () => ({
        poll: () => {
          throw new Error("cannot poll");
        },
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: () => () => {},
      }),
    };
    let result: Promise<unknown> | undefined;
    expect(() => (result = select({ broken, work }))).not.toThrow();
    await expect(result).rejects.toThrow("cannot poll");
    expect(work).not.toHaveBeenCalled();
  });

  it("select() rejects, releases everything and cancels function tokens when a poll throws after a wake", async () => {
    let fail = false;
    let wakeIt: () => void = () => {};
    const flaky: Selectable<never> = {
      [selectable]: () => ({
        poll: () => {
          if (fail) throw new Error("poll failed");
          return false;
        },
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: (wake) => ((wakeIt = wake), () => (wakeIt = () => {})),
      }),
    };
    const cell = new Cell<number>();
    let workToken: CancellationToken | undefined;
    const result = select({ flaky, cell, work: (t: CancellationToken) => ((workToken = t), new Promise(() => {})) });
    await flush();
    fail = true;
    wakeIt();
    await expect(result).rejects.toThrow("poll failed");
    expect(cell.subscriptions).toBe(0);
    expect(workToken!.isCancelled).toBe(true);
    expect((workToken!.reason as DOMException).message).toContain("the select failed");
  });

  it("select() rejects and releases every subscription when a Selectable's subscribe throws", async () => {
    const cell = new Cell<number>();
    const token = countedToken();
    const work = vi.fn(() => new Promise(() => {}));
    const broken: Selectable<never> = {
      [selectable]: () => ({
        poll: () => false,
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: () => {
          throw new Error("cannot subscribe");
        },
      }),
    };
    await expect(select({ cell, token: token.token, broken, work })).rejects.toThrow("cannot subscribe");
    expect(cell.subscriptions).toBe(0);
    expect(token.live()).toBe(0);
    expect(work).not.toHaveBeenCalled();
  });
});

describe("select() with a broken Selectable", () => {
  it("select() releases every other subscription and still settles when a Selectable's unsubscribe throws", async () => {
    const error = new Error("cannot unsubscribe");
    const broken: Selectable<never> = {
      [selectable]: () => ({
        poll: () => false,
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: () => () => {
          throw error;
        },
      }),
    };
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      const baseline = process.listenerCount("SIGUSR2");
      const token = countedToken();
      const cell = new Cell<number>();
      // `broken` comes first: the releases after it must still happen.
      const result = select({ broken, token: token.token, hup: processSignal("SIGUSR2"), cell });
      await flush();
      expect(process.listenerCount("SIGUSR2")).toBe(baseline + 1);
      cell.put(1);
      expect(await outcome(result)).toEqual({ state: "fulfilled", value: { key: "cell", value: 1 } });
      expect(cell.subscriptions).toBe(0);
      expect(token.live()).toBe(0);
      expect(process.listenerCount("SIGUSR2")).toBe(baseline);
      await new Promise((resolve) => setImmediate(resolve));
      // Reported, like a throwing cancel callback, not swallowed.
      expect(uncaught).toEqual([error]);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });

  it("select() keeps a later promise branch's rejection handled when a Selectable's subscribe throws", async () => {
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      const broken: Selectable<never> = {
        [selectable]: () => ({
          poll: () => false,
          commit: () => {
            throw new Error("unreachable");
          },
          subscribe: () => {
            throw new Error("cannot subscribe");
          },
        }),
      };
      const failing = Promise.reject(new Error("the promise's own failure"));
      await expect(select({ broken, failing })).rejects.toThrow("cannot subscribe");
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });
});

// ---------------------------------------------------------------------------
describe("select() fairness", () => {
  it("select() picks every ready branch sometimes over 200 runs (ready at the call)", async () => {
    const wins = { a: 0, b: 0, c: 0 };
    for (let run = 0; run < 200; run++) {
      const { key } = await select({ a: new Cell(1), b: new Cell(2), c: new Cell(3) });
      wins[key]++;
    }
    expect(wins.a).toBeGreaterThanOrEqual(1);
    expect(wins.b).toBeGreaterThanOrEqual(1);
    expect(wins.c).toBeGreaterThanOrEqual(1);
  });

  it("select() picks every ready branch sometimes over 200 runs (ready after a wake)", async () => {
    const wins = { token: 0, signal: 0, cell: 0 };
    for (let run = 0; run < 200; run++) {
      const token = new CancellationToken();
      const controller = new AbortController();
      const cell = new Cell<number>();
      const result = select({ token, signal: controller.signal, cell });
      await flush(2);
      token.cancel();
      controller.abort();
      cell.put(1);
      wins[(await result).key]++;
    }
    expect(wins.token).toBeGreaterThanOrEqual(1);
    expect(wins.signal).toBeGreaterThanOrEqual(1);
    expect(wins.cell).toBeGreaterThanOrEqual(1);
  });

  it("select() with biased: true takes the first ready branch in declaration order", async () => {
    for (let run = 0; run < 50; run++) {
      const first = new Cell(1);
      const second = new Cell(2);
      expect((await select({ idle: new Cell<number>(), first, second }, { biased: true })).key).toBe("first");
      expect(second.isFull).toBe(true);
    }
    const a = new Cell<number>();
    const b = new Cell<number>();
    const result = select({ a, b }, { biased: true });
    await flush();
    b.put(2);
    a.put(1);
    expect((await result).key).toBe("a");
    expect(b.isFull).toBe(true);
  });

  it("select() with biased: true ends a loop over an always-ready branch once a deadline declared first elapses (docs/shutdown.md)", async () => {
    vi.useFakeTimers();
    // A queue that always has a job: the busy branch.
    const jobs = new Cell<number>();
    const loop = async (order: "overall first" | "job first"): Promise<number> => {
      const overall = sleep(100);
      for (let handled = 0; handled < 50; handled++) {
        jobs.put(handled);
        const r = await select(order === "overall first" ? { overall, job: jobs } : { job: jobs, overall }, { biased: true });
        if (r.key === "overall") return handled;
        vi.advanceTimersByTime(10); // handling a job takes 10 ms
      }
      return Infinity; // starved: the deadline never won
    };
    expect(await loop("overall first")).toBe(10);
    // The order the guide used to show: the busy branch starves the deadline.
    expect(await loop("job first")).toBe(Infinity);
  });

  it("select() lets a promise that settles in the same turn compete with a ready branch", async () => {
    const keys = new Set<string>();
    for (let run = 0; run < 200 && keys.size < 2; run++) {
      const cell = new Cell<number>();
      const { promise, resolve } = deferred<number>();
      const result = select({ cell, promise });
      await flush();
      // The promise's reaction runs before the select's re-poll microtask.
      resolve(1);
      cell.put(2);
      keys.add((await result).key);
    }
    expect(keys).toEqual(new Set(["cell", "promise"]));
  });
});

// ---------------------------------------------------------------------------
describe("select() { signal }", () => {
  it("select() rejects with the reason, unchanged, when the signal is already aborted, and consumes nothing", async () => {
    const reason = { custom: "reason" };
    const cell = new Cell(1);
    const work = vi.fn(() => Promise.resolve(2));
    await expect(select({ cell, work }, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(cell.commits).toBe(0);
    expect(cell.isFull).toBe(true);
    expect(work).not.toHaveBeenCalled();
  });

  it("select() rejects with the reason when the signal aborts while waiting, and releases everything", async () => {
    const controller = new AbortController();
    const cell = new Cell<number>();
    const token = countedToken();
    let workToken: CancellationToken | undefined;
    const result = select(
      { cell, token: token.token, work: (t: CancellationToken) => ((workToken = t), new Promise(() => {})) },
      { signal: controller.signal },
    );
    await flush();
    expect(abortListeners(controller.signal)).toBe(1);
    controller.abort("stop");
    await expect(result).rejects.toBe("stop");
    expect(cell.subscriptions).toBe(0);
    expect(token.live()).toBe(0);
    expect(abortListeners(controller.signal)).toBe(0);
    // A function branch's token carries the select's abort reason.
    expect(workToken!.reason).toBe("stop");
  });

  it("select() accepts a CancellationToken as its signal", async () => {
    const stop = new CancellationToken();
    const result = select({ cell: new Cell<number>() }, { signal: stop });
    stop.cancel("halt");
    await expect(result).rejects.toBe("halt");
  });

  it("select() lets an abort in the same turn as a ready branch win, consuming nothing", async () => {
    const controller = new AbortController();
    const cell = new Cell<number>();
    const result = select({ cell }, { signal: controller.signal });
    await flush();
    cell.put(1);
    controller.abort("abort wins");
    await expect(result).rejects.toBe("abort wins");
    expect(cell.commits).toBe(0);
    expect(cell.isFull).toBe(true);
  });

  it("select() removes its signal listener when a branch wins", async () => {
    const controller = new AbortController();
    const cell = new Cell<number>();
    const result = select({ cell }, { signal: controller.signal });
    await flush();
    cell.put(1);
    await result;
    expect(abortListeners(controller.signal)).toBe(0);
  });

  it("select() ignores an abort after it settled", async () => {
    const controller = new AbortController();
    const result = select({ cell: new Cell(1) }, { signal: controller.signal });
    controller.abort("late");
    expect(await result).toEqual({ key: "cell", value: 1 });
  });
});

// ---------------------------------------------------------------------------
describe("select() with channels", () => {
  it("select() leaves a losing oneshot's value for a later recv()", async () => {
    const [tx, rx] = oneshot<number>();
    tx.send(1);
    const stop = CancellationToken.alreadyCancelled("stop");
    expect(await select({ stop, rx }, { biased: true })).toEqual({ key: "stop", value: "stop" });
    expect(await rx.recv()).toBe(1);
  });

  it("select() with a oneshot and a token ready in the same turn keeps the loser's value", async () => {
    const seen = new Set<string>();
    for (let run = 0; run < 200 && seen.size < 2; run++) {
      const [tx, rx] = oneshot<number>();
      const token = new CancellationToken();
      const result = select({ rx, token });
      await flush(2);
      tx.send(run);
      token.cancel("cancelled");
      const { key } = await result;
      seen.add(key);
      if (key === "token") expect(rx.tryRecv()).toEqual({ state: "value", value: run });
      else expect(rx.tryRecv()).toEqual({ state: "closed" });
    }
    expect(seen).toEqual(new Set(["rx", "token"]));
  });

  it("select() resolves with a oneshot value that arrives while waiting", async () => {
    const [tx, rx] = oneshot<string>();
    const result = select({ rx, never: new CancellationToken() });
    await flush();
    tx.send("value");
    expect(await result).toEqual({ key: "rx", value: "value" });
    expect(rx.tryRecv().state).toBe("closed");
  });

  it("select() rejects with ChannelClosedError when the oneshot sender closes without sending", async () => {
    const [tx, rx] = oneshot<string>();
    const result = select({ rx, never: new CancellationToken() });
    await flush();
    tx.close();
    await expect(result).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("select() on one oneshot receiver in two concurrent selects: the first gets the value, the other rejects with ChannelClosedError", async () => {
    const [tx, rx] = oneshot<number>();
    const first = select({ rx, never: new CancellationToken() });
    const second = select({ rx, never: new CancellationToken() });
    await flush();
    tx.send(1);
    // As with two pending recv() calls: the value goes to one, the receiver
    // is then terminated, and waiting on would never end.
    expect(await first).toEqual({ key: "rx", value: 1 });
    const error = await second.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelClosedError);
  });

  it("select() on one watch receiver in two concurrent selects: one marks the change seen, the other keeps waiting", async () => {
    const [tx, rx] = watch(0);
    const stop = new CancellationToken();
    const first = select({ rx, stop });
    const second = select({ rx, stop });
    await flush();
    tx.send(1);
    await flush();
    const states = [await stateOf(first), await stateOf(second)].sort();
    expect(states).toEqual(["fulfilled", "pending"]);
    stop.cancel("done");
    await Promise.all([first, second]);
  });

  it("select() leaves a losing watch receiver's version unseen", async () => {
    const [tx, rx] = watch("serving");
    const stop = new CancellationToken();
    const result = select({ stop, changed: rx }, { biased: true });
    await flush();
    stop.cancel("stop");
    tx.send("draining");
    expect((await result).key).toBe("stop");
    expect(rx.hasChanged()).toBe(true);
    expect(await outcome(rx.changed())).toEqual({ state: "fulfilled", value: "draining" });
  });

  it("select() with a watch and a oneshot ready at the same instant keeps the loser unconsumed", async () => {
    const seen = new Set<string>();
    for (let run = 0; run < 200 && seen.size < 2; run++) {
      const [wtx, wrx] = watch(0);
      const [otx, orx] = oneshot<string>();
      wtx.send(run);
      otx.send("one");
      const { key, value } = await select({ wrx, orx });
      seen.add(key);
      if (key === "wrx") {
        expect(value).toBe(run);
        expect(wrx.hasChanged()).toBe(false); // marked seen on commit
        expect(orx.tryRecv()).toEqual({ state: "value", value: "one" });
      } else {
        expect(value).toBe("one");
        expect(wrx.hasChanged()).toBe(true);
      }
    }
    expect(seen).toEqual(new Set(["wrx", "orx"]));
  });

  it("select() wins a watch branch with the new current value and marks it seen", async () => {
    const [tx, rx] = watch(1);
    const result = select({ rx, never: new CancellationToken() });
    await flush();
    tx.send(2);
    tx.send(3); // coalesced
    expect(await result).toEqual({ key: "rx", value: 3 });
    expect(rx.hasChanged()).toBe(false);
  });
});

// ---------------------------------------------------------------------------
describe("select() leaves nothing behind", () => {
  it("select() removes every subscription of every kind when it settles", async () => {
    vi.useFakeTimers();
    const token = countedToken();
    const controller = new AbortController();
    const cell = new Cell<number>();
    const [, rx] = oneshot<number>();
    const winner = new Cell<string>();
    const result = select({ token: token.token, signal: controller.signal, cell, rx, timeout: sleep(60_000), winner });
    await flush();
    expect(token.live()).toBe(1);
    expect(abortListeners(controller.signal)).toBe(1);
    expect(cell.subscriptions).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    winner.put("w");
    expect(await result).toEqual({ key: "winner", value: "w" });
    expect(token.live()).toBe(0);
    expect(abortListeners(controller.signal)).toBe(0);
    expect(cell.subscriptions).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("select() in a loop of 200,000 against one long-lived token does not grow the heap", async () => {
    const shutdown = new CancellationToken();
    const signal = new AbortController().signal;
    const run = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const [tx, rx] = oneshot<number>();
        const result = select({ shutdown, signal, rx });
        tx.send(i);
        if ((await result).key !== "rx") throw new Error("wrong winner");
      }
    };
    await run(20_000); // warm up (JIT, inline caches)
    const gc = (globalThis as { gc?: () => void }).gc!;
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    await run(200_000);
    gc();
    gc();
    const growth = process.memoryUsage().heapUsed - before;
    expect(growth).toBeLessThan(1024 * 1024);
    expect(abortListeners(signal)).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe("select() properties (fc.scheduler)", () => {
  type Spec = { kind: "cell" | "token" | "signal" | "promise" | "oneshot"; readyAtStart: boolean; makeReady: boolean; batch: number };
  const spec = fc.record({
    kind: fc.constantFrom<Spec["kind"]>("cell", "token", "signal", "promise", "oneshot"),
    readyAtStart: fc.boolean(),
    makeReady: fc.boolean(),
    // Branches of one batch become ready in the same turn (one scheduled task).
    batch: fc.integer({ min: 0, max: 2 }),
  });

  it("select() has exactly one winner, leaves losers unchanged and no subscription behind", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(spec, { minLength: 1, maxLength: 6 }), fc.boolean(), fc.scheduler(), async (specs, biased, s) => {
        // Make sure at least one branch will become ready.
        if (!specs.some((b) => b.readyAtStart || b.makeReady)) specs[0] = { ...specs[0]!, makeReady: true };
        const branches: Record<string, unknown> = {};
        const checks: Array<(won: boolean) => void> = [];
        const live: Array<() => number> = [];
        const batches: Array<Array<() => void>> = [[], [], []];
        specs.forEach((b, i) => {
          const key = `b${i}`;
          const pollableReady = b.readyAtStart && b.kind !== "promise";
          const later = !pollableReady && b.makeReady;
          switch (b.kind) {
            case "cell": {
              const cell = new Cell<string>();
              let put = false;
              if (pollableReady) cell.put(key);
              if (later) batches[b.batch]!.push(() => ((put = true), cell.put(key)));
              branches[key] = cell;
              live.push(() => cell.subscriptions);
              checks.push((won) => {
                expect(cell.commits).toBe(won ? 1 : 0);
                if (!won) expect(cell.isFull).toBe(pollableReady || put);
              });
              break;
            }
            case "oneshot": {
              const [tx, rx] = oneshot<string>();
              let sent = false;
              if (pollableReady) tx.send(key);
              if (later) batches[b.batch]!.push(() => ((sent = true), tx.send(key)));
              branches[key] = rx;
              checks.push((won) => {
                const left = rx.tryRecv();
                if (won) expect(left.state).toBe("closed");
                else if (pollableReady || sent) expect(left).toEqual({ state: "value", value: key });
                else expect(left.state).toBe("empty");
              });
              break;
            }
            case "token": {
              const counted = countedToken();
              if (pollableReady) counted.token.cancel(key);
              if (later) batches[b.batch]!.push(() => counted.token.cancel(key));
              branches[key] = counted.token;
              live.push(counted.live);
              checks.push(() => {});
              break;
            }
            case "signal": {
              const controller = new AbortController();
              if (pollableReady) controller.abort(key);
              if (later) batches[b.batch]!.push(() => controller.abort(key));
              branches[key] = controller.signal;
              live.push(() => abortListeners(controller.signal));
              checks.push(() => {});
              break;
            }
            case "promise": {
              branches[key] =
                b.readyAtStart || b.makeReady ? s.schedule(Promise.resolve(key), `resolve ${key}`) : new Promise<string>(() => {});
              checks.push(() => {});
              break;
            }
          }
        });
        batches.forEach((batch, n) => {
          if (batch.length > 0) void s.schedule(Promise.resolve(`batch ${n}`)).then(() => batch.forEach((act) => act()));
        });
        const result = select(branches as Record<string, Cell<string>>, { biased });
        const settled = await s.waitFor(result);
        await s.waitIdle();
        const index = Number(settled.key.slice(1));
        // The winner yields its own key; it was ready (at start, or made ready).
        expect(settled.value).toBe(settled.key);
        expect(specs[index]!.readyAtStart || specs[index]!.makeReady).toBe(true);
        // Pollable branches ready at the call win over everything else.
        const readyAtCall = specs.map((b, i) => (b.readyAtStart && b.kind !== "promise" ? i : -1)).filter((i) => i >= 0);
        if (readyAtCall.length > 0) {
          expect(readyAtCall).toContain(index);
          if (biased) expect(index).toBe(readyAtCall[0]);
        }
        checks.forEach((check, i) => check(i === index));
        for (const count of live) expect(count()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
