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

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await killChildren();
});

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

describe("watchdog() misuse", () => {
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
