/*
 * select(): rules the main suite (select.test.ts) leaves loose — which
 * promise rejections stay handled, how uniform the unbiased choice is, which
 * errors are reported, when a plain value competes, and what a settled select
 * still holds. Randomness is stubbed (Math.random), never sampled; time is
 * microtasks and event-loop turns, never the clock.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { CancellationToken, select, selectable, type SelectBranch, type Selectable } from "../../src/index.js";
import { Cell, deferred, flush, outcome, stateOf } from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Two turns of the event loop: Node reports an unhandled rejection after the microtasks of a turn have run. */
async function turns(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs `body`, then lets Node report unhandled rejections, and returns them.
 * The listener is the test's own and is removed afterwards.
 */
async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const reported: unknown[] = [];
  const listener = (reason: unknown): void => void reported.push(reason);
  process.on("unhandledRejection", listener);
  try {
    await body();
    await turns();
  } finally {
    process.off("unhandledRejection", listener);
  }
  return reported;
}

/** Full collections, with event-loop turns between them for pending microtasks and finalizers. */
async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") throw new Error("tests need --expose-gc");
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
  }
}

/** A Selectable whose branch is built by `make`, for the few tests that need a misbehaving one. */
function custom<T>(make: () => SelectBranch<T>): Selectable<T> {
  return { [selectable]: make };
}

/** A real, pending promise whose `then` getter throws `error` once, then returns the built-in `then`. */
function promiseWithThrowingThenGetter(error: unknown): { promise: Promise<number>; reject: (e: unknown) => void; reads: () => number } {
  const { promise, reject } = deferred<number>();
  let reads = 0;
  Object.defineProperty(promise, "then", {
    get() {
      reads++;
      if (reads === 1) throw error;
      return Promise.prototype.then;
    },
  });
  return { promise, reject, reads: () => reads };
}

// ---------------------------------------------------------------------------
describe("select() keeps the rejections of promise branches it does not report handled", () => {
  it("select() marks a promise branch handled when its signal is already aborted", async () => {
    const reported = await unhandledDuring(async () => {
      const { promise, reject } = deferred<number>();
      await expect(select({ promise }, { signal: AbortSignal.abort("stop") })).rejects.toBe("stop");
      reject(new Error("after the abort"));
    });
    expect(reported).toEqual([]);
  });

  it("select() marks a promise branch handled when a poll throws at the call", async () => {
    const reported = await unhandledDuring(async () => {
      const broken = custom<never>(() => ({
        poll: () => {
          throw new Error("cannot poll");
        },
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: () => () => {},
      }));
      const failing = Promise.reject(new Error("the promise's own failure"));
      await expect(select({ broken, failing })).rejects.toThrow("cannot poll");
    });
    expect(reported).toEqual([]);
  });

  it("select() marks a losing promise handled even when its then getter throws", async () => {
    const reported = await unhandledDuring(async () => {
      const { promise, reject } = promiseWithThrowingThenGetter(new Error("getter"));
      expect(await select({ stop: CancellationToken.alreadyCancelled("stop"), promise })).toEqual({ key: "stop", value: "stop" });
      reject(new Error("late"));
    });
    expect(reported).toEqual([]);
  });

  it("select() ignores a losing promise branch that fulfils or rejects after the select settled", async () => {
    const fulfils = deferred<number>();
    const rejects = deferred<number>();
    const cell = new Cell<string>();
    const reported = await unhandledDuring(async () => {
      const result = select({ cell, fulfils: fulfils.promise, rejects: rejects.promise });
      await flush();
      cell.put("won");
      expect(await result).toEqual({ key: "cell", value: "won" });
      fulfils.resolve(1);
      rejects.reject(new Error("late"));
      await flush();
    });
    expect(reported).toEqual([]);
  });

  it("select() marks a losing function branch's promise handled", async () => {
    const work = deferred<number>();
    const cell = new Cell<string>();
    const reported = await unhandledDuring(async () => {
      const result = select({ cell, work: () => work.promise });
      await flush();
      cell.put("won");
      expect(await result).toEqual({ key: "cell", value: "won" });
      work.reject(new Error("late"));
    });
    expect(reported).toEqual([]);
  });
});

/** A real promise subclass that counts the derived promises made from it (each reaction through the built-in then makes one). */
class Derived<T> extends Promise<T> {
  static made = 0;
  static override get [Symbol.species](): PromiseConstructor {
    return class extends Promise<unknown> {
      constructor(executor: (resolve: (value: unknown) => void, reject: (reason?: unknown) => void) => void) {
        super(executor);
        Derived.made++;
      }
    } as PromiseConstructor;
  }
}

describe("select() attaches to each promise branch at most once, and to nothing else", () => {
  it("select() attaches nothing to a Selectable that is also a promise: its rejection stays its owner's", async () => {
    Derived.made = 0;
    const both = Object.assign(new Derived<number>(() => {}), {
      [selectable]: (): SelectBranch<string> => ({ poll: () => true, commit: () => "selected", subscribe: () => () => {} }),
    });
    expect(await select({ both, pending: new Promise<never>(() => {}) })).toEqual({ key: "both", value: "selected" });
    expect(Derived.made).toBe(0);
  });

  it("select() attaches once to a promise branch it watched when a later Selectable's subscribe throws", async () => {
    Derived.made = 0;
    const promise = new Derived<number>(() => {});
    const broken = custom<never>(() => ({
      poll: () => false,
      commit: () => {
        throw new Error("unreachable");
      },
      subscribe: () => {
        throw new Error("cannot subscribe");
      },
    }));
    await expect(select({ promise, broken })).rejects.toThrow("cannot subscribe");
    expect(Derived.made).toBe(1);
  });
});

// ---------------------------------------------------------------------------
describe("select() chooses uniformly among ready branches", () => {
  /** Math.random returns these values, in order, and fails the test when asked for more. */
  function stubRandom(values: number[]): () => number {
    const queue = [...values];
    const spy = vi.spyOn(Math, "random").mockImplementation(() => {
      if (queue.length === 0) throw new Error("Math.random called more often than expected");
      return queue.shift()!;
    });
    return () => spy.mock.calls.length;
  }

  // Six evenly spaced draws; 2/6 is exactly 1/3 and 3/6 exactly 1/2, the boundaries.
  const grid = [0, 1, 2, 3, 4, 5].map((i) => i / 6);

  it("select() gives each of three branches ready at the call exactly a third of an even grid of random draws", async () => {
    const wins = { a: 0, b: 0, c: 0 };
    for (const second of grid) {
      for (const third of grid) {
        // One draw for the second ready branch, one for the third: none for the first.
        const calls = stubRandom([second, third]);
        const { key } = await select({ a: new Cell(1), b: new Cell(2), c: new Cell(3) });
        expect(calls()).toBe(2);
        wins[key]++;
        vi.restoreAllMocks();
      }
    }
    expect(wins).toEqual({ a: 12, b: 12, c: 12 });
  });

  it("select() keeps the k-th ready branch exactly when the draw is below 1/k", async () => {
    const cases: Array<[second: number, third: number, winner: string]> = [
      [0.49, 0.34, "b"], // 0.49 < 1/2 takes b; 0.34 >= 1/3 keeps it
      [0.5, 0.34, "a"], // 0.5 is not below 1/2
      [0.99, 1 / 3, "a"], // 1/3 is not below 1/3
      [0.99, 0.33, "c"],
      [0, 0, "c"],
    ];
    for (const [second, third, winner] of cases) {
      stubRandom([second, third]);
      expect((await select({ a: new Cell(1), b: new Cell(2), c: new Cell(3) })).key).toBe(winner);
      vi.restoreAllMocks();
    }
  });

  it("select() chooses uniformly among branches that became ready in the same turn, too", async () => {
    const wins = { a: 0, b: 0, c: 0 };
    for (const second of grid) {
      for (const third of grid) {
        const cells = { a: new Cell<number>(), b: new Cell<number>(), c: new Cell<number>() };
        const result = select(cells);
        await flush();
        const calls = stubRandom([second, third]);
        cells.c.put(3);
        cells.a.put(1);
        cells.b.put(2);
        wins[(await result).key]++;
        expect(calls()).toBe(2);
        vi.restoreAllMocks();
      }
    }
    expect(wins).toEqual({ a: 12, b: 12, c: 12 });
  });

  it("select() with biased: true draws no random number", async () => {
    const calls = stubRandom([]);
    expect((await select({ a: new Cell(1), b: new Cell(2) }, { biased: true })).key).toBe("a");
    expect(calls()).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe("select() reports every release that throws", () => {
  it("select() reports each throwing unsubscribe as its own uncaught exception, in release order, and still settles", async () => {
    const first = new Error("first unsubscribe");
    const second = new Error("second unsubscribe");
    const breaking = (error: Error): Selectable<never> =>
      custom<never>(() => ({
        poll: () => false,
        commit: () => {
          throw new Error("unreachable");
        },
        subscribe: () => () => {
          throw error;
        },
      }));
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      const cell = new Cell<number>();
      const result = select({ one: breaking(first), cell, two: breaking(second) });
      await flush();
      cell.put(1);
      expect(await outcome(result)).toEqual({ state: "fulfilled", value: { key: "cell", value: 1 } });
      expect(cell.subscriptions).toBe(0);
      await turns();
      expect(uncaught).toEqual([first, second]);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });
});

// ---------------------------------------------------------------------------
describe("select() with function and promise branches", () => {
  it("select() takes a function branch's plain return value at the first re-poll, before a branch ready only after it", async () => {
    const cell = new Cell<number>();
    // biased: the cell would win if both were ready at the same poll.
    const result = select({ cell, plain: () => "plain" }, { biased: true });
    // Queued after select() returned, so after the re-poll a plain value asks for.
    queueMicrotask(() => cell.put(1));
    expect(await result).toEqual({ key: "plain", value: "plain" });
    expect(cell.isFull).toBe(true);
  });

  it("select() with a promise branch and a function branch resolves with whichever settles first", async () => {
    const first = deferred<string>();
    const work = deferred<string>();
    const result = select({ promise: first.promise, work: () => work.promise });
    expect(await stateOf(result)).toBe("pending");
    first.resolve("promise");
    expect(await result).toEqual({ key: "promise", value: "promise" });
    work.resolve("too late");
  });

  it("select() resolves with a function branch's plain return value even when it is falsy", async () => {
    expect(await select({ zero: () => 0, never: new CancellationToken() })).toEqual({ key: "zero", value: 0 });
  });

  it("select() adopts a thenable's value that is itself a thenable, as await does", async () => {
    // Calls back later, with a promise for the value rather than the value.
    const nested = {
      then(onFulfilled: (value: unknown) => void): void {
        queueMicrotask(() => onFulfilled(Promise.resolve(5)));
      },
    } as unknown as PromiseLike<number>;
    expect(await select({ nested, never: new CancellationToken() })).toEqual({ key: "nested", value: 5 });
  });

  it("select() attaches to a promise branch through its own then, once, before select() returns", async () => {
    let thens = 0;
    class Counting<T> extends Promise<T> {
      override then<A = T, B = never>(
        onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
        onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
      ): Promise<A | B> {
        thens++;
        return super.then(onFulfilled, onRejected);
      }
    }
    let resolve!: (value: number) => void;
    const promise = new Counting<number>((r) => (resolve = r));
    const result = select({ promise, never: new CancellationToken() });
    expect(thens).toBe(1);
    resolve(3);
    expect(await result).toEqual({ key: "promise", value: 3 });
  });

  it("select() keeps the first outcome when a promise's then calls both of its callbacks (fulfilled first)", async () => {
    const promise = new Promise<number>(() => {});
    Object.defineProperty(promise, "then", {
      value: (onFulfilled: (v: number) => void, onRejected: (e: unknown) => void) => {
        onFulfilled(1);
        onRejected(new Error("second"));
        onFulfilled(2);
      },
    });
    expect(await select({ promise, never: new CancellationToken() })).toEqual({ key: "promise", value: 1 });
  });

  it("select() keeps the first outcome when a promise's then calls both of its callbacks (rejected first)", async () => {
    const first = new Error("first");
    const promise = new Promise<number>(() => {});
    Object.defineProperty(promise, "then", {
      value: (onFulfilled: (v: number) => void, onRejected: (e: unknown) => void) => {
        onRejected(first);
        onFulfilled(1);
        onRejected(new Error("second"));
      },
    });
    await expect(select({ promise, never: new CancellationToken() })).rejects.toBe(first);
  });

  it("select() decides a promise branch by its first read of then: a getter that threw is the branch's rejection", async () => {
    const error = new Error("getter");
    const { promise, reads } = promiseWithThrowingThenGetter(error);
    expect(await outcome(select({ promise, never: new CancellationToken() }))).toEqual({ state: "rejected", error });
    expect(reads()).toBe(1);
  });

  it("select() disposes the winning function branch's token: cancelling it later does not reach the children made from it", async () => {
    let token: CancellationToken | undefined;
    let child: CancellationToken | undefined;
    const result = select({
      work: (t: CancellationToken) => {
        token = t;
        child = t.child();
        return Promise.resolve("done");
      },
      never: new CancellationToken(),
    });
    expect(await result).toEqual({ key: "work", value: "done" });
    expect(token!.isCancelled).toBe(false);
    token!.cancel("later");
    expect(child!.isCancelled).toBe(false);
  });

  it("select() cancels a losing function branch's token, naming the winner, even when its signal aborts while the winner commits", async () => {
    const controller = new AbortController();
    let ready = false;
    let wakeIt: (() => void) | undefined;
    const aborting = custom<string>(() => ({
      poll: () => ready,
      commit: () => {
        controller.abort("too late");
        return "won";
      },
      subscribe: (wake) => ((wakeIt = wake), () => {}),
    }));
    let workToken: CancellationToken | undefined;
    const result = select(
      { aborting, work: (t: CancellationToken) => ((workToken = t), new Promise<never>(() => {})) },
      { signal: controller.signal },
    );
    await flush();
    ready = true;
    wakeIt!();
    expect(await result).toEqual({ key: "aborting", value: "won" });
    expect((workToken!.reason as DOMException).message).toBe("The select branch 'work' lost to 'aborting'");
  });
});

// ---------------------------------------------------------------------------
describe("select() after it settled", () => {
  it("select() polls nothing and commits nothing when a Selectable wakes it after it settled", async () => {
    let ready = false;
    let polls = 0;
    let commits = 0;
    let stale: (() => void) | undefined;
    const rude = custom<string>(() => ({
      poll: () => (polls++, ready),
      commit: () => (commits++, "rude"),
      // Keeps `wake` after its unsubscribe: a broken Selectable.
      subscribe: (wake) => ((stale = wake), () => {}),
    }));
    const cell = new Cell<string>();
    const result = select({ cell, rude }, { biased: true });
    await flush();
    cell.put("won");
    expect(await result).toEqual({ key: "cell", value: "won" });
    ready = true;
    const before = polls;
    stale!();
    await flush();
    expect(polls).toBe(before);
    expect(commits).toBe(0);
  });

  it("select() coalesces the wakes of one turn into one re-poll", async () => {
    let polls = 0;
    let wakeIt: (() => void) | undefined;
    const idle = custom<never>(() => ({
      poll: () => (polls++, false),
      commit: () => {
        throw new Error("unreachable");
      },
      subscribe: (wake) => ((wakeIt = wake), () => {}),
    }));
    const stop = new CancellationToken();
    const result = select({ idle, stop });
    await flush();
    expect(polls).toBe(1); // at the call
    wakeIt!();
    wakeIt!();
    wakeIt!();
    await flush();
    expect(polls).toBe(2);
    wakeIt!();
    await flush();
    expect(polls).toBe(3);
    stop.cancel("done");
    expect(await result).toEqual({ key: "stop", value: "done" });
  });

  it("select() commits nothing when a Selectable's subscribe throws after an earlier one woke it", async () => {
    let commits = 0;
    let subscribed = false;
    const eager = custom<string>(() => ({
      // Ready once subscribed: it wakes the select in subscribe.
      poll: () => subscribed,
      commit: () => (commits++, "eager"),
      subscribe: (wake) => {
        subscribed = true;
        wake();
        return () => {};
      },
    }));
    const broken = custom<never>(() => ({
      poll: () => false,
      commit: () => {
        throw new Error("unreachable");
      },
      subscribe: () => {
        throw new Error("cannot subscribe");
      },
    }));
    await expect(select({ eager, broken })).rejects.toThrow("cannot subscribe");
    await flush();
    expect(commits).toBe(0);
  });

  it("select() lets go of the select when a losing promise branch stays pending: its other branches can be collected", async () => {
    const pending = new Promise<never>(() => {});
    let ref: WeakRef<Cell<string>> | undefined;
    await (async () => {
      const cell = new Cell<string>();
      ref = new WeakRef(cell);
      const result = select({ cell, pending });
      await flush();
      cell.put("won");
      expect(await result).toEqual({ key: "cell", value: "won" });
    })();
    await collectGarbage();
    expect(ref!.deref()).toBeUndefined();
    // `pending` is still alive, and with it the reaction select attached.
    expect(await stateOf(pending)).toBe("pending");
  });

  it("select() lets go of a losing function branch's token while the branch's promise stays pending", async () => {
    const pending = new Promise<never>(() => {});
    let ref: WeakRef<CancellationToken> | undefined;
    await (async () => {
      const cell = new Cell<string>();
      const result = select({
        cell,
        work: (token: CancellationToken) => {
          ref = new WeakRef(token);
          return pending;
        },
      });
      await flush();
      cell.put("won");
      expect(await result).toEqual({ key: "cell", value: "won" });
    })();
    await collectGarbage();
    expect(ref!.deref()).toBeUndefined();
    expect(await stateOf(pending)).toBe("pending");
  });
});

// ---------------------------------------------------------------------------
describe("select() misuse messages and the selectable symbol", () => {
  it("select() names every key in the message when every branch is disabled", () => {
    expect(() => select({ a: false, b: null })).toThrow(
      "Cannot call select(): every branch is disabled, so it could never settle (received an object with keys [a, b])",
    );
  });

  it("selectable is Symbol.for('cancelkit.selectable'), so a Selectable written without importing cancelkit works", async () => {
    expect(selectable).toBe(Symbol.for("cancelkit.selectable"));
    const foreign = { [Symbol.for("cancelkit.selectable")]: () => ({ poll: () => true, commit: () => "foreign", subscribe: () => () => {} }) };
    expect(await select({ foreign: foreign as unknown as Selectable<string> })).toEqual({ key: "foreign", value: "foreign" });
  });

  it("select() never takes a primitive for a Selectable, even when its prototype offers [selectable]", () => {
    Object.defineProperty(Number.prototype, selectable, {
      value: (): SelectBranch<string> => ({ poll: () => true, commit: () => "number", subscribe: () => () => {} }),
      configurable: true,
    });
    try {
      expect(() => select({ n: 42 as never })).toThrow(/'branches\.n' must be a CancellationToken, .* received number 42/);
    } finally {
      delete (Number.prototype as unknown as Record<symbol, unknown>)[selectable];
    }
  });

  it("select() races a function that implements Selectable as a Selectable, without calling it", async () => {
    const called = vi.fn();
    const both = Object.assign((_token: CancellationToken) => (called(), Promise.resolve("called")), {
      [selectable]: (): SelectBranch<string> => ({ poll: () => true, commit: () => "selected", subscribe: () => () => {} }),
    });
    expect(await select({ both })).toEqual({ key: "both", value: "selected" });
    expect(called).not.toHaveBeenCalled();
  });
});
