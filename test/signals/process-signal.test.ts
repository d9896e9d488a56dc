import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CancellationToken, select } from "../../src/index.js";
import { ProcessSignal, processSignal } from "../../src/signals/index.js";
import { buildPackage, removeBuilds, Cell, flush, killChildren, outcome, startFixture, stateOf } from "./helpers.js";

// SIGWINCH is ignored by default, so a real one sent to this worker is
// harmless even if no listener is installed. The others are only emitted
// in-process (process.emit runs the listeners without the OS).
const NAMES = ["SIGWINCH", "SIGUSR2", "SIGHUP", "SIGINT", "SIGTERM"] as const;
let baseline: number[] = [];

beforeEach(() => {
  baseline = NAMES.map((name) => process.listenerCount(name));
  // process.emit() would also run listeners that are not ours.
  expect(baseline, "signal listeners installed by the test runner").toEqual(NAMES.map(() => 0));
});

afterEach(async () => {
  await killChildren();
  expect(NAMES.map((name) => process.listenerCount(name))).toEqual(baseline);
});

const listeners = (name: (typeof NAMES)[number]): number => process.listenerCount(name) - baseline[NAMES.indexOf(name)]!;

/** Delivers a real SIGWINCH to this process and waits until it was dispatched. */
async function realSigwinch(): Promise<void> {
  process.kill(process.pid, "SIGWINCH");
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("processSignal() listening", () => {
  it("processSignal() installs no listener until someone waits", () => {
    const source = processSignal("SIGUSR2");
    expect(source).toBeInstanceOf(ProcessSignal);
    expect(source.isListening).toBe(false);
    expect(listeners("SIGUSR2")).toBe(0);
  });

  it("processSignal() listens while a select waits and stops when it settles", async () => {
    const source = processSignal("SIGUSR2");
    const token = new CancellationToken();
    const result = select({ source, token });
    await flush();
    expect(listeners("SIGUSR2")).toBe(1);
    expect(source.isListening).toBe(true);
    token.cancel("other branch");
    await result;
    expect(listeners("SIGUSR2")).toBe(0);
    expect(source.isListening).toBe(false);
  });

  it("processSignal() wins a select with the signal name and removes its listener", async () => {
    const source = processSignal(["SIGUSR2", "SIGHUP"]);
    const result = select({ source, never: new CancellationToken() });
    await flush();
    expect(listeners("SIGUSR2")).toBe(1);
    expect(listeners("SIGHUP")).toBe(1);
    process.emit("SIGHUP", "SIGHUP");
    expect(await result).toEqual({ key: "source", value: "SIGHUP" });
    expect(listeners("SIGUSR2")).toBe(0);
    expect(listeners("SIGHUP")).toBe(0);
  });

  it("processSignal() receives a real OS signal", async () => {
    const source = processSignal("SIGWINCH");
    const result = source.recv();
    expect(listeners("SIGWINCH")).toBe(1);
    await realSigwinch();
    expect(await result).toBe("SIGWINCH");
    expect(listeners("SIGWINCH")).toBe(0);
  });

  it("processSignal() shares one listener among concurrent waits on one source, which compete for arrivals", async () => {
    const source = processSignal("SIGUSR2");
    const a = select({ source, never: new CancellationToken() });
    const b = source.recv();
    await flush();
    expect(listeners("SIGUSR2")).toBe(1);
    // The two waits compete for arrivals: recv() takes this one during the
    // emit, so the select's re-poll finds nothing and keeps waiting.
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await b).toBe("SIGUSR2");
    expect(await stateOf(a)).toBe("pending");
    expect(listeners("SIGUSR2")).toBe(1);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await a).toEqual({ key: "source", value: "SIGUSR2" });
    expect(listeners("SIGUSR2")).toBe(0);
  });
});

describe("processSignal() queueing and cancel-safety", () => {
  it("processSignal() coalesces a burst of one signal into one arrival", async () => {
    const source = processSignal("SIGUSR2");
    const result = select({ source, never: new CancellationToken() });
    await flush();
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await result).toEqual({ key: "source", value: "SIGUSR2" });
    expect(source.tryRecv()).toEqual({ state: "empty" });
  });

  it("processSignal() keeps an arrival for the next wait when its select loses", async () => {
    const source = processSignal("SIGUSR2");
    const cell = new Cell<string>();
    const result = select({ cell, source }, { biased: true });
    await flush();
    process.emit("SIGUSR2", "SIGUSR2");
    cell.put("won");
    expect(await result).toEqual({ key: "cell", value: "won" });
    expect(listeners("SIGUSR2")).toBe(0);
    // The arrival was not consumed: the next wait takes it at once.
    expect(await outcome(source.recv())).toEqual({ state: "fulfilled", value: "SIGUSR2" });
    expect(source.tryRecv()).toEqual({ state: "empty" });
  });

  it("processSignal() queues different signals in arrival order", async () => {
    const source = processSignal(["SIGUSR2", "SIGHUP"]);
    const first = source.recv();
    const second = source.recv();
    process.emit("SIGHUP", "SIGHUP");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await first).toBe("SIGHUP");
    expect(await second).toBe("SIGUSR2");
  });

  it("processSignal() independent sources each see every arrival", async () => {
    const a = processSignal("SIGUSR2");
    const b = processSignal("SIGUSR2");
    const ra = a.recv();
    const rb = b.recv();
    expect(listeners("SIGUSR2")).toBe(2);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await ra).toBe("SIGUSR2");
    expect(await rb).toBe("SIGUSR2");
  });
});

describe("processSignal().recv() cancellation", () => {
  it("recv() rejects with the reason when the signal is already aborted, without listening", async () => {
    const source = processSignal("SIGUSR2");
    const reason = new Error("stop");
    await expect(source.recv({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(listeners("SIGUSR2")).toBe(0);
  });

  it("recv() rejects with the reason when aborted while waiting, and stops listening", async () => {
    const source = processSignal("SIGUSR2");
    const token = new CancellationToken();
    const result = source.recv({ signal: token });
    expect(listeners("SIGUSR2")).toBe(1);
    token.cancel("cancelled");
    await expect(result).rejects.toBe("cancelled");
    expect(listeners("SIGUSR2")).toBe(0);
  });

  it("recv() keeps its value when the signal aborts after the arrival", async () => {
    const source = processSignal("SIGUSR2");
    const controller = new AbortController();
    const result = source.recv({ signal: controller.signal });
    process.emit("SIGUSR2", "SIGUSR2");
    controller.abort("late");
    expect(await result).toBe("SIGUSR2");
  });

  it("recv() validates its options", () => {
    const source = processSignal("SIGUSR2");
    expect(() => source.recv({ signal: 1 as never })).toThrow(
      new TypeError("Cannot call processSignal.recv(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 1"),
    );
    expect(() => source.recv(null as never)).toThrow(new TypeError("Cannot call processSignal.recv(): 'options' must be an object or undefined, received null"));
    expect(() => source.recv({ sigal: undefined } as never)).toThrow(new TypeError("Cannot call processSignal.recv(): unknown option 'sigal' (did you mean 'signal'?)"));
    expect(listeners("SIGUSR2")).toBe(0);
  });

  it("recv() takes an arrival already queued at once, without listening", async () => {
    const source = processSignal("SIGUSR2");
    const first = source.recv();
    const second = source.recv();
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await first).toBe("SIGUSR2");
    // The second wait saw the arrival taken from under it and keeps waiting.
    expect(await stateOf(second)).toBe("pending");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await second).toBe("SIGUSR2");
    // Queue one while a select holds the source, then take it with recv().
    const token = new CancellationToken();
    const held = select({ token, source }, { biased: true });
    await flush();
    token.cancel("stop");
    process.emit("SIGUSR2", "SIGUSR2");
    await held;
    const queued = source.recv();
    expect(listeners("SIGUSR2")).toBe(0);
    expect(await queued).toBe("SIGUSR2");
  });
});

describe("processSignal() names", () => {
  it("processSignal() keeps each name once, in the order given", () => {
    expect(processSignal("SIGHUP").names).toEqual(["SIGHUP"]);
    const source = processSignal(["SIGUSR2", "SIGHUP", "SIGUSR2"]);
    expect(source.names).toEqual(["SIGUSR2", "SIGHUP"]);
    const result = source.recv();
    expect(listeners("SIGUSR2")).toBe(1);
    process.emit("SIGUSR2", "SIGUSR2");
    return expect(result).resolves.toBe("SIGUSR2");
  });

  it("tryRecv() takes what is queued, oldest first, and then reports empty", async () => {
    const source = processSignal(["SIGUSR2", "SIGHUP"]);
    expect(source.tryRecv()).toEqual({ state: "empty" });
    const iterator = source[Symbol.asyncIterator]();
    const first = iterator.next();
    process.emit("SIGHUP", "SIGHUP");
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGHUP", "SIGHUP");
    expect(await first).toEqual({ value: "SIGHUP", done: false });
    expect(source.tryRecv()).toEqual({ state: "received", signal: "SIGUSR2" });
    expect(source.tryRecv()).toEqual({ state: "received", signal: "SIGHUP" });
    expect(source.tryRecv()).toEqual({ state: "empty" });
    await iterator.return!();
  });
});

describe("processSignal() async iteration", () => {
  it("processSignal() iterator return() releases its hold once, however often it is called", async () => {
    const source = processSignal("SIGUSR2");
    // Ended before it started: nothing to release.
    expect(await source[Symbol.asyncIterator]().return!()).toEqual({ value: undefined, done: true });
    const waiting = source.recv();
    const iterator = source[Symbol.asyncIterator]();
    void iterator.next();
    expect(await iterator.return!()).toEqual({ value: undefined, done: true });
    expect(await iterator.return!()).toEqual({ value: undefined, done: true });
    // recv() still holds the source.
    expect(source.isListening).toBe(true);
    expect(listeners("SIGUSR2")).toBe(1);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await waiting).toBe("SIGUSR2");
    expect(listeners("SIGUSR2")).toBe(0);
  });

  it("processSignal() iterator delivers queued arrivals to waiting next() calls in order", async () => {
    const source = processSignal(["SIGUSR2", "SIGHUP"]);
    const iterator = source[Symbol.asyncIterator]();
    const first = iterator.next();
    const second = iterator.next();
    const third = iterator.next();
    process.emit("SIGHUP", "SIGHUP");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await first).toEqual({ value: "SIGHUP", done: false });
    expect(await second).toEqual({ value: "SIGUSR2", done: false });
    expect(await stateOf(third)).toBe("pending");
    await iterator.return!();
    expect(await third).toEqual({ value: undefined, done: true });
  });

  it("processSignal() iterates arrivals and listens from the first next() until the loop ends", async () => {
    const source = processSignal("SIGUSR2");
    const iterator = source[Symbol.asyncIterator]();
    expect(listeners("SIGUSR2")).toBe(0);
    const first = iterator.next();
    expect(listeners("SIGUSR2")).toBe(1);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await first).toEqual({ value: "SIGUSR2", done: false });
    // Between iterations (the loop body running) it keeps listening: an arrival is queued.
    expect(listeners("SIGUSR2")).toBe(1);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await outcome(iterator.next())).toEqual({ state: "fulfilled", value: { value: "SIGUSR2", done: false } });
    const pending = iterator.next();
    await iterator.return!();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(listeners("SIGUSR2")).toBe(0);
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  });

  it("processSignal() for await stops listening on break", async () => {
    const source = processSignal(["SIGUSR2", "SIGHUP"]);
    const seen: string[] = [];
    const loop = (async () => {
      for await (const name of source) {
        seen.push(name);
        if (name === "SIGHUP") break;
      }
    })();
    await flush();
    process.emit("SIGUSR2", "SIGUSR2");
    await flush();
    process.emit("SIGHUP", "SIGHUP");
    await loop;
    expect(seen).toEqual(["SIGUSR2", "SIGHUP"]);
    expect(listeners("SIGUSR2")).toBe(0);
    expect(listeners("SIGHUP")).toBe(0);
  });
});

describe("processSignal() misuse", () => {
  it.each<[unknown, ErrorConstructor, string]>([
    [42, TypeError, "Cannot create processSignal(): 'signals' must be a signal name or an array of signal names, received number 42"],
    [[], TypeError, "Cannot create processSignal(): 'signals' must name at least one signal, received array of length 0"],
    ["SIGKILL", RangeError, `Cannot create processSignal(): 'signals' must be a signal that can be caught (not SIGKILL or SIGSTOP), received string "SIGKILL"`],
    ["SIGSTOP", RangeError, `Cannot create processSignal(): 'signals' must be a signal that can be caught (not SIGKILL or SIGSTOP), received string "SIGSTOP"`],
    ...(["SIGBUS", "SIGFPE", "SIGILL", "SIGSEGV"] as const).map(
      (name): [unknown, ErrorConstructor, string] => [name, RangeError, `Cannot create processSignal(): 'signals' must be a signal JavaScript can handle (not SIGBUS, SIGFPE, SIGILL or SIGSEGV), received string "${name}"`],
    ),
    [["SIGINT", "SIGFOO"], RangeError, `Cannot create processSignal(): 'signals[1]' must be a signal name known to this platform, received string "SIGFOO"`],
    [["SIGINT", 5], TypeError, `Cannot create processSignal(): 'signals[1]' must be a signal name such as "SIGTERM", received number 5`],
    ["SIGFOO", RangeError, `Cannot create processSignal(): 'signals' must be a signal name known to this platform, received string "SIGFOO"`],
    [null, TypeError, "Cannot create processSignal(): 'signals' must be a signal name or an array of signal names, received null"],
    // A hole is a missing name, not one to skip.
    [["SIGINT", , "SIGTERM"], TypeError, `Cannot create processSignal(): 'signals[1]' must be a signal name such as "SIGTERM", received undefined`],
  ])("processSignal(%j) throws the exact message", (input, ErrorClass, message) => {
    expect(() => processSignal(input as never)).toThrow(new ErrorClass(message));
  });
});

describe("processSignal() end to end", () => {
  beforeAll(() => void buildPackage(), 120_000);
  afterAll(() => removeBuilds());

  it("a child waiting on processSignal('SIGTERM') gets it, then Node's default exit returns", async () => {
    const child = startFixture("process-signal-child.mjs");
    await child.line("listening 1");
    child.process.kill("SIGTERM");
    expect(await child.line(/^received /)).toBe("received SIGTERM");
    // After the select no listener is left, so the next SIGTERM kills the process the default way.
    await child.line("listening 0");
    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
  });
});
