import { EventEmitter, getEventListeners, once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import vm from "node:vm";
import { CancellationToken } from "../../src/cancel/index.js";
import { oneshot, select } from "../../src/index.js";
import { deferred, flush, stateOf } from "./helpers.js";

const abortListeners = (signal: AbortSignal): number => getEventListeners(signal, "abort").length;

/** Node's own APIs reject with an AbortError whose `cause` is the signal's reason. */
function expectNodeAbort(error: unknown, reason: unknown): void {
  expect((error as Error).name).toBe("AbortError");
  expect((error as Error & { cause?: unknown }).cause).toBe(reason);
}

describe("token.signal with fetch", () => {
  let server: Server | undefined;

  afterEach(async () => {
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    }
  });

  async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it("signal aborts a fetch while the body is streaming, and the server sees the connection go", async () => {
    const serverSawClose = deferred<void>();
    const headersSent = deferred<void>();
    const url = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first chunk\n"); // then never end
      headersSent.resolve();
      res.on("close", () => serverSawClose.resolve());
    });
    const token = new CancellationToken();
    const response = await fetch(url, { signal: token.signal });
    await headersSent.promise;
    expect(response.status).toBe(200);
    const body = response.text();
    expect(await stateOf(body)).toBe("pending");
    const reason = new Error("client gave up");
    token.cancel(reason);
    await expect(body).rejects.toBe(reason);
    await serverSawClose.promise;
  });

  it("signal aborts a fetch that is waiting for response headers", async () => {
    const requestArrived = deferred<void>();
    const serverSawClose = deferred<void>();
    const url = await listen((_req, res) => {
      requestArrived.resolve();
      res.on("close", () => serverSawClose.resolve());
    });
    const parent = new CancellationToken();
    const request = parent.child();
    const pending = fetch(url, { signal: request.signal });
    await requestArrived.promise;
    parent.cancel("shutdown");
    await expect(pending).rejects.toBe("shutdown");
    await serverSawClose.promise;
  });

  it("fetch with an already-cancelled token's signal rejects without sending anything", async () => {
    let requests = 0;
    const url = await listen((_req, res) => {
      requests++;
      res.end();
    });
    await expect(fetch(url, { signal: CancellationToken.alreadyCancelled("nope").signal })).rejects.toBe("nope");
    await flush();
    expect(requests).toBe(0);
  });
});

describe("token.signal with timers/promises", () => {
  it("signal rejects a pending timers/promises setTimeout and clears it", async () => {
    const token = new CancellationToken();
    const wait = sleep(60_000, "value", { signal: token.signal });
    expect(await stateOf(wait)).toBe("pending");
    expect(abortListeners(token.signal)).toBe(1);
    token.cancel("stop");
    const error = await wait.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectNodeAbort(error, "stop");
    expect(abortListeners(token.signal)).toBe(0);
  });

  it("signal of a token that times out aborts a longer sleep", async () => {
    const token = CancellationToken.timeout(1);
    const error = await sleep(60_000, undefined, { signal: token.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((token.reason as DOMException).name).toBe("TimeoutError");
    expectNodeAbort(error, token.reason);
  });
});

describe("token.signal with events.once", () => {
  it("signal rejects events.once and removes its listener from the emitter", async () => {
    const emitter = new EventEmitter();
    const token = new CancellationToken();
    const waiting = once(emitter, "ready", { signal: token.signal });
    expect(emitter.listenerCount("ready")).toBe(1);
    const reason = new Error("gave up");
    token.cancel(reason);
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectNodeAbort(error, reason);
    expect(emitter.listenerCount("ready")).toBe(0);
    expect(emitter.listenerCount("error")).toBe(0);
  });

  it("events.once resolves normally when the event comes first, and leaves no abort listener", async () => {
    const emitter = new EventEmitter();
    const token = new CancellationToken();
    const waiting = once(emitter, "ready", { signal: token.signal });
    emitter.emit("ready", 1, 2);
    await expect(waiting).resolves.toEqual([1, 2]);
    expect(abortListeners(token.signal)).toBe(0);
    token.cancel();
  });
});

describe("token.signal with stream.pipeline", () => {
  it("signal aborts a running pipeline and destroys its streams", async () => {
    const token = new CancellationToken();
    const source = new Readable({ read() {} }); // never ends
    const middle = new PassThrough();
    const received: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received.push(chunk.toString());
        callback();
      },
    });
    const running = pipeline(source, middle, sink, { signal: token.signal });
    source.push("a");
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(received).toEqual(["a"]);
    token.cancel("stop streaming");
    const error = await running.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectNodeAbort(error, "stop streaming");
    expect(source.destroyed && middle.destroyed && sink.destroyed).toBe(true);
  });
});

describe("token.signal with AbortSignal.any", () => {
  it("AbortSignal.any([token.signal]) aborts with the token's reason", () => {
    const parent = new CancellationToken();
    const child = parent.child();
    const other = new AbortController();
    const combined = AbortSignal.any([child.signal, other.signal]);
    expect(combined.aborted).toBe(false);
    const reason = new Error("parent cancelled");
    parent.cancel(reason);
    expect(combined.aborted).toBe(true);
    expect(combined.reason).toBe(reason);
  });

  it("a token from AbortSignal.any([token.signal]) closes the loop back to a token", () => {
    const root = new CancellationToken();
    const combined = AbortSignal.any([root.signal]);
    const derived = CancellationToken.from(combined);
    root.cancel("round trip");
    expect(derived.reason).toBe("round trip");
    expect(abortListeners(combined)).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// A real AbortSignal whose prototype chain belongs to another realm (what a
// signal from an iframe looks like to `instanceof`): accepted by brand.
// A look-alike (no internal slots) is still refused.

/** A real signal re-parented onto a prototype made in another realm (node:vm), with the same methods. */
function foreignRealmSignal(controller: AbortController): AbortSignal {
  const proto = vm.runInNewContext("Object.create(Object.prototype)") as object;
  // Every own property, `constructor` included: Node's EventTarget methods
  // recognise their receiver through its constructor.
  for (const from of [EventTarget.prototype, AbortSignal.prototype]) {
    for (const key of Reflect.ownKeys(from)) Object.defineProperty(proto, key, Object.getOwnPropertyDescriptor(from, key)!);
  }
  Object.setPrototypeOf(controller.signal, proto);
  return controller.signal;
}

describe("AbortSignals from another realm", () => {
  it("CancellationToken.from() and any() accept an AbortSignal from another realm by brand, and follow it without leaking", () => {
    const controller = new AbortController();
    const signal = foreignRealmSignal(controller);
    expect(signal instanceof AbortSignal).toBe(false);
    const followed = CancellationToken.from(signal);
    const any = CancellationToken.any([signal]);
    expect(getEventListeners(signal, "abort")).toHaveLength(1);
    controller.abort("gone");
    expect(followed.reason).toBe("gone");
    expect(any.reason).toBe("gone");
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("a { signal } option accepts an AbortSignal from another realm by brand", async () => {
    const controller = new AbortController();
    const signal = foreignRealmSignal(controller);
    const [, rx] = oneshot<number>();
    const pending = rx.recv({ signal });
    controller.abort("stop");
    await expect(pending).rejects.toBe("stop");
    await expect(select({ signal, never: new CancellationToken() })).resolves.toEqual({ key: "signal", value: "stop" });
  });

  it("an AbortSignal look-alike without the internal slots is still a TypeError", () => {
    const fake = Object.create(AbortSignal.prototype) as AbortSignal;
    expect(() => CancellationToken.from(fake)).toThrow(TypeError);
    const [, rx] = oneshot<number>();
    expect(() => rx.recv({ signal: fake })).toThrow(TypeError);
  });
});
