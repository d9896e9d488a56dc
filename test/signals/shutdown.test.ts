import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { getEventListeners } from "node:events";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { CancellationToken } from "../../src/index.js";
import {
  isShutdownTimeoutError,
  isSignalReceivedError,
  shutdown,
  ShutdownTimeoutError,
  SignalReceivedError,
} from "../../src/signals/index.js";
import { buildPackage, removeBuilds, countedToken, killChildren, startFixture } from "./helpers.js";

// Signals are emitted in-process (process.emit runs the listeners without the
// OS, so a missing listener cannot kill the worker); real ones go to children.
const NAMES = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
let baseline: number[] = [];

beforeEach(() => {
  baseline = NAMES.map((name) => process.listenerCount(name));
  // process.emit() would also run listeners that are not ours.
  expect(baseline, "signal listeners installed by the test runner").toEqual(NAMES.map(() => 0));
});

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await killChildren();
  expect(NAMES.map((name) => process.listenerCount(name))).toEqual(baseline);
});

const listeners = (name: (typeof NAMES)[number]): number => process.listenerCount(name) - baseline[NAMES.indexOf(name)]!;

describe("shutdown() sources", () => {
  it("shutdown() listens for SIGINT and SIGTERM by default, without cancelling", () => {
    const token = shutdown();
    expect(token).toBeInstanceOf(CancellationToken);
    expect(token.isCancelled).toBe(false);
    expect(listeners("SIGINT")).toBe(1);
    expect(listeners("SIGTERM")).toBe(1);
    token[Symbol.dispose]();
  });

  it("shutdown() is cancelled by SIGTERM with a SignalReceivedError naming it", () => {
    const token = shutdown();
    process.emit("SIGTERM", "SIGTERM");
    expect(token.isCancelled).toBe(true);
    const reason = token.reason as SignalReceivedError;
    expect(reason).toBeInstanceOf(SignalReceivedError);
    expect(reason.signal).toBe("SIGTERM");
    expect(reason.signalNumber).toBe(15);
    expect(reason.code).toBe("CANCELKIT_ERR_SIGNAL_RECEIVED");
    expect(reason.name).toBe("SignalReceivedError");
    expect(reason.message).toBe("Shutdown requested: received SIGTERM (signal 15)");
    expect(isSignalReceivedError(reason)).toBe(true);
    // Default policy: listeners gone once cancelled, so a second signal gets Node's default action.
    expect(listeners("SIGTERM")).toBe(0);
    expect(listeners("SIGINT")).toBe(0);
  });

  it("shutdown() is cancelled by SIGINT with signal number 2", () => {
    const token = shutdown();
    process.emit("SIGINT", "SIGINT");
    expect((token.reason as SignalReceivedError).signal).toBe("SIGINT");
    expect((token.reason as SignalReceivedError).signalNumber).toBe(2);
  });

  it("shutdown({ signals }) listens for exactly the given signals", () => {
    const token = shutdown({ signals: ["SIGHUP"] });
    expect(listeners("SIGHUP")).toBe(1);
    expect(listeners("SIGINT")).toBe(0);
    expect(listeners("SIGTERM")).toBe(0);
    process.emit("SIGHUP", "SIGHUP");
    expect((token.reason as SignalReceivedError).signal).toBe("SIGHUP");
    expect(listeners("SIGHUP")).toBe(0);
  });

  it("shutdown({ signals: [] }) installs no listener", () => {
    const token = shutdown({ signals: [], timeoutMs: 10 });
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
    token[Symbol.dispose]();
  });

  it("shutdown({ timeoutMs }) is cancelled with a ShutdownTimeoutError at the deadline, by an unref'd timer", () => {
    vi.useFakeTimers();
    const token = shutdown({ timeoutMs: 1_000 });
    vi.advanceTimersByTime(999);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(token.reason).toBeInstanceOf(ShutdownTimeoutError);
    expect((token.reason as ShutdownTimeoutError).timeoutMs).toBe(1_000);
    expect(isShutdownTimeoutError(token.reason)).toBe(true);
    expect(listeners("SIGTERM")).toBe(0);
  });

  it("shutdown({ timeoutMs }) uses a timer that does not keep the process alive", () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const token = shutdown({ timeoutMs: 60_000 });
    const timer = spy.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    token[Symbol.dispose]();
  });

  it("shutdown({ timeoutMs }) chains delays longer than 2^31-1 ms instead of firing at once", () => {
    vi.useFakeTimers();
    const token = shutdown({ timeoutMs: 2 ** 31 + 5, signals: [] });
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(5);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(isShutdownTimeoutError(token.reason)).toBe(true);
  });

  it("shutdown() clears its timer when a signal cancels it first", () => {
    vi.useFakeTimers();
    const token = shutdown({ timeoutMs: 1_000 });
    expect(vi.getTimerCount()).toBe(1);
    process.emit("SIGTERM", "SIGTERM");
    expect(vi.getTimerCount()).toBe(0);
    expect(isSignalReceivedError(token.reason)).toBe(true);
  });

  it("shutdown({ parent }) is cancelled with the parent token's reason, unchanged, and unsubscribes", () => {
    const parent = countedToken();
    const token = shutdown({ parent: parent.token });
    expect(parent.live()).toBe(1);
    const reason = { why: "parent" };
    parent.token.cancel(reason);
    expect(token.reason).toBe(reason);
    expect(parent.live()).toBe(0);
    expect(listeners("SIGTERM")).toBe(0);
  });

  it("shutdown({ parent }) leaves nothing on a long-lived parent once disposed", () => {
    const parent = countedToken();
    for (let i = 0; i < 100; i++) shutdown({ parent: parent.token, signals: [] })[Symbol.dispose]();
    expect(parent.live()).toBe(0);
  });

  it("shutdown({ parent }) follows an AbortSignal and removes its listener when cancelled", () => {
    const controller = new AbortController();
    const token = shutdown({ parent: controller.signal });
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    token.cancel("programmatic");
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    controller.abort("late");
    expect(token.reason).toBe("programmatic");
  });

  it("shutdown({ parent }) with a parent already cancelled is born cancelled and installs nothing", () => {
    const token = shutdown({ parent: AbortSignal.abort("already"), timeoutMs: 10 });
    expect(token.reason).toBe("already");
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });

  it("shutdown({ parent, onSecondSignal: fn }) with a parent already cancelled treats the next signal as a second one", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const token = shutdown({ parent: AbortSignal.abort("already"), onSecondSignal: fn, timeoutMs: 10 });
    expect(token.reason).toBe("already");
    expect(vi.getTimerCount()).toBe(0);
    // As if the parent had been cancelled a moment after the call: the policy hears the signal.
    expect(listeners("SIGTERM")).toBe(1);
    process.emit("SIGTERM", "SIGTERM");
    expect(fn).toHaveBeenCalledWith("SIGTERM", token);
    expect(token.reason).toBe("already");
    token[Symbol.dispose]();
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });

  it("shutdown({ parent, onSecondSignal: 'exit' }) with a parent already cancelled exits with 128 + n on the next signal", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const parent = CancellationToken.alreadyCancelled("already");
    const token = shutdown({ parent, onSecondSignal: "exit" });
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
    token[Symbol.dispose]();
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });

  it("shutdown() without timeoutMs arms no timer", () => {
    vi.useFakeTimers();
    const token = shutdown();
    expect(vi.getTimerCount()).toBe(0);
    token.cancel("done");
    expect(token.reason).toBe("done");
  });

  it("shutdown({ parent, timeoutMs }) with a parent already cancelled arms no timer and subscribes nothing to the parent", () => {
    const parent = CancellationToken.alreadyCancelled("already");
    const onCancel = vi.spyOn(parent, "onCancel");
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    const token = shutdown({ parent, timeoutMs: 10, onSecondSignal: "ignore" });
    expect(token.reason).toBe("already");
    expect(setTimeoutSpy).not.toHaveBeenCalled();
    expect(onCancel).not.toHaveBeenCalled();
    token[Symbol.dispose]();
  });

  it("shutdown({ parent: token.signal }) inside that token's cancel callbacks is born cancelled, though the signal has not fired yet", () => {
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    const parent = new CancellationToken();
    const signal = parent.signal;
    let aborted: boolean | undefined;
    let token: CancellationToken | undefined;
    parent.onCancel(() => {
      aborted = signal.aborted;
      token = shutdown({ parent: signal, timeoutMs: 10 });
    });
    parent.cancel("parent");
    expect(aborted).toBe(false);
    expect(token!.reason).toBe("parent");
    expect(setTimeoutSpy).not.toHaveBeenCalled();
  });

  it("shutdown() publishes its source, token and reason on cancelkit:shutdown when cancelled", () => {
    const events: unknown[] = [];
    const listener = (message: unknown): void => void events.push(message);
    subscribe("cancelkit:shutdown", listener);
    try {
      const token = shutdown({ signals: ["SIGHUP"] });
      expect(events).toEqual([]);
      process.emit("SIGHUP", "SIGHUP");
      expect(events).toEqual([{ source: "shutdown", token, reason: token.reason }]);
      expect((events[0] as { token: unknown }).token).toBe(token);
    } finally {
      unsubscribe("cancelkit:shutdown", listener);
    }
  });

  it.each(["default", "exit", "ignore", () => {}] as const)(
    "shutdown({ parent, onSecondSignal: %s }) born cancelled publishes nothing on cancelkit:shutdown: the parent's cancellation was the event",
    (onSecondSignal) => {
      const events: unknown[] = [];
      const listener = (message: unknown): void => void events.push(message);
      subscribe("cancelkit:shutdown", listener);
      try {
        const token = shutdown({ parent: AbortSignal.abort("already"), onSecondSignal });
        expect(token.reason).toBe("already");
        token[Symbol.dispose]();
        expect(events).toEqual([]);
      } finally {
        unsubscribe("cancelkit:shutdown", listener);
      }
    },
  );

  it("shutdown() cancelled programmatically keeps the reason and releases its sources", () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const token = shutdown({ timeoutMs: 1_000, parent: controller.signal });
    token.cancel("deploy");
    expect(token.reason).toBe("deploy");
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    expect(listeners("SIGTERM")).toBe(0);
  });
});

describe("shutdown() second signal", () => {
  it("shutdown() never calls process.exit by default", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const token = shutdown({ onSecondSignal: "default" });
    process.emit("SIGTERM", "SIGTERM");
    process.emit("SIGTERM", "SIGTERM");
    expect(exit).not.toHaveBeenCalled();
    expect(token.isCancelled).toBe(true);
  });

  it("shutdown({ onSecondSignal: 'exit' }) exits with 128 + the signal number on the next signal", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const token = shutdown({ onSecondSignal: "exit" });
    process.emit("SIGTERM", "SIGTERM");
    expect(exit).not.toHaveBeenCalled();
    expect(listeners("SIGTERM")).toBe(1);
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
    process.emit("SIGTERM", "SIGTERM");
    expect(exit).toHaveBeenLastCalledWith(143);
    token[Symbol.dispose]();
    expect(listeners("SIGTERM")).toBe(0);
  });

  it("shutdown({ onSecondSignal: fn }) calls fn with the signal and the token for every further signal, and never exits", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const calls: Array<[string, CancellationToken]> = [];
    const token = shutdown({ onSecondSignal: (signal, t) => void calls.push([signal, t]) });
    process.emit("SIGINT", "SIGINT");
    expect(calls).toEqual([]);
    process.emit("SIGTERM", "SIGTERM");
    process.emit("SIGINT", "SIGINT");
    expect(calls).toEqual([
      ["SIGTERM", token],
      ["SIGINT", token],
    ]);
    expect(exit).not.toHaveBeenCalled();
    token[Symbol.dispose]();
  });

  it("shutdown({ onSecondSignal: fn }) escalates a signal after a timeout cancelled the token", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const token = shutdown({ timeoutMs: 5, onSecondSignal: fn });
    vi.advanceTimersByTime(5);
    process.emit("SIGTERM", "SIGTERM");
    expect(fn).toHaveBeenCalledWith("SIGTERM", token);
    expect(isShutdownTimeoutError(token.reason)).toBe(true);
    token[Symbol.dispose]();
  });

  it("shutdown({ onSecondSignal: 'ignore' }) keeps listening and does nothing until disposed", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const token = shutdown({ onSecondSignal: "ignore" });
    process.emit("SIGTERM", "SIGTERM");
    process.emit("SIGTERM", "SIGTERM");
    expect(exit).not.toHaveBeenCalled();
    expect(listeners("SIGTERM")).toBe(1);
    token[Symbol.dispose]();
    expect(listeners("SIGTERM")).toBe(0);
  });
});

describe("shutdown() disposal", () => {
  it("disposing a pending shutdown token removes every listener and timer, and never cancels it", () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const token = shutdown({ timeoutMs: 1_000, parent: controller.signal });
    token[Symbol.dispose]();
    expect(token.isCancelled).toBe(false);
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    controller.abort();
    vi.advanceTimersByTime(1_000);
    expect(token.isCancelled).toBe(false);
  });

  it("disposing is idempotent and works with using", () => {
    {
      using token = shutdown();
      expect(listeners("SIGTERM")).toBe(1);
      token[Symbol.dispose]();
    }
    expect(listeners("SIGTERM")).toBe(0);
  });
});

describe("SignalReceivedError", () => {
  it("SignalReceivedError takes a message that replaces the default one", () => {
    const error = new SignalReceivedError("SIGHUP", "reload");
    expect(error.message).toBe("reload");
    expect(error.signal).toBe("SIGHUP");
    expect(error.signalNumber).toBe(1);
  });

  it("isSignalReceivedError() is true only for an object carrying the code", () => {
    expect(isSignalReceivedError({ code: "CANCELKIT_ERR_SIGNAL_RECEIVED" })).toBe(true);
    expect(isSignalReceivedError(null)).toBe(false);
    expect(isSignalReceivedError(undefined)).toBe(false);
    expect(isSignalReceivedError("CANCELKIT_ERR_SIGNAL_RECEIVED")).toBe(false);
    expect(isSignalReceivedError(Object.assign(() => {}, { code: "CANCELKIT_ERR_SIGNAL_RECEIVED" }))).toBe(false);
    expect(isSignalReceivedError(new ShutdownTimeoutError(5))).toBe(false);
  });
});

describe("shutdown() misuse", () => {
  it.each([
    [null, TypeError, "Cannot create shutdown(): 'options' must be an object or undefined, received null"],
    [{ signal: ["SIGINT"] }, TypeError, "Cannot create shutdown(): unknown option 'signal' (did you mean 'signals'?)"],
    [{ signals: "SIGTERM" }, TypeError, `Cannot create shutdown(): 'options.signals' must be an array of signal names, received string "SIGTERM"`],
    [{ signals: ["SIGTERM", "SIGFOO"] }, RangeError, `Cannot create shutdown(): 'options.signals[1]' must be a signal name known to this platform, received string "SIGFOO"`],
    [{ timeoutMs: Infinity }, RangeError, "Cannot create shutdown(): 'options.timeoutMs' must be a finite number >= 0, received number Infinity"],
    [{ timeoutMs: "5" }, TypeError, `Cannot create shutdown(): 'options.timeoutMs' must be a finite number >= 0, received string "5"`],
    [{ parent: {} }, TypeError, "Cannot create shutdown(): 'options.parent' must be an AbortSignal, a CancellationToken or undefined, received an object"],
    [{ onSecondSignal: "Exit" }, RangeError, `Cannot create shutdown(): 'options.onSecondSignal' must be "default", "exit", "ignore" or a function, received string "Exit"`],
    [{ onSecondSignal: null }, TypeError, `Cannot create shutdown(): 'options.onSecondSignal' must be "default", "exit", "ignore" or a function, received null`],
    [{ onSecondSignal: 1 }, TypeError, `Cannot create shutdown(): 'options.onSecondSignal' must be "default", "exit", "ignore" or a function, received number 1`],
  ])("shutdown(%j) throws the exact message before installing anything", (options, ErrorClass, message) => {
    expect(() => shutdown(options as never)).toThrow(new ErrorClass(message));
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });

  it("shutdown() accepts each documented onSecondSignal policy", () => {
    for (const onSecondSignal of ["default", "exit", "ignore", () => {}] as const) shutdown({ onSecondSignal })[Symbol.dispose]();
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });

  it.each([
    [null, TypeError, /'options' must be an object/],
    [{ signals: "SIGTERM" }, TypeError, /'options.signals' must be an array of signal names/],
    [{ signals: ["SIGFOO"] }, RangeError, /'options.signals\[0\]'/],
    [{ signals: ["SIGKILL"] }, RangeError, /can be caught/],
    [{ timeoutMs: -1 }, RangeError, /'options.timeoutMs' must be a finite number >= 0, received number -1/],
    [{ timeoutMs: "5" }, TypeError, /'options.timeoutMs'/],
    [{ parent: 5 }, TypeError, /Cannot create shutdown\(\): 'options.parent' must be an AbortSignal, a CancellationToken or undefined, received number 5/],
    [{ onSecondSignal: "kill" }, RangeError, /'options.onSecondSignal' must be "default", "exit", "ignore" or a function, received string "kill"/],
    [{ onSecondSignal: null }, TypeError, /'options.onSecondSignal'/],
  ])("shutdown(%j) throws before installing anything", (options, ErrorClass, message) => {
    expect(() => shutdown(options as never)).toThrow(ErrorClass);
    expect(() => shutdown(options as never)).toThrow(message);
    expect(listeners("SIGINT") + listeners("SIGTERM")).toBe(0);
  });
});

describe("shutdown() end to end", () => {
  beforeAll(() => void buildPackage(), 120_000);
  afterAll(() => removeBuilds());

  it.each([
    ["SIGTERM", 15],
    ["SIGINT", 2],
  ] as const)("a child cancelled by a real %s prints the reason and exits on its own once its work ends", async (signal, number) => {
    const child = startFixture("shutdown-child.mjs", ["{}", "stop"]);
    expect(await child.line(/^ready /)).toBe("ready SIGINT=1 SIGTERM=1");
    child.process.kill(signal);
    expect(await child.line(/^reason /)).toBe(`reason SignalReceivedError ${signal} ${number}`);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.lines).toContain("after dispose SIGINT=0 SIGTERM=0");
  });

  it("by default a second signal gets Node's default action: the child dies by that signal", async () => {
    const child = startFixture("shutdown-child.mjs", ["{}", "drain"]);
    await child.line(/^ready /);
    child.process.kill("SIGTERM");
    await child.line(/^reason /);
    expect(await child.line(/^draining /)).toBe("draining SIGINT=0 SIGTERM=0");
    child.process.kill("SIGINT");
    expect(await child.exited).toEqual({ code: null, signal: "SIGINT" });
  });

  it("onSecondSignal: 'exit' exits with 128 + signal number on the second signal", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ onSecondSignal: "exit" }), "drain"]);
    await child.line(/^ready /);
    child.process.kill("SIGTERM");
    expect(await child.line(/^draining /)).toBe("draining SIGINT=1 SIGTERM=1");
    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 143, signal: null });
  });

  it("onSecondSignal: a callback runs on the second signal and can finish the drain", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ onSecondSignal: "callback" }), "drain"]);
    await child.line(/^ready /);
    child.process.kill("SIGINT");
    expect(await child.line(/^reason /)).toBe("reason SignalReceivedError SIGINT 2");
    await child.line(/^draining /);
    child.process.kill("SIGTERM");
    expect(await child.line(/^second /)).toBe("second SIGTERM");
    expect(await child.exited).toEqual({ code: 0, signal: null });
  });

  it("onSecondSignal: 'ignore' survives a second signal until the token is disposed", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ onSecondSignal: "ignore" }), "drain"]);
    await child.line(/^ready /);
    child.process.kill("SIGTERM");
    await child.line(/^draining /);
    child.process.kill("SIGTERM");
    // SIGWINCH (28) is delivered after a pending SIGTERM (15): if the second
    // SIGTERM had killed the child, this line would never come.
    child.process.kill("SIGWINCH");
    expect(await child.line(/^finishing/)).toBe("finishing SIGTERM=1");
    expect(await child.exited).toEqual({ code: 0, signal: null });
  });

  it("a child cancelled by timeoutMs reports a ShutdownTimeoutError", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ timeoutMs: 50 }), "stop"]);
    expect(await child.line(/^reason /)).toBe("reason ShutdownTimeoutError 50");
    expect(await child.exited).toEqual({ code: 0, signal: null });
  });

  it("a pending shutdown token does not keep the process alive", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ timeoutMs: 3_600_000 }), "idle"]);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.lines).toEqual(["ready SIGINT=1 SIGTERM=1", "exit cancelled=false"]);
  });

  it("after dispose nothing of the token is left: Node's default SIGTERM action is back", async () => {
    const child = startFixture("shutdown-child.mjs", [JSON.stringify({ timeoutMs: 3_600_000 }), "dispose"]);
    expect(await child.line(/^disposed /)).toBe("disposed SIGINT=0 SIGTERM=0 cancelled=false");
    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
  });
});
