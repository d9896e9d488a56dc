import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { adoptToken, CancellationToken, shareToken, type SharedTokenHandle, type TokenShare } from "../../src/cancel/index.js";

/*
 * A token shared with real worker threads. The workers import the build
 * test/global-setup.ts made; the main side imports the sources, as the two
 * sides of a real program may come from different copies of the library.
 */
const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, "fixtures", "shared-token-worker.mjs");
const SAFETY_MS = 10_000;

let entry: string;
const workers = new Set<Worker>();

beforeAll(() => {
  const dist = process.env["CANCELKIT_DIST"];
  if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  entry = pathToFileURL(join(dist, "cancel", "index.js")).href;
});

afterEach(async () => {
  await Promise.all([...workers].map((worker) => worker.terminate()));
  workers.clear();
});

interface Started {
  worker: Worker;
  /** The next message from the worker. */
  next: () => Promise<unknown>;
  exited: Promise<number>;
}

function start(handle: SharedTokenHandle, transfer: TokenShare["transfer"], mode: string): Started {
  const worker = new Worker(fixture, { workerData: { entry, handle, mode }, transferList: transfer });
  workers.add(worker);
  const queue: unknown[] = [];
  const waiting: Array<(message: unknown) => void> = [];
  worker.on("message", (message: unknown) => {
    const resolve = waiting.shift();
    if (resolve) resolve(message);
    else queue.push(message);
  });
  const errored = new Promise<never>((_, reject) => worker.once("error", reject));
  void errored.catch(() => {});
  const bounded = <T>(promise: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const safety = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`worker (${mode}): no ${what} within ${SAFETY_MS} ms`)), SAFETY_MS);
    });
    return Promise.race([promise, errored, safety]).finally(() => clearTimeout(timer));
  };
  const exited = bounded(
    new Promise<number>((resolve) =>
      worker.once("exit", (code) => {
        workers.delete(worker);
        resolve(code);
      }),
    ),
    "exit",
  );
  void exited.catch(() => {});
  return {
    worker,
    exited,
    next: () => bounded(queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve)), "message"),
  };
}

/** Resolves once `predicate` holds, checking on each macrotask; bounded. */
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`never: ${what}`);
}

describe("shareToken() and adoptToken() across worker threads", () => {
  it("isCancelled is seen by a loop that never yields, and the reason follows once it yields", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next } = start(shared.handle, shared.transfer, "busy");
    expect(await next()).toBe("spinning");
    token.cancel(new Error("stop spinning"));
    const report = (await next()) as Record<string, unknown>;
    expect(report["spun"]).toBe(true);
    // Before the thread yielded: flag set, reason not yet arrived, a stand-in thrown.
    expect(report["reasonBeforeYield"]).toBeUndefined();
    expect(report["early"]).toMatchObject({ name: "AbortError", message: expect.stringContaining("another thread") });
    // After: the origin's reason, everywhere.
    expect(report["reason"]).toEqual({ name: "Error", message: "stop spinning" });
    expect(report["late"]).toEqual({ name: "Error", message: "stop spinning" });
    expect(report["aborted"]).toBe(true);
    expect(shared.isLive).toBe(false);
  });

  it("cancelled() in the worker resolves with a structured clone of the reason, and signal aborts with it", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next } = start(shared.handle, shared.transfer, "async");
    expect(await next()).toBe("waiting");
    token.cancel(new RangeError("too late"));
    expect(await next()).toEqual({
      reason: { name: "RangeError", message: "too late" },
      isError: true,
      sameAsSignal: true,
      tokenCancelled: true,
    });
  });

  it("cancelled() carries the default reason as an AbortError DOMException", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next } = start(shared.handle, shared.transfer, "async");
    expect(await next()).toBe("waiting");
    token.cancel();
    expect(await next()).toMatchObject({ reason: { name: "AbortError", message: "This operation was aborted" } });
  });

  it("a reason that cannot be cloned arrives as an AbortError stand-in that describes it", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next } = start(shared.handle, shared.transfer, "async");
    expect(await next()).toBe("waiting");
    token.cancel(function notCloneable() {});
    const report = (await next()) as { reason: { name: string; message: string } };
    expect(report.reason.name).toBe("AbortError");
    expect(report.reason.message).toContain("cannot be cloned (function notCloneable)");
  });

  it("shareToken() of a cancelled token gives a handle that is already cancelled", async () => {
    const token = CancellationToken.alreadyCancelled("before the worker started");
    const shared = shareToken(token);
    expect(shared.isLive).toBe(false);
    const { next } = start(shared.handle, shared.transfer, "born-cancelled");
    expect(await next()).toEqual({ sync: true, reason: "before the worker started" });
  });

  it("disposing the SharedToken in the worker releases the origin's share", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next } = start(shared.handle, shared.transfer, "dispose");
    expect(await next()).toEqual({ disposed: true, tokenCancelled: false });
    await until(() => !shared.isLive, "the origin saw the release");
    token.cancel("after release");
  });

  it("disposing the TokenShare releases the worker's port, so a worker held only by it exits", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next, exited } = start(shared.handle, shared.transfer, "hold-keepalive");
    expect(await next()).toBe("holding");
    shared[Symbol.dispose]();
    shared[Symbol.dispose]();
    expect(shared.isLive).toBe(false);
    expect(await exited).toBe(0);
    expect(token.isCancelled).toBe(false);
  });

  it("a share whose token was garbage-collected releases the worker, which then exits", async () => {
    const started = ((): Started => {
      const shared = shareToken(new CancellationToken());
      return start(shared.handle, shared.transfer, "hold-keepalive");
    })();
    expect(await started.next()).toBe("holding");
    // Neither the token nor the share is reachable: collecting them closes the port.
    let code: number | undefined;
    void started.exited.then((c) => (code = c));
    for (let i = 0; i < 200 && code === undefined; i++) {
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await started.exited).toBe(0);
  });

  it("a worker holding a live SharedToken exits on its own, and its exit releases the origin", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const { next, exited } = start(shared.handle, shared.transfer, "hold");
    expect(await next()).toBe("holding");
    expect(await exited).toBe(0);
    await until(() => !shared.isLive, "the origin saw the worker go");
  });

  it("adoptToken() refuses a handle adopted already", async () => {
    const shared = shareToken(new CancellationToken());
    const { next } = start(shared.handle, shared.transfer, "adopt-twice");
    expect(await next()).toMatchObject({ threw: true, name: "TypeError", message: expect.stringContaining("adopted already") });
    shared[Symbol.dispose]();
  });
});

describe("shareToken() and adoptToken() misuse", () => {
  it("shareToken() throws a TypeError naming the received value for anything but a token", () => {
    expect(() => shareToken(new AbortController().signal as never)).toThrow(
      new TypeError("Cannot call shareToken(): 'token' must be a CancellationToken, received an instance of AbortSignal"),
    );
  });

  it("adoptToken() throws a TypeError for anything but a handle", () => {
    expect(() => adoptToken({ kind: "cancelkit.shared-token" } as never)).toThrow(TypeError);
    expect(() => adoptToken(null as never)).toThrow("Cannot call adoptToken(): 'handle' must be a handle made by shareToken(), received null");
  });

  it("adoptToken() refuses anything that is not a whole handle, naming what it received, and adopts nothing", () => {
    const shared = shareToken(new CancellationToken());
    const handle = shared.handle;
    const message = (received: string): string => `Cannot call adoptToken(): 'handle' must be a handle made by shareToken(), received ${received}`;
    expect(() => adoptToken(undefined as never)).toThrow(message("undefined"));
    expect(() => adoptToken("cancelkit.shared-token" as never)).toThrow(message('string "cancelkit.shared-token"'));
    // A function carrying the handle's fields is not the handle.
    expect(() => adoptToken(Object.assign(() => {}, handle) as never)).toThrow(message("function (anonymous)"));
    expect(() => adoptToken({ ...handle, kind: "other" } as never)).toThrow(message("an object"));
    expect(() => adoptToken({ ...handle, flag: new ArrayBuffer(4) } as never)).toThrow(message("an object"));
    expect(() => adoptToken({ ...handle, flag: new SharedArrayBuffer(3) } as never)).toThrow(message("an object"));
    expect(() => adoptToken({ ...handle, port: undefined } as never)).toThrow(message("an object"));
    expect(() => adoptToken({ ...handle, port: {} } as never)).toThrow(message("an object"));
    // None of that adopted the port: the handle itself is still good.
    using adopted = adoptToken(handle);
    expect(adopted.isCancelled).toBe(false);
    shared[Symbol.dispose]();
  });

  it("adoptToken() of a handle adopted already throws a TypeError that says to share again", () => {
    const shared = shareToken(new CancellationToken());
    using adopted = adoptToken(shared.handle);
    expect(() => adoptToken(shared.handle)).toThrow(
      new TypeError("Cannot call adoptToken(): this handle was adopted already; share the token again for another adopter"),
    );
    expect(adopted.isCancelled).toBe(false);
    shared[Symbol.dispose]();
  });

  it("shareToken() throws a TypeError that says why when the runtime has no SharedArrayBuffer", () => {
    const token = new CancellationToken();
    vi.stubGlobal("SharedArrayBuffer", undefined);
    try {
      expect(() => shareToken(token)).toThrow(
        new TypeError("Cannot call shareToken(): SharedArrayBuffer is unavailable (in a browser the page must be cross-origin isolated)"),
      );
    } finally {
      vi.unstubAllGlobals();
    }
    expect(typeof SharedArrayBuffer).toBe("function");
  });

  it("adoptToken() refuses unknown options before adopting the port", () => {
    const shared = shareToken(new CancellationToken());
    expect(() => adoptToken(shared.handle, { keepalive: true } as never)).toThrow(
      "Cannot call adoptToken(): unknown option 'keepalive' (did you mean 'keepAlive'?)",
    );
    expect(() => adoptToken(shared.handle, { keepAlive: 1 } as never)).toThrow(
      new TypeError("Cannot call adoptToken(): 'options.keepAlive' must be a boolean or undefined, received number 1"),
    );
    // Nothing was consumed: the handle can still be adopted (here, in this thread).
    using adopted = adoptToken(shared.handle);
    expect(adopted.isCancelled).toBe(false);
    shared[Symbol.dispose]();
  });

  it("a same-thread adoption sees the cancel synchronously and the reason after a turn", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle);
    token.cancel("now");
    expect(adopted.isCancelled).toBe(true);
    expect(adopted.reason).toBeUndefined();
    expect(await adopted.cancelled()).toBe("now");
    expect(adopted.reason).toBe("now");
  });
});

/*
 * Both sides in this thread: the adopter's side is observable here (a worker
 * runs the built package). Messages between the ports need event-loop turns,
 * not time: `turns()` lets the loop run until the expected state holds.
 */
type NodePort = MessagePort & { hasRef(): boolean };

async function turns(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (predicate()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never: ${what}`);
}

/** Resolves once `port` closed (both sides of a share close their port when it ends). */
function closed(port: MessagePort): Promise<void> {
  return new Promise((resolve) => port.addEventListener("close", () => resolve(), { once: true }));
}

describe("SharedToken adopted in the same thread", () => {
  it("SharedToken.throwIfCancelled() throws nothing while live, a stand-in before the reason arrived, then the reason itself", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle);
    expect(() => adopted.throwIfCancelled()).not.toThrow();
    const reason = new Error("stop");
    token.cancel(reason);
    let early: unknown;
    try {
      adopted.throwIfCancelled();
    } catch (error) {
      early = error;
    }
    expect(early).toBeInstanceOf(DOMException);
    expect(early).toMatchObject({
      name: "AbortError",
      message: "The operation was cancelled in another thread (its reason arrives when this thread yields)",
    });
    expect(adopted.signal.aborted).toBe(false);
    const arrived = await adopted.cancelled();
    expect(arrived).toMatchObject({ name: "Error", message: "stop" });
    expect(() => adopted.throwIfCancelled()).toThrow(arrived as Error);
    expect(adopted.token.reason).toBe(arrived);
    expect(adopted.signal.reason).toBe(arrived);
  });

  it("SharedToken receives a DOMException reason as a DOMException of the same name and message", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle);
    token.cancel(new DOMException("took too long", "TimeoutError"));
    const reason = await adopted.cancelled();
    expect(reason).toBeInstanceOf(DOMException);
    expect(reason).toMatchObject({ name: "TimeoutError", message: "took too long" });
  });

  it("SharedToken receives a reason that cannot be cloned as an AbortError that describes it", async () => {
    const cases: Array<[unknown, string]> = [
      [function named() {}, "function named"],
      [(() => () => {})(), "function (anonymous)"],
      [Symbol("why"), "Symbol(why)"],
      [new WeakMap(), "an instance of WeakMap"],
      [{ message: "bad input", retry: () => {} }, "an instance of Object: bad input"],
      [Object.assign(Object.create(null) as object, { f() {} }), "an instance of Object"],
    ];
    for (const [reason, description] of cases) {
      const token = new CancellationToken();
      const shared = shareToken(token);
      using adopted = adoptToken(shared.handle);
      token.cancel(reason);
      const arrived = await adopted.cancelled();
      expect(arrived).toBeInstanceOf(DOMException);
      expect(arrived).toMatchObject({
        name: "AbortError",
        message: `The operation was cancelled in another thread with a reason that cannot be cloned (${description})`,
      });
    }
  });

  it("adoptToken() unrefs the port unless keepAlive is set, and works where ports have no unref()", () => {
    const a = shareToken(new CancellationToken());
    const b = shareToken(new CancellationToken());
    const c = shareToken(new CancellationToken());
    using unrefed = adoptToken(a.handle);
    using kept = adoptToken(b.handle, { keepAlive: true });
    expect((a.handle.port as NodePort).hasRef()).toBe(false);
    expect((b.handle.port as NodePort).hasRef()).toBe(true);
    // A browser's MessagePort has no unref().
    Object.defineProperty(c.handle.port, "unref", { value: undefined });
    using plain = adoptToken(c.handle);
    expect((c.handle.port as NodePort).hasRef()).toBe(true);
    for (const share of [a, b, c]) share[Symbol.dispose]();
    expect(unrefed.isCancelled || kept.isCancelled || plain.isCancelled).toBe(false);
  });

  it("SharedToken.isCancelled reads the flag where ports have no ref()", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle);
    const port = shared.handle.port as NodePort;
    token.cancel("now");
    // A browser's MessagePort has no ref() (Node's own listeners need it, so only for this read).
    Object.defineProperty(port, "ref", { value: undefined, configurable: true });
    try {
      expect(adopted.isCancelled).toBe(true);
    } finally {
      delete (port as { ref?: unknown }).ref;
    }
    expect(await adopted.cancelled()).toBe("now");
  });

  it("SharedToken holds the thread once it saw the flag, until the reason arrived: isCancelled, cancelled() and throwIfCancelled() each", async () => {
    for (const look of ["isCancelled", "cancelled()", "throwIfCancelled()"] as const) {
      const token = new CancellationToken();
      const shared = shareToken(token);
      using adopted = adoptToken(shared.handle);
      const port = shared.handle.port as NodePort;
      const portClosed = closed(port);
      token.cancel("now");
      expect(port.hasRef()).toBe(false);
      if (look === "isCancelled") expect(adopted.isCancelled).toBe(true);
      else if (look === "cancelled()") void adopted.cancelled();
      else expect(() => adopted.throwIfCancelled()).toThrow(DOMException);
      expect(port.hasRef(), look).toBe(true);
      expect(await adopted.cancelled()).toBe("now");
      // The reason arrived: the port closes and holds nothing any more.
      await portClosed;
      expect(port.hasRef(), look).toBe(false);
    }
  });

  it("SharedToken does not hold the thread for a reason when its token was cancelled here already", () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle);
    adopted.token.cancel("here");
    token.cancel("there");
    expect(adopted.isCancelled).toBe(true);
    void adopted.cancelled();
    expect(() => adopted.throwIfCancelled()).toThrow("here");
    expect((shared.handle.port as NodePort).hasRef()).toBe(false);
  });

  it("SharedToken.isCancelled keeps reading the flag after this side was disposed, and its token never gets a reason posted after that", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const adopted = adoptToken(shared.handle);
    const portClosed = closed(shared.handle.port);
    adopted[Symbol.dispose]();
    // The release is a message: the origin has not seen it yet, and cancels.
    token.cancel("crossed");
    expect(adopted.isCancelled).toBe(true);
    expect(() => adopted.throwIfCancelled()).toThrow(DOMException);
    await portClosed;
    // Disposed first: the reason posted by the origin is not received here.
    expect(adopted.token.isCancelled).toBe(false);
    expect(adopted.reason).toBeUndefined();
  });

  it("SharedToken does not hold the thread before the flag is set", () => {
    const shared = shareToken(new CancellationToken());
    using adopted = adoptToken(shared.handle);
    expect(adopted.isCancelled).toBe(false);
    void adopted.cancelled();
    adopted.throwIfCancelled();
    expect((shared.handle.port as NodePort).hasRef()).toBe(false);
    shared[Symbol.dispose]();
  });

  it("SharedToken[Symbol.dispose]() releases the origin: the share ends and a later cancel does not reach this side", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const adopted = adoptToken(shared.handle, { keepAlive: true });
    const port = shared.handle.port as NodePort;
    const portClosed = closed(port);
    adopted[Symbol.dispose]();
    adopted[Symbol.dispose]();
    await portClosed;
    expect(port.hasRef()).toBe(false);
    await turns(() => !shared.isLive, "the origin saw the release");
    token.cancel("after release");
    expect(adopted.isCancelled).toBe(false);
    expect(adopted.token.isCancelled).toBe(false);
  });

  it("TokenShare[Symbol.dispose]() closes the adopter's port and leaves its token live", async () => {
    const token = new CancellationToken();
    const shared = shareToken(token);
    using adopted = adoptToken(shared.handle, { keepAlive: true });
    const port = shared.handle.port as NodePort;
    const portClosed = closed(port);
    expect(shared.isLive).toBe(true);
    shared[Symbol.dispose]();
    expect(shared.isLive).toBe(false);
    await portClosed;
    expect(port.hasRef()).toBe(false);
    token.cancel("after release");
    expect(adopted.isCancelled).toBe(false);
    expect(adopted.token.isCancelled).toBe(false);
    // The share ended on both sides: disposing this side now does nothing.
    expect(() => adopted[Symbol.dispose]()).not.toThrow();
  });
});
