import { getEventListeners } from "node:events";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CancellationToken, TaskTracker } from "../../src/cancel/index.js";
import { collectGarbage, deferred, flush, stateOf } from "./helpers.js";

/*
 * Port of tokio-util/tests/task_tracker.rs (tokio-rs/tokio @ ea91b33), one
 * `it` per upstream test. tokio's `TaskTrackerToken` (a raw +1 on the count,
 * -1 on drop) has no public JS equivalent: `track(promise)` of a deferred
 * promise is one, and "dropping" it is settling the promise. The tracker
 * counts a task as exited when it observes the settlement (one microtask
 * later), so each drop is followed by a flush.
 */
function token(tracker: TaskTracker): { drop: () => Promise<void> } {
  const d = deferred<void>();
  void tracker.track(d.promise);
  return {
    drop: async () => {
      d.resolve();
      await flush();
    },
  };
}

describe("tokio-util task_tracker.rs", () => {
  it("open_close", () => {
    const tracker = new TaskTracker();
    expect(tracker.isClosed).toBe(false);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.size).toBe(0);

    expect(tracker.close()).toBe(true);
    expect(tracker.isClosed).toBe(true);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.size).toBe(0);

    expect(tracker.reopen()).toBe(true);
    expect(tracker.isClosed).toBe(false);
    expect(tracker.reopen()).toBe(false);
    expect(tracker.isClosed).toBe(false);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.size).toBe(0);

    expect(tracker.close()).toBe(true);
    expect(tracker.isClosed).toBe(true);
    expect(tracker.close()).toBe(false);
    expect(tracker.isClosed).toBe(true);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.size).toBe(0);
  });

  it("token_len", async () => {
    const tracker = new TaskTracker();
    const tokens: Array<{ drop: () => Promise<void> }> = [];
    for (let i = 0; i < 10; i++) {
      expect(tracker.size).toBe(i);
      tokens.push(token(tracker));
    }
    expect(tracker.isEmpty).toBe(false);
    expect(tracker.size).toBe(10);
    for (let i = 0; i < 10; i++) {
      await tokens[i]!.drop();
      expect(tracker.size).toBe(9 - i);
    }
  });

  it("notify_immediately", async () => {
    const tracker = new TaskTracker();
    tracker.close();
    expect(await stateOf(tracker.wait())).toBe("fulfilled");
  });

  it("notify_immediately_on_reopen", async () => {
    const tracker = new TaskTracker();
    tracker.close();
    const wait = tracker.wait();
    tracker.reopen();
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("notify_on_close", async () => {
    const tracker = new TaskTracker();
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    tracker.close();
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("notify_on_close_reopen", async () => {
    const tracker = new TaskTracker();
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    tracker.close();
    tracker.reopen();
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("notify_on_last_task", async () => {
    const tracker = new TaskTracker();
    tracker.close();
    const t = token(tracker);
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    await t.drop();
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("notify_on_last_task_respawn", async () => {
    const tracker = new TaskTracker();
    tracker.close();
    const t = token(tracker);
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    await t.drop();
    const t2 = token(tracker);
    expect(tracker.size).toBe(1);
    expect(await stateOf(wait)).toBe("fulfilled");
    await t2.drop();
  });

  it("no_notify_on_respawn_if_open", async () => {
    const tracker = new TaskTracker();
    const t = token(tracker);
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    await t.drop();
    const t2 = token(tracker);
    expect(await stateOf(wait)).toBe("pending");
    await t2.drop();
    expect(await stateOf(wait)).toBe("pending");
  });

  it("close_during_exit", async () => {
    const ITERS = 5;
    for (let closeSpot = 0; closeSpot <= ITERS; closeSpot++) {
      const tracker = new TaskTracker();
      const tokens = Array.from({ length: ITERS }, () => token(tracker));
      const wait = tracker.wait();
      for (let i = 0; i < ITERS; i++) {
        expect(await stateOf(wait)).toBe("pending");
        if (i === closeSpot) {
          tracker.close();
          expect(await stateOf(wait)).toBe("pending");
        }
        await tokens[i]!.drop();
      }
      if (closeSpot === ITERS) {
        expect(await stateOf(wait)).toBe("pending");
        tracker.close();
      }
      expect(await stateOf(wait)).toBe("fulfilled");
    }
  });

  it("notify_many", async () => {
    const tracker = new TaskTracker();
    const waits = Array.from({ length: 10 }, () => tracker.wait());
    for (const wait of waits) expect(await stateOf(wait)).toBe("pending");
    tracker.close();
    for (const wait of waits) expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("spawn::spawn_then_close", async () => {
    const N = 8;
    const tracker = new TaskTracker();
    const done: number[] = [];
    // tokio spawns on the current runtime and on an explicit handle; JS has one event loop.
    for (let i = 0; i < N; i++) void tracker.spawn(async () => void done.push(i));
    for (let i = 0; i < N; i++) void tracker.spawn(() => new Promise<void>((resolve) => setImmediate(() => resolve(void done.push(N + i)))));
    tracker.close();
    await tracker.wait();
    expect(done).toHaveLength(2 * N);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.isClosed).toBe(true);
  });

  it("spawn_local::panic_outside_any_runtime", () => {
    // No JS equivalent: there is no LocalSet and no runtime to be outside of.
    // The nearest property: spawn() works anywhere and calls the task at once.
    const tracker = new TaskTracker();
    let called = false;
    void tracker.spawn(() => void (called = true));
    expect(called).toBe(true);
  });

  it("spawn_local::panic_in_multi_thread_runtime", async () => {
    // No JS equivalent (one thread). spawn() from inside another task works.
    const tracker = new TaskTracker();
    const inner = await tracker.spawn(async () => tracker.spawn(async () => 7));
    expect(inner).toBe(7);
    tracker.close();
    await tracker.wait();
    expect(tracker.isEmpty).toBe(true);
  });

  it("spawn_local::spawn_then_close", async () => {
    const N = 8;
    const tracker = new TaskTracker();
    const resources = Array.from({ length: N }, () => ({ released: false }));
    for (const rc of resources) {
      void tracker.spawn(async () => {
        await Promise.resolve();
        rc.released = true;
      });
    }
    tracker.close();
    await tracker.wait();
    expect(resources.every((rc) => rc.released)).toBe(true);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.isClosed).toBe(true);
  });

  it("spawn_local::spawn_after_close", async () => {
    const N = 8;
    const tracker = new TaskTracker();
    tracker.close();
    const gates = Array.from({ length: N }, () => deferred<void>());
    for (const gate of gates) void tracker.spawn(() => gate.promise);
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    for (const gate of gates) gate.resolve();
    expect(await stateOf(wait)).toBe("fulfilled");
    expect(tracker.isClosed).toBe(true);
    expect(tracker.isEmpty).toBe(true);
  });

  it("spawn_local_on::local_runtime::spawn_then_close", async () => {
    const N = 8;
    const tracker = new TaskTracker();
    let finished = 0;
    for (let i = 0; i < N; i++) void tracker.spawn(async () => void finished++);
    tracker.close();
    await tracker.wait();
    expect(finished).toBe(N);
    expect(tracker.isEmpty).toBe(true);
    expect(tracker.isClosed).toBe(true);
  });

  it("spawn_local_on::local_set::spawn_then_drop", async () => {
    // Dropping the tracker does not abort its tasks. JS has no drop: the
    // tracker just becomes unreachable, and its tasks keep running.
    const N = 8;
    let tracker: TaskTracker | null = new TaskTracker();
    const gates = Array.from({ length: N }, () => deferred<string>());
    const results = gates.map((gate) => tracker!.spawn(() => gate.promise));
    tracker = null;
    await flush();
    for (const r of results) expect(await stateOf(r)).toBe("pending");
    gates.forEach((gate, i) => gate.resolve(`done ${i}`));
    await expect(Promise.all(results)).resolves.toEqual(gates.map((_, i) => `done ${i}`));
  });

  it("spawn_local_on::local_set::close_then_spawn", async () => {
    const N = 8;
    const tracker = new TaskTracker();
    tracker.close();
    for (let i = 0; i < N; i++) void tracker.spawn(async () => {});
    expect(tracker.size).toBe(N);
    await tracker.wait();
    expect(tracker.isClosed).toBe(true);
    expect(tracker.isEmpty).toBe(true);
  });
});

describe("TaskTracker", () => {
  it("spawn() resolves with the task's value and track() settles like the promise, after the count dropped", async () => {
    const tracker = new TaskTracker();
    const value = tracker.spawn(async () => 42);
    const error = new Error("task failed");
    const failed = tracker.track(Promise.reject(error));
    expect(tracker.size).toBe(2);
    await expect(value).resolves.toBe(42);
    await expect(failed).rejects.toBe(error);
    expect(tracker.size).toBe(0);
  });

  it("spawn() turns a synchronous throw into a rejection and un-counts the task before returning", async () => {
    const tracker = new TaskTracker();
    const error = new Error("sync");
    const p = tracker.spawn(() => {
      throw error;
    });
    expect(tracker.size).toBe(0);
    await expect(p).rejects.toBe(error);
    tracker.close();
    expect(await stateOf(tracker.wait())).toBe("fulfilled");
  });

  it("spawn() of a task returning a plain value counts it until the next microtask", async () => {
    const tracker = new TaskTracker();
    const p = tracker.spawn(() => "sync value");
    expect(tracker.size).toBe(1);
    await expect(p).resolves.toBe("sync value");
    expect(tracker.size).toBe(0);
  });

  it("wait() resolves when a rejected task was the last one", async () => {
    const tracker = new TaskTracker();
    const d = deferred<void>();
    tracker.track(d.promise).catch(() => {});
    tracker.close();
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    d.reject(new Error("x"));
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  describe("wait({ signal })", () => {
    it("wait() with an already-aborted signal rejects with its reason and registers nothing", async () => {
      const tracker = new TaskTracker();
      const reason = new Error("already");
      await expect(tracker.wait({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      await expect(tracker.wait({ signal: CancellationToken.alreadyCancelled("tok") })).rejects.toBe("tok");
      // Even when the tracker is closed and empty: the abort is checked first.
      tracker.close();
      await expect(tracker.wait({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    });

    it("wait() aborted while waiting rejects with the reason unchanged and leaves no listener", async () => {
      const tracker = new TaskTracker();
      const controller = new AbortController();
      const wait = tracker.wait({ signal: controller.signal });
      expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
      expect(await stateOf(wait)).toBe("pending");
      const reason = { why: "shutdown" };
      controller.abort(reason);
      await expect(wait).rejects.toBe(reason);
      expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
      // The tracker is unaffected and other waiters still work.
      const other = tracker.wait();
      tracker.close();
      expect(await stateOf(other)).toBe("fulfilled");
    });

    it("wait() with a token aborted while waiting rejects with the token's reason", async () => {
      const tracker = new TaskTracker();
      const token = new CancellationToken();
      const wait = tracker.wait({ signal: token });
      expect(await stateOf(wait)).toBe("pending");
      token.cancel("stop waiting");
      await expect(wait).rejects.toBe("stop waiting");
    });

    it("wait() aborted after it resolved stays resolved and leaves no listener", async () => {
      const tracker = new TaskTracker();
      const controller = new AbortController();
      const token = new CancellationToken();
      const a = tracker.wait({ signal: controller.signal });
      const b = tracker.wait({ signal: token });
      tracker.close();
      expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
      controller.abort("late");
      token.cancel("late");
      expect(await stateOf(a)).toBe("fulfilled");
      expect(await stateOf(b)).toBe("fulfilled");
    });

    it("wait() aborted while waiting lets go of its waiter: the tracker holds no aborted wait", async () => {
      const tracker = new TaskTracker();
      // Built in a helper so that no local of this test keeps a wait alive.
      const abortWaits = (signals: Array<AbortSignal | CancellationToken>, abort: () => void): Array<WeakRef<Promise<void>>> => {
        const refs = signals.map((signal) => {
          const wait = tracker.wait({ signal });
          wait.catch(() => {});
          return new WeakRef(wait);
        });
        abort();
        return refs;
      };
      const controller = new AbortController();
      const token = new CancellationToken();
      const refs = abortWaits([controller.signal, controller.signal, token, token.child()], () => {
        controller.abort("gone");
        token.cancel("gone");
      });
      await collectGarbage();
      expect(refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
      // The tracker (alive here) still releases a wait started afterwards.
      const wait = tracker.wait();
      tracker.close();
      expect(await stateOf(wait)).toBe("fulfilled");
    });

    it("wait() resolving at once with a live signal adds no listener", async () => {
      const tracker = new TaskTracker();
      tracker.close();
      const controller = new AbortController();
      const wait = tracker.wait({ signal: controller.signal });
      expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
      expect(await stateOf(wait)).toBe("fulfilled");
    });
  });

  describe("bad input", () => {
    it("spawn(), track() and wait() reject bad arguments with a TypeError naming the call and value, and change nothing", () => {
      const tracker = new TaskTracker();
      expect(() => tracker.spawn(5 as never)).toThrow("Cannot call tracker.spawn(): 'task' must be a function, received number 5");
      expect(() => tracker.track(5 as never)).toThrow("Cannot call tracker.track(): 'promise' must be a promise, received number 5");
      expect(() => tracker.track(null as never)).toThrow(TypeError);
      // A thenable is an object with a callable `then`, as promise resolution sees it.
      expect(() => tracker.track({ then: 1 } as never)).toThrow("Cannot call tracker.track(): 'promise' must be a promise, received an object");
      expect(() => tracker.track({} as never)).toThrow("Cannot call tracker.track(): 'promise' must be a promise, received an object");
      expect(() => tracker.wait(5 as never)).toThrow("Cannot call tracker.wait(): 'options' must be an object or undefined, received number 5");
      expect(() => tracker.wait({ signal: "x" as never })).toThrow(
        "Cannot call tracker.wait(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received string \"x\"",
      );
      expect(tracker.size).toBe(0);
      expect(tracker.isClosed).toBe(false);
    });
  });
});

describe("TaskTracker.spawn() counts the task before it runs", () => {
  it("spawn() counts the task before calling it: size is 1 inside its synchronous part", async () => {
    const tracker = new TaskTracker();
    let inside = -1;
    const done = tracker.spawn(() => {
      inside = tracker.size;
    });
    expect(inside).toBe(1);
    await done;
    expect(tracker.size).toBe(0);
  });

  it("wait() stays pending while a task that closed the tracker from inside still runs", async () => {
    const tracker = new TaskTracker();
    const work = deferred<void>();
    const wait = tracker.wait();
    const task = tracker.spawn(async () => {
      tracker.close();
      await work.promise;
    });
    expect(await stateOf(wait)).toBe("pending");
    expect(tracker.size).toBe(1);
    work.resolve();
    await task;
    expect(await stateOf(wait)).toBe("fulfilled");
  });

  it("spawn() un-counts a task exactly once however it ends: a value, a synchronous throw, a fulfilment, a rejection, a throwing then", async () => {
    const tracker = new TaskTracker();
    const hostile = Promise.resolve(1);
    const thenError = new Error("then");
    Object.defineProperty(hostile, "then", {
      value: () => {
        throw thenError;
      },
    });
    const outcomes = [
      tracker.spawn(() => 1),
      tracker.spawn(() => {
        throw new Error("sync");
      }),
      tracker.spawn(async () => 2),
      tracker.spawn(async () => {
        throw new Error("async");
      }),
      tracker.spawn(() => hostile),
    ].map((promise) => promise.then(() => "fulfilled", (error: unknown) => (error === thenError ? "then threw" : "rejected")));
    tracker.close();
    const wait = tracker.wait();
    expect(await Promise.all(outcomes)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "then threw"]);
    expect(tracker.size).toBe(0);
    expect(await stateOf(wait)).toBe("fulfilled");
    // Exactly once: a new task counts from 0 again, and the tracker is not "below empty".
    tracker.reopen();
    const pending = deferred<void>();
    void tracker.track(pending.promise);
    expect(tracker.size).toBe(1);
    pending.resolve();
    await flush();
    expect(tracker.size).toBe(0);
  });

  it("track() of a promise whose then throws un-counts it and rejects with that error", async () => {
    const tracker = new TaskTracker();
    const hostile = Promise.resolve(1);
    const thenError = new Error("then");
    Object.defineProperty(hostile, "then", {
      value: () => {
        throw thenError;
      },
    });
    let result: Promise<number> | undefined;
    expect(() => (result = tracker.track(hostile))).not.toThrow();
    await expect(result).rejects.toBe(thenError);
    expect(tracker.size).toBe(0);
  });

  it("track() un-counts a promise exactly once when its then calls back and then throws", async () => {
    const tracker = new TaskTracker();
    const other = deferred<void>();
    void tracker.track(other.promise);
    const hostile = Promise.resolve(1);
    const thenError = new Error("then");
    Object.defineProperty(hostile, "then", {
      value: (onFulfilled: (value: number) => unknown) => {
        onFulfilled(1);
        throw thenError;
      },
    });
    await expect(tracker.track(hostile)).rejects.toBe(thenError);
    // Only the hostile promise was un-counted: the other task still counts.
    expect(tracker.size).toBe(1);
    tracker.close();
    const wait = tracker.wait();
    expect(await stateOf(wait)).toBe("pending");
    other.resolve();
    expect(await stateOf(wait)).toBe("fulfilled");
    expect(tracker.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// A fast-check model of the tracker: counts, closed flag and every wait()
// checked against a tiny reference after each operation. A task may close
// the tracker from inside its synchronous part.

interface TrackerModel {
  closed: boolean;
  running: number;
  /** Indices (into real.waits) of waits that must still be pending. */
  pending: number[];
}

interface TrackerReal {
  tracker: TaskTracker;
  /** Settles one running task (in spawn order). */
  tasks: Array<(fail: boolean) => void>;
  waits: Array<{ state: () => "pending" | "fulfilled" | "rejected"; expected: "pending" | "fulfilled" }>;
}

type TrackerCommand = fc.AsyncCommand<TrackerModel, TrackerReal, false>;

/** The model's side of "closed and empty now": every pending wait resolves at this moment. */
function releaseIfDone(m: TrackerModel, r: TrackerReal): void {
  if (!m.closed || m.running !== 0) return;
  for (const i of m.pending) r.waits[i]!.expected = "fulfilled";
  m.pending = [];
}

async function checkTracker(m: TrackerModel, r: TrackerReal): Promise<void> {
  await flush();
  expect(r.tracker.size).toBe(m.running);
  expect(r.tracker.isEmpty).toBe(m.running === 0);
  expect(r.tracker.isClosed).toBe(m.closed);
  for (const wait of r.waits) expect(wait.state()).toBe(wait.expected);
}

function spawnCommand(closesInside: boolean): TrackerCommand {
  return {
    check: () => true,
    async run(m, r) {
      const work = deferred<void>();
      let sizeInside = -1;
      let closedByTask: boolean | undefined;
      void r.tracker
        .spawn(() => {
          sizeInside = r.tracker.size;
          if (closesInside) closedByTask = r.tracker.close();
          return work.promise;
        })
        .catch(() => {});
      r.tasks.push((fail) => (fail ? work.reject(new Error("task failed")) : work.resolve()));
      m.running++;
      expect(sizeInside).toBe(m.running);
      if (closesInside) {
        expect(closedByTask).toBe(!m.closed);
        m.closed = true;
        releaseIfDone(m, r);
      }
      await checkTracker(m, r);
    },
    toString: () => (closesInside ? "spawn-that-closes" : "spawn"),
  };
}

function settleCommand(k: number, fail: boolean): TrackerCommand {
  return {
    check: (m) => m.running > 0,
    async run(m, r) {
      const settle = r.tasks.splice(k % r.tasks.length, 1)[0]!;
      settle(fail);
      await flush();
      m.running--;
      releaseIfDone(m, r);
      await checkTracker(m, r);
    },
    toString: () => `${fail ? "reject" : "resolve"}(task ${k})`,
  };
}

const waitCommand: TrackerCommand = {
  check: () => true,
  async run(m, r) {
    let state: "pending" | "fulfilled" | "rejected" = "pending";
    r.tracker.wait().then(
      () => (state = "fulfilled"),
      () => (state = "rejected"),
    );
    const index = r.waits.push({ state: () => state, expected: "pending" }) - 1;
    m.pending.push(index);
    releaseIfDone(m, r);
    await checkTracker(m, r);
  },
  toString: () => "wait",
};

const trackerCommands: Array<fc.Arbitrary<TrackerCommand>> = [
  fc.constant(spawnCommand(false)),
  fc.constant(spawnCommand(true)),
  fc.tuple(fc.nat(5), fc.boolean()).map(([k, fail]) => settleCommand(k, fail)),
  fc.constant<TrackerCommand>({
    check: () => true,
    async run(m, r) {
      expect(r.tracker.close()).toBe(!m.closed);
      m.closed = true;
      releaseIfDone(m, r);
      await checkTracker(m, r);
    },
    toString: () => "close",
  }),
  fc.constant<TrackerCommand>({
    check: () => true,
    async run(m, r) {
      expect(r.tracker.reopen()).toBe(m.closed);
      m.closed = false;
      await checkTracker(m, r);
    },
    toString: () => "reopen",
  }),
  fc.constant(waitCommand),
];

function trackerSetup(): { model: TrackerModel; real: TrackerReal } {
  return {
    model: { closed: false, running: 0, pending: [] },
    real: { tracker: new TaskTracker(), tasks: [], waits: [] },
  };
}

describe("TaskTracker model", () => {
  it("spawn / spawn-that-closes / settle / close / reopen / wait agree with the reference model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(trackerCommands, { maxCommands: 30 }), async (commands) => {
        await fc.asyncModelRun(trackerSetup, commands);
      }),
      { numRuns: 200 },
    );
  });

  it("the shrunk counterexample wait, spawn-that-closes, spawn agrees with the model", async () => {
    await fc.asyncModelRun(trackerSetup, [waitCommand, spawnCommand(true), spawnCommand(false)]);
  });
});
