import * as http from "node:http";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { isUncaughtError, uncaughtErrors, UncaughtError } from "../../src/signals/index.js";
import { buildPackage, killChildren, removeBuilds, startFixture } from "./helpers.js";

const EVENTS = ["uncaughtException", "unhandledRejection"] as const;
let baseline: number[] = [];
const added = (): number[] => EVENTS.map((name, i) => process.listenerCount(name) - baseline[i]!);

beforeAll(() => {
  buildPackage();
});

afterAll(() => {
  removeBuilds();
});

beforeEach(() => {
  baseline = EVENTS.map((name) => process.listenerCount(name));
});

afterEach(async () => {
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

  it("uncaughtErrors() rejects unknown options and wrong values before installing anything", () => {
    expect(() => uncaughtErrors({ event: [] } as never)).toThrow(new TypeError("Cannot create uncaughtErrors(): unknown option 'event' (did you mean 'events'?)"));
    expect(() => uncaughtErrors({ events: ["exit"] as never })).toThrow(TypeError);
    expect(() => uncaughtErrors({ onSecondError: "exit" as never })).toThrow(TypeError);
    expect(() => uncaughtErrors({ log: "console" as never })).toThrow(TypeError);
    expect(added()).toEqual([0, 0]);
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
});
