import { subscribe, unsubscribe } from "node:diagnostics_channel";
import * as http from "node:http";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { isUncaughtError, uncaughtErrors, UncaughtError } from "../../src/signals/index.js";
import { buildPackage, killChildren, removeBuilds, startFixture } from "./helpers.js";

const EVENTS = ["uncaughtException", "unhandledRejection"] as const;
let baseline: number[] = [];
let before: Function[][] = [];
// process.listeners() is typed per event; both events hold plain functions.
const listenersOf = (event: (typeof EVENTS)[number]): Function[] => process.listeners(event as "uncaughtException");
let exitCode: typeof process.exitCode;
const added = (): number[] => EVENTS.map((name, i) => process.listenerCount(name) - baseline[i]!);

/**
 * The listener uncaughtErrors() installed for `event`, to call as Node would.
 * (process.emit() would also run the test runner's own listeners, which
 * report the error as a test failure.)
 */
function ours(event: (typeof EVENTS)[number]): (error: unknown) => void {
  const mine = listenersOf(event).filter((listener) => !before[EVENTS.indexOf(event)]!.includes(listener));
  expect(mine).toHaveLength(1);
  return mine[0] as (error: unknown) => void;
}

beforeAll(() => {
  buildPackage();
});

afterAll(() => {
  removeBuilds();
});

beforeEach(() => {
  baseline = EVENTS.map((name) => process.listenerCount(name));
  before = EVENTS.map(listenersOf);
  exitCode = process.exitCode;
});

afterEach(async () => {
  // The handlers set process.exitCode, as they must; this worker must not exit 1.
  process.exitCode = exitCode;
  vi.restoreAllMocks();
  await killChildren();
  expect(added()).toEqual([0, 0]);
});

describe("uncaughtErrors() in a child process", () => {
  it("uncaughtErrors() turns an uncaught exception into a cancel whose reason carries the error, and the process exits 1 on its own after the drain", async () => {
    const child = startFixture("uncaught-child.mjs", ["throw"]);
    expect(await child.line(/^armed /)).toBe("armed uncaughtException=1 unhandledRejection=1");
    expect(await child.line(/^reason /)).toBe(
      "reason UncaughtError CANCELKIT_ERR_UNCAUGHT origin=uncaughtException error=RangeError:first boom exitCode=1 uncaughtException=0 unhandledRejection=0",
    );
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.lines).toContain("drain finished");
    // The error is printed, with its stack, since Node no longer does.
    expect(child.stderr()).toContain("Shutdown requested: uncaught exception: RangeError: first boom");
    expect(child.stderr()).toMatch(/RangeError: first boom\n\s+at /);
  });

  it("uncaughtErrors() turns an unhandled rejection into a cancel with origin unhandledRejection", async () => {
    const child = startFixture("uncaught-child.mjs", ["reject"]);
    expect(await child.line(/^reason /)).toMatch(/^reason UncaughtError CANCELKIT_ERR_UNCAUGHT origin=unhandledRejection error=TypeError:rejected boom exitCode=1 /);
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.lines).toContain("drain finished");
  });

  it("uncaughtErrors() lets a second error while draining crash the process the Node way", async () => {
    const child = startFixture("uncaught-child.mjs", ["second"]);
    await child.line(/^reason /);
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.lines).not.toContain("drain finished");
    expect(child.stderr()).toMatch(/Error: second boom/);
  });

  it("uncaughtErrors({ onSecondError: 'ignore' }) logs a second error and lets the drain finish", async () => {
    const child = startFixture("uncaught-child.mjs", ["ignore"]);
    expect(await child.line(/^reason /)).toMatch(/uncaughtException=1 unhandledRejection=1$/);
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.lines).toContain("drain finished");
    expect(child.stderr()).toContain("Shutdown requested: uncaught exception: Error: second boom");
  });

  it("uncaughtErrors() disposed removes its listeners, so Node's own behaviour is back", async () => {
    const child = startFixture("uncaught-child.mjs", ["dispose"]);
    expect(await child.line(/^disposed /)).toBe("disposed uncaughtException=0 unhandledRejection=0");
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.stderr()).toMatch(/Error: after dispose/);
    expect(child.stderr()).not.toContain("Shutdown requested");
  });

  it("uncaughtErrors() as the parent of shutdown() drains serve(): the request in flight when the error is thrown completes", async () => {
    const child = startFixture("uncaught-child.mjs", ["serve"]);
    const port = Number((await child.line(/^port /)).slice(5));
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        })
        .on("error", reject);
    });
    expect(response).toEqual({ status: 200, body: "finished" });
    expect(await child.line(/^drained /)).toBe("drained completed=1 forced=0 exitCode=1");
    expect(await child.exited).toEqual({ code: 1, signal: null });
  });
});

describe("uncaughtErrors() listeners", () => {
  it("uncaughtErrors() installs one listener per event while opted in and removes them on dispose, without cancelling", () => {
    const token = uncaughtErrors();
    expect(token).toBeInstanceOf(CancellationToken);
    expect(added()).toEqual([1, 1]);
    token[Symbol.dispose]();
    expect(added()).toEqual([0, 0]);
    expect(token.isCancelled).toBe(false);
  });

  it("uncaughtErrors({ events }) listens for exactly the given events", () => {
    const token = uncaughtErrors({ events: ["unhandledRejection"] });
    expect(added()).toEqual([0, 1]);
    token[Symbol.dispose]();
  });

  it("uncaughtErrors() removes its listeners when cancelled by anything (policy 'default')", () => {
    const token = uncaughtErrors();
    token.cancel("done");
    expect(added()).toEqual([0, 0]);
  });

  it("uncaughtErrors({ onSecondError: 'ignore' }) keeps listening after the cancel until disposed", () => {
    const token = uncaughtErrors({ onSecondError: "ignore" });
    token.cancel("done");
    expect(added()).toEqual([1, 1]);
    token[Symbol.dispose]();
    expect(added()).toEqual([0, 0]);
  });

  it("uncaughtErrors({ events }) listens once for an event named twice", () => {
    const token = uncaughtErrors({ events: ["unhandledRejection", "unhandledRejection"] });
    expect(added()).toEqual([0, 1]);
    token[Symbol.dispose]();
    expect(added()).toEqual([0, 0]);
  });

  it("uncaughtErrors() rejects unknown options and wrong values before installing anything", () => {
    expect(() => uncaughtErrors({ event: [] } as never)).toThrow(new TypeError("Cannot create uncaughtErrors(): unknown option 'event' (did you mean 'events'?)"));
    expect(() => uncaughtErrors(null as never)).toThrow(new TypeError("Cannot create uncaughtErrors(): 'options' must be an object or undefined, received null"));
    const events = `Cannot create uncaughtErrors(): 'options.events' must be an array of "uncaughtException" and "unhandledRejection"`;
    expect(() => uncaughtErrors({ events: ["exit"] as never })).toThrow(new TypeError(`${events}, received array of length 1`));
    // One wrong name among right ones is enough.
    expect(() => uncaughtErrors({ events: ["uncaughtException", "exit"] as never })).toThrow(new TypeError(`${events}, received array of length 2`));
    expect(() => uncaughtErrors({ events: "uncaughtException" as never })).toThrow(new TypeError(`${events}, received string "uncaughtException"`));
    expect(() => uncaughtErrors({ onSecondError: "exit" as never })).toThrow(
      new TypeError(`Cannot create uncaughtErrors(): 'options.onSecondError' must be "default", "ignore" or a function, received string "exit"`),
    );
    expect(() => uncaughtErrors({ log: "console" as never })).toThrow(new TypeError(`Cannot create uncaughtErrors(): 'options.log' must be a function, received string "console"`));
    expect(added()).toEqual([0, 0]);
  });

  it("uncaughtErrors() accepts each documented onSecondError policy", () => {
    for (const onSecondError of ["default", "ignore", () => {}] as const) uncaughtErrors({ onSecondError })[Symbol.dispose]();
    expect(added()).toEqual([0, 0]);
  });
});

describe("uncaughtErrors() handling, in process", () => {
  it("uncaughtErrors() logs the first error, sets process.exitCode to 1, then cancels with an UncaughtError carrying it", () => {
    const order: string[] = [];
    const logged: UncaughtError[] = [];
    const token = uncaughtErrors({ log: (error) => void (logged.push(error), order.push("log")) });
    token.onCancel(() => void order.push(`cancel exitCode=${String(process.exitCode)}`));
    process.exitCode = undefined;
    const thrown = new RangeError("boom");
    ours("uncaughtException")(thrown);
    expect(order).toEqual(["log", "cancel exitCode=1"]);
    const reason = token.reason as UncaughtError;
    expect(logged).toEqual([reason]);
    expect(reason).toBeInstanceOf(UncaughtError);
    expect(reason.error).toBe(thrown);
    expect(reason.origin).toBe("uncaughtException");
    expect(reason.message).toBe("Shutdown requested: uncaught exception: RangeError: boom");
    // Policy "default": nothing of ours is left for a second error.
    expect(added()).toEqual([0, 0]);
  });

  it("uncaughtErrors() reports an unhandled rejection with origin unhandledRejection", () => {
    const token = uncaughtErrors({ log: () => {} });
    const rejected = new TypeError("rejected");
    ours("unhandledRejection")(rejected);
    const reason = token.reason as UncaughtError;
    expect(reason.origin).toBe("unhandledRejection");
    expect(reason.error).toBe(rejected);
    expect(reason.message).toBe("Shutdown requested: unhandled rejection: TypeError: rejected");
  });

  it("uncaughtErrors() leaves a process.exitCode that something else already set", () => {
    const token = uncaughtErrors({ log: () => {} });
    process.exitCode = 3;
    ours("uncaughtException")(new Error("boom"));
    expect(process.exitCode).toBe(3);
    expect(token.isCancelled).toBe(true);
  });

  it("uncaughtErrors({ onSecondError: 'ignore' }) logs every later error and keeps the first as the reason", () => {
    const logged: unknown[] = [];
    const token = uncaughtErrors({ onSecondError: "ignore", log: (error) => void logged.push(error.error) });
    const handler = ours("uncaughtException");
    handler("first");
    handler("second");
    ours("unhandledRejection")("third");
    expect(logged).toEqual(["first", "second", "third"]);
    expect((token.reason as UncaughtError).error).toBe("first");
    token[Symbol.dispose]();
  });

  it("uncaughtErrors({ onSecondError: fn }) hands every later error and the token to fn instead of logging it", () => {
    const logged: unknown[] = [];
    const calls: Array<[UncaughtError, CancellationToken]> = [];
    const token = uncaughtErrors({ onSecondError: (error, t) => void calls.push([error, t]), log: (error) => void logged.push(error.error) });
    const handler = ours("unhandledRejection");
    handler("first");
    handler("second");
    expect(logged).toEqual(["first"]);
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toBeInstanceOf(UncaughtError);
    expect(calls[0]![0].error).toBe("second");
    expect(calls[0]![0].origin).toBe("unhandledRejection");
    expect(calls[0]![1]).toBe(token);
    expect(added()).toEqual([1, 1]);
    token[Symbol.dispose]();
  });

  it("uncaughtErrors() prints the message and the error's stack to stderr by default", () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string) => written.push(chunk)) as never);
    const token = uncaughtErrors({ onSecondError: "ignore" });
    const handler = ours("uncaughtException");
    const thrown = new RangeError("boom");
    handler(thrown);
    // Without a stack (or for a value that is not an Error), the value as a string.
    const stackless = new Error("bare");
    delete stackless.stack;
    handler(stackless);
    handler(42);
    // Only an Error's stack is printed: a look-alike is printed as a string.
    handler({ stack: "not an Error", toString: () => "look-alike" });
    vi.restoreAllMocks();
    expect(written).toEqual([
      `Shutdown requested: uncaught exception: RangeError: boom\n${thrown.stack!}\n`,
      "Shutdown requested: uncaught exception: Error: bare\nError: bare\n",
      "Shutdown requested: uncaught exception: 42\n42\n",
      "Shutdown requested: uncaught exception: look-alike\nlook-alike\n",
    ]);
    token[Symbol.dispose]();
  });

  it("uncaughtErrors() publishes its source, token and reason on cancelkit:shutdown", () => {
    const events: unknown[] = [];
    const listener = (message: unknown): void => void events.push(message);
    subscribe("cancelkit:shutdown", listener);
    try {
      const token = uncaughtErrors({ log: () => {} });
      expect(events).toEqual([]);
      ours("uncaughtException")("boom");
      expect(events).toEqual([{ source: "uncaughtErrors", token, reason: token.reason }]);
      expect((events[0] as { token: unknown }).token).toBe(token);
    } finally {
      unsubscribe("cancelkit:shutdown", listener);
    }
  });

  it("disposing an uncaughtErrors() token after it was cancelled removes the listeners 'ignore' kept, and never changes the reason", () => {
    const token = uncaughtErrors({ onSecondError: "ignore", log: () => {} });
    token.cancel("first");
    token[Symbol.dispose]();
    token[Symbol.dispose]();
    expect(added()).toEqual([0, 0]);
    expect(token.reason).toBe("first");
  });
});

describe("UncaughtError", () => {
  it("UncaughtError carries what was thrown, unchanged, as error and cause", () => {
    const thrown = { not: "an Error" };
    const error = new UncaughtError(thrown, "unhandledRejection");
    expect(error.error).toBe(thrown);
    expect(error.cause).toBe(thrown);
    expect(error.origin).toBe("unhandledRejection");
    expect(error.message).toBe("Shutdown requested: unhandled rejection: [object Object]");
    expect(isUncaughtError(error)).toBe(true);
    expect(isUncaughtError(new Error("x"))).toBe(false);
  });

  it("UncaughtError defaults its origin to uncaughtException and names an Error by name and message", () => {
    const thrown = new RangeError("boom");
    const error = new UncaughtError(thrown);
    expect(error.origin).toBe("uncaughtException");
    expect(error.message).toBe("Shutdown requested: uncaught exception: RangeError: boom");
    expect(error.name).toBe("UncaughtError");
    expect(error.code).toBe("CANCELKIT_ERR_UNCAUGHT");
    expect(error.cause).toBe(thrown);
  });

  it("isUncaughtError() is true only for an object carrying the code", () => {
    expect(isUncaughtError({ code: "CANCELKIT_ERR_UNCAUGHT" })).toBe(true);
    expect(isUncaughtError(null)).toBe(false);
    expect(isUncaughtError(undefined)).toBe(false);
    expect(isUncaughtError("CANCELKIT_ERR_UNCAUGHT")).toBe(false);
    expect(isUncaughtError(Object.assign(() => {}, { code: "CANCELKIT_ERR_UNCAUGHT" }))).toBe(false);
    expect(isUncaughtError({ code: "CANCELKIT_ERR_SIGNAL_RECEIVED" })).toBe(false);
  });
});
