import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { watchdog } from "../../src/signals/index.js";
import { buildPackage, killChildren, removeBuilds, startFixture } from "./helpers.js";

beforeAll(() => {
  buildPackage();
});

afterAll(() => {
  removeBuilds();
});

type ProcessInternals = { _getActiveHandles?: (() => unknown[]) | undefined };
const getActiveHandles = (process as unknown as ProcessInternals)._getActiveHandles;

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  (process as unknown as ProcessInternals)._getActiveHandles = getActiveHandles;
  await killChildren();
});

/**
 * Makes Node report `resources` (process.getActiveResourcesInfo()) and
 * `handles` (process._getActiveHandles(), or no such function) while a
 * watchdog fires; process.exit is mocked and recorded in `order`.
 */
function pretend(resources: string[], handles: unknown[] | undefined): { order: string[] } {
  const order: string[] = [];
  vi.spyOn(process, "getActiveResourcesInfo").mockReturnValue(resources);
  (process as unknown as ProcessInternals)._getActiveHandles = handles === undefined ? undefined : () => handles;
  vi.spyOn(process, "exit").mockImplementation(((code: number) => void order.push(`exit ${code}`)) as never);
  return { order };
}

describe("watchdog() in a child process", () => {
  it("watchdog() names the interval, the server and the socket that hold the process, then exits 124", async () => {
    const child = startFixture("watchdog-child.mjs", ["leak", JSON.stringify({ timeoutMs: 100 })]);
    const [, port, clientPort] = /^listening (\d+) client (\d+)$/.exec(await child.line(/^listening /))!;
    const { code, signal } = await child.exited;
    expect({ code, signal }).toEqual({ code: 124, signal: null });
    const message = child.stderr();
    expect(message).toContain("cancelkit watchdog: the process is still alive 100 ms after shutdown started; exiting with code 124.");
    expect(message).toMatch(/Active resources: .*Timeout/);
    expect(message).toMatch(/Active resources: .*TCPServerWrap/);
    expect(message).toMatch(/Active resources: .*TCPSocketWrap x2/);
    expect(message).toContain(`  server 127.0.0.1:${port}\n`);
    expect(message).toContain(`  socket 127.0.0.1:${clientPort} -> 127.0.0.1:${port}\n`);
    expect(message).toContain(`  socket 127.0.0.1:${port} -> 127.0.0.1:${clientPort}\n`);
  });

  it("watchdog() exits with the given exitCode and publishes its report on cancelkit:watchdog first", async () => {
    process.env["CANCELKIT_SUBSCRIBE"] = "1";
    let child;
    try {
      child = startFixture("watchdog-child.mjs", ["leak", JSON.stringify({ timeoutMs: 50, exitCode: 3 })]);
    } finally {
      delete process.env["CANCELKIT_SUBSCRIBE"];
    }
    const line = await child.line(/^channel /);
    const report = JSON.parse(line.slice("channel ".length)) as { timeoutMs: number; exitCode: number; resources: string[]; handles: string[] };
    expect(report.timeoutMs).toBe(50);
    expect(report.exitCode).toBe(3);
    expect(report.resources).toEqual(expect.arrayContaining(["Timeout", "TCPServerWrap", "TCPSocketWrap"]));
    expect(report.handles.some((h) => h.startsWith("server 127.0.0.1:"))).toBe(true);
    expect((await child.exited).code).toBe(3);
  });

  it("watchdog() never holds the process: a service that closes everything exits on its own with code 0", async () => {
    // A minute-long watchdog: if its timer held the process, the child would
    // outlive the test (and the test's timeout would fail it).
    const child = startFixture("watchdog-child.mjs", ["clean", JSON.stringify({ timeoutMs: 60_000 })]);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.lines).toContain("exit 0");
    expect(child.stderr()).toBe("");
  });
});

describe("watchdog() timing and disposal", () => {
  it("watchdog() does nothing while the token is not cancelled", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const token = new CancellationToken();
    const dog = watchdog(token, { timeoutMs: 10, log: () => {} });
    vi.advanceTimersByTime(1_000);
    expect(exit).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
    dog[Symbol.dispose]();
  });

  it("watchdog() fires timeoutMs after the cancel, logging before it exits", () => {
    vi.useFakeTimers();
    const order: string[] = [];
    const exit = vi.spyOn(process, "exit").mockImplementation(((code: number) => void order.push(`exit ${code}`)) as never);
    const token = new CancellationToken();
    watchdog(token, { timeoutMs: 500, log: (message) => order.push(message.split("\n")[0]!) });
    token.cancel();
    vi.advanceTimersByTime(499);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(order).toEqual(["cancelkit watchdog: the process is still alive 500 ms after shutdown started; exiting with code 124.", "exit 124"]);
  });

  it("watchdog() on an already aborted signal starts counting at once", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    watchdog(AbortSignal.abort(), { timeoutMs: 20, log: () => {} });
    vi.advanceTimersByTime(20);
    expect(exit).toHaveBeenCalledWith(124);
  });

  it("watchdog() exits with exitCode even when log throws", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    watchdog(AbortSignal.abort(), {
      timeoutMs: 0,
      exitCode: 9,
      log: () => {
        throw new Error("log failed");
      },
    });
    expect(() => vi.advanceTimersByTime(0)).toThrow("log failed");
    expect(exit).toHaveBeenCalledWith(9);
  });

  it("watchdog() disposed, before or after the cancel, never fires and leaves no timer or listener", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const before = new CancellationToken();
    watchdog(before, { timeoutMs: 10 })[Symbol.dispose]();
    before.cancel();
    const after = new CancellationToken();
    const dog = watchdog(after, { timeoutMs: 10 });
    after.cancel();
    expect(vi.getTimerCount()).toBe(1);
    dog[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(exit).not.toHaveBeenCalled();
  });

  it("watchdog() on an already aborted signal is disarmed by disposing it, twice or not", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const dog = watchdog(AbortSignal.abort(), { timeoutMs: 10, log: () => {} });
    expect(vi.getTimerCount()).toBe(1);
    dog[Symbol.dispose]();
    dog[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(exit).not.toHaveBeenCalled();
  });

  it("watchdog() counts down on a timer that does not keep the process alive", () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const dog = watchdog(AbortSignal.abort(), { timeoutMs: 60_000 });
    expect(spy).toHaveBeenCalledTimes(1);
    expect((spy.mock.results[0]!.value as NodeJS.Timeout).hasRef()).toBe(false);
    dog[Symbol.dispose]();
  });

  it("watchdog() chains delays past 2^31-1 ms instead of firing at once", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    watchdog(AbortSignal.abort(), { timeoutMs: 2 ** 31 + 5, log: () => {} });
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(6);
    expect(exit).toHaveBeenCalledWith(124);
  });
});

describe("watchdog() message and report, in process", () => {
  it("watchdog() counts each kind of active resource and lists every open server and socket with its addresses", () => {
    vi.useFakeTimers();
    const { order } = pretend(
      ["TCPSocketWrap", "Timeout", "TCPSocketWrap", "TCPServerWrap"],
      [
        null,
        7,
        { listening: true, address: () => ({ address: "127.0.0.1", port: 8080 }) },
        { listening: true, address: () => "/tmp/app.sock" },
        { listening: true, address: () => null },
        { listening: true, address: () => undefined },
        undefined,
        // Not a listening server (and no peer): left out.
        { listening: false, address: () => ({ address: "0.0.0.0", port: 1 }) },
        { listening: "yes", address: () => ({ address: "0.0.0.0", port: 2 }) },
        { listening: true, address: "0.0.0.0:3" },
        { remoteAddress: "10.0.0.2", remotePort: 5432, localAddress: "10.0.0.1", localPort: 41234 },
        { remoteAddress: "10.0.0.3", remotePort: 5432, localAddress: "10.0.0.1", localPort: 41235, destroyed: true },
        { remoteAddress: 4, remotePort: 5432, localAddress: "10.0.0.1", localPort: 41236 },
        { remoteAddress: "10.0.0.5", remotePort: 80, localAddress: "10.0.0.1", localPort: 41237, destroyed: false },
      ],
    );
    watchdog(AbortSignal.abort(), { timeoutMs: 5, exitCode: 7, log: (message) => void order.push(message) });
    vi.advanceTimersByTime(5);
    expect(order).toEqual([
      "cancelkit watchdog: the process is still alive 5 ms after shutdown started; exiting with code 7.\n" +
        "Active resources: TCPSocketWrap x2, Timeout, TCPServerWrap\n" +
        "  server 127.0.0.1:8080\n" +
        "  server /tmp/app.sock\n" +
        "  server (no address)\n" +
        "  server (no address)\n" +
        "  socket 10.0.0.1:41234 -> 10.0.0.2:5432\n" +
        "  socket 10.0.0.1:41237 -> 10.0.0.5:80\n",
      "exit 7",
    ]);
  });

  it("watchdog() says (none) when Node reports no resource, and lists no handle where Node has no _getActiveHandles()", () => {
    vi.useFakeTimers();
    const { order } = pretend([], undefined);
    watchdog(AbortSignal.abort(), { timeoutMs: 0, log: (message) => void order.push(message) });
    vi.advanceTimersByTime(0);
    expect(order).toEqual(["cancelkit watchdog: the process is still alive 0 ms after shutdown started; exiting with code 124.\nActive resources: (none)\n", "exit 124"]);
  });

  it("watchdog() publishes its report on cancelkit:watchdog after log and before the exit", () => {
    vi.useFakeTimers();
    const { order } = pretend(["Timeout"], [{ listening: true, address: () => ({ address: "::", port: 80 }) }]);
    const reports: unknown[] = [];
    const listener = (report: unknown): void => void (reports.push(report), order.push("report"));
    subscribe("cancelkit:watchdog", listener);
    try {
      watchdog(AbortSignal.abort(), { timeoutMs: 1, exitCode: 3, log: () => void order.push("log") });
      vi.advanceTimersByTime(1);
    } finally {
      unsubscribe("cancelkit:watchdog", listener);
    }
    expect(order).toEqual(["log", "report", "exit 3"]);
    expect(reports).toEqual([
      {
        timeoutMs: 1,
        exitCode: 3,
        resources: ["Timeout"],
        handles: ["server :::80"],
        message: "cancelkit watchdog: the process is still alive 1 ms after shutdown started; exiting with code 3.\nActive resources: Timeout\n  server :::80\n",
      },
    ]);
  });

  it("watchdog() writes its message to stderr by default", () => {
    vi.useFakeTimers();
    const { order } = pretend(["Timeout"], []);
    vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string) => order.push(chunk)) as never);
    watchdog(AbortSignal.abort(), { timeoutMs: 0 });
    vi.advanceTimersByTime(0);
    expect(order).toEqual(["cancelkit watchdog: the process is still alive 0 ms after shutdown started; exiting with code 124.\nActive resources: Timeout\n", "exit 124"]);
  });

  it("watchdog() waits 30000 ms after the cancel by default", () => {
    vi.useFakeTimers();
    const { order } = pretend([], []);
    const token = new CancellationToken();
    watchdog(token, { log: () => {} });
    token.cancel();
    vi.advanceTimersByTime(29_999);
    expect(order).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(order).toEqual(["exit 124"]);
  });
});

describe("watchdog() misuse", () => {
  it.each([
    [null, TypeError, "Cannot create watchdog(): 'options' must be an object or undefined, received null"],
    [{ timeout: 5 }, TypeError, "Cannot create watchdog(): unknown option 'timeout' (did you mean 'timeoutMs'?)"],
    [{ timeoutMs: "5" }, TypeError, `Cannot create watchdog(): 'options.timeoutMs' must be a finite number >= 0, received string "5"`],
    [{ timeoutMs: null }, TypeError, "Cannot create watchdog(): 'options.timeoutMs' must be a finite number >= 0, received null"],
    [{ timeoutMs: NaN }, RangeError, "Cannot create watchdog(): 'options.timeoutMs' must be a finite number >= 0, received number NaN"],
    [{ exitCode: "1" }, TypeError, `Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received string "1"`],
    [{ exitCode: null }, TypeError, "Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received null"],
    [{ exitCode: 0 }, RangeError, "Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received number 0"],
    [{ exitCode: 256 }, RangeError, "Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received number 256"],
    [{ exitCode: 1.5 }, RangeError, "Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received number 1.5"],
    [{ log: "stderr" }, TypeError, `Cannot create watchdog(): 'options.log' must be a function, received string "stderr"`],
    [{ log: null }, TypeError, "Cannot create watchdog(): 'options.log' must be a function, received null"],
  ])("watchdog(token, %j) throws the exact message before arming", (options, ErrorClass, message) => {
    vi.useFakeTimers();
    expect(() => watchdog(AbortSignal.abort(), options as never)).toThrow(new ErrorClass(message));
    expect(vi.getTimerCount()).toBe(0);
  });

  it("watchdog() accepts exit codes 1 and 255", () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    watchdog(AbortSignal.abort(), { timeoutMs: 0, exitCode: 1, log: () => {} });
    watchdog(AbortSignal.abort(), { timeoutMs: 0, exitCode: 255, log: () => {} });
    vi.advanceTimersByTime(0);
    expect(exit.mock.calls).toEqual([[1], [255]]);
  });

  it("watchdog() accepts a CancellationToken and an AbortSignal as its token", () => {
    watchdog(new CancellationToken())[Symbol.dispose]();
    watchdog(new AbortController().signal)[Symbol.dispose]();
    expect(() => watchdog(null as never)).toThrow(new TypeError("Cannot create watchdog(): 'token' must be an AbortSignal or a CancellationToken, received null"));
  });

  it("watchdog() rejects a token that is not a token or signal, naming the call", () => {
    expect(() => watchdog("soon" as never)).toThrow(new TypeError(`Cannot create watchdog(): 'token' must be an AbortSignal or a CancellationToken, received string "soon"`));
  });

  it("watchdog() rejects unknown options, bad durations and exit codes before arming", () => {
    const token = new CancellationToken();
    expect(() => watchdog(token, { timeout: 5 } as never)).toThrow(TypeError);
    expect(() => watchdog(token, { timeoutMs: -1 })).toThrow(RangeError);
    expect(() => watchdog(token, { exitCode: 0 })).toThrow(new RangeError("Cannot create watchdog(): 'options.exitCode' must be an integer from 1 to 255, received number 0"));
    expect(() => watchdog(token, { exitCode: "1" as never })).toThrow(TypeError);
    expect(() => watchdog(token, { log: 1 as never })).toThrow(TypeError);
    token.cancel();
    // Nothing was armed by the calls that threw.
  });
});
