/*
 * serve(): the coordinator's contract — options, idempotence, state,
 * several servers, attaching after listen(), and cleanliness.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { getEventListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { drainingToken, requestToken, serve, type ServeState } from "../../src/http/index.js";
import { connect, createServer, h2connect, h2request, heldServer, latch, listen, RawClient, tick, tryConnect, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

function okServer(): http.Server {
  return cleanup.add(http.createServer((_req, res) => res.end("ok")));
}

describe("serve() options", () => {
  it.each([
    ["a number target", 42, TypeError],
    ["an empty array", [], TypeError],
    ["a net.Server that is not HTTP", new net.Server(), TypeError],
  ])("serve() throws TypeError for %s", (_name, target, type) => {
    expect(() => serve(target as never)).toThrow(type);
  });

  it.each([
    [{ idleGraceMs: -1 }, RangeError, "Cannot call serve(): 'idleGraceMs' must be a finite number >= 0, received number -1"],
    [{ drainTimeoutMs: Number.POSITIVE_INFINITY }, RangeError, "'drainTimeoutMs' must be a finite number >= 0"],
    [{ drainTimeoutMS: 5000 }, TypeError, "Cannot call serve(): unknown option 'drainTimeoutMS' (did you mean 'drainTimeoutMs'?)"],
    [{ forceAnswerMs: true }, TypeError, "Cannot call serve(): 'forceAnswerMs' must be a finite number >= 0, received boolean true"],
    [{ idleGraceMs: "1000" }, TypeError, "received string \"1000\""],
    [{ signal: "SIGTERM" }, TypeError, "'signal' must be an AbortSignal, a CancellationToken or undefined"],
  ])("serve() rejects %j before any side effect", (options, type, message) => {
    const server = okServer();
    const connectionListeners = server.listenerCount("connection");
    expect(() => serve(server, options as never)).toThrow(type);
    expect(() => serve(server, options as never)).toThrow(message);
    // Nothing was attached: the server can still be served.
    expect(server.listenerCount("connection")).toBe(connectionListeners);
    expect(() => serve(server)).not.toThrow();
  });

  it("serve() accepts a beforeCloseMs past 2³¹−1 ms and keeps serving through it (timers are chained, not fired early)", async () => {
    const server = okServer();
    await listen(server);
    const graceful = serve(server, { beforeCloseMs: 2 ** 32 });
    const done = graceful.shutdown();
    await new Promise((resolve) => setImmediate(resolve));
    expect({ state: graceful.state.borrow(), isReady: graceful.isReady, listening: server.listening }).toEqual({ state: "serving", isReady: false, listening: true });
    const report = await graceful.force();
    expect(report).toBe(await done);
    expect(server.listening).toBe(false);
  });

  it("serve() throws TypeError when options is not an object", () => {
    expect(() => serve(okServer(), 5 as never)).toThrow(TypeError);
  });

  it("serve() throws TypeError for a server already served, and for duplicates in an array", () => {
    const server = okServer();
    serve(server);
    expect(() => serve(server)).toThrow("a server not already served");
    const other = okServer();
    expect(() => serve([other, other])).toThrow(TypeError);
  });

  it("requestToken() throws TypeError for an object that is not a served request", () => {
    expect(() => requestToken({} as never)).toThrow(TypeError);
    expect(() => drainingToken(null as never)).toThrow(/Cannot get drainingToken\(\)/);
  });
});

describe("serve() lifecycle", () => {
  it("serve(listener) creates an http.Server that is not listening yet", () => {
    const graceful = serve((_req, res) => res.end("ok"));
    cleanup.add(graceful.server as http.Server);
    expect(graceful.server).toBeInstanceOf(http.Server);
    expect(graceful.servers).toEqual([graceful.server]);
    expect(graceful.server.listening).toBe(false);
    expect(graceful.isReady).toBe(false);
  });

  it("shutdown() before listen resolves with an empty report and state closed", async () => {
    const graceful = serve(okServer());
    const report = await graceful.shutdown();
    expect(report).toMatchObject({
      listenerClosedMs: null,
      lastRequestMs: null,
      requestsCompletedWhileDraining: 0,
      connectionsClosedGracefully: 0,
      connectionsForced: 0,
      sessionsSentGoaway: 0,
      upgradesNotified: 0,
      upgradesForced: 0,
      deadlineHit: false,
    });
    expect(graceful.state.borrow()).toBe("closed");
  });

  it("shutdown() returns the same promise on every call", async () => {
    const server = okServer();
    const graceful = serve(server);
    await listen(server);
    const first = graceful.shutdown();
    expect(graceful.shutdown()).toBe(first);
    await first;
    expect(graceful.shutdown()).toBe(first);
  });

  it("state goes serving → draining → closed, observable through the watch receiver", async () => {
    const server = okServer();
    const graceful = serve(server, { beforeCloseMs: 5 });
    await listen(server);
    const states: ServeState[] = [];
    const following = (async () => {
      for await (const state of graceful.state.clone()) states.push(state);
    })();
    expect(graceful.state.borrow()).toBe("serving");
    const report = await graceful.shutdown();
    await following;
    expect(states).toEqual(["serving", "draining", "closed"]);
    expect(report.deadlineHit).toBe(false);
  });

  it("a cancelled signal starts the shutdown, and its reason reaches drainingToken()", async () => {
    const stop = new CancellationToken();
    const arrived = latch();
    let draining: CancellationToken | undefined;
    const server = cleanup.add(
      http.createServer((req, res) => {
        draining = drainingToken(req);
        draining.onCancel(() => res.end("bye"));
        arrived.release();
      }),
    );
    const graceful = serve(server, { signal: stop });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(new net.Socket().connect(port, "127.0.0.1")));
    client.get("/");
    await arrived.promise;
    stop.cancel("SIGTERM");
    expect(graceful.state.borrow()).toBe("draining");
    expect(draining!.reason).toBe("SIGTERM");
    // Its headers were unsent when the drain started.
    expect((await client.response(1)).headers.connection).toBe("close");
    await graceful.state.waitFor((state) => state === "closed");
  });

  it("an already aborted AbortSignal shuts down at once", async () => {
    const server = okServer();
    await listen(server);
    const graceful = serve(server, { signal: AbortSignal.abort("now") });
    expect(graceful.state.borrow()).toBe("draining");
    await graceful.shutdown();
    expect(server.listening).toBe(false);
  });

  it("await using shuts down at scope exit", async () => {
    const server = okServer();
    const port = await listen(server);
    {
      await using graceful = serve(server);
      expect(graceful.isReady).toBe(true);
    }
    expect(await tryConnect(port)).toBe("ECONNREFUSED");
  });

  it("a server the application closes itself closes its coordinator, which lets go of the signal, the listeners and the channels", async () => {
    const stop = new AbortController();
    const server = okServer();
    const before = server.eventNames().map((name) => [name, server.listenerCount(name)]);
    const graceful = serve(server, { signal: stop.signal });
    await listen(server);
    expect(getEventListeners(stop.signal, "abort")).toHaveLength(1);
    expect(diagnosticsChannel.hasSubscribers("http.server.request.start")).toBe(true);
    await new Promise((resolve) => server.close(resolve));
    // Our 'close' listener ran before the one close() added.
    expect(graceful.state.borrow()).toBe("closed");
    expect(await graceful.shutdown()).toMatchObject({ listenerClosedMs: null, connectionsClosedGracefully: 0, connectionsForced: 0, deadlineHit: false });
    expect(getEventListeners(stop.signal, "abort")).toHaveLength(0);
    expect(diagnosticsChannel.hasSubscribers("http.server.request.start")).toBe(false);
    expect(diagnosticsChannel.hasSubscribers("http.server.response.finish")).toBe(false);
    expect(server.eventNames().map((name) => [name, server.listenerCount(name)])).toEqual(before);
    // Served anew, it drains as usual.
    const again = serve(server);
    const port = await listen(server);
    expect((await again.shutdown()).listenerClosedMs).not.toBeNull();
    expect(await tryConnect(port)).toBe("ECONNREFUSED");
  });

  it("a server the application closes keeps its coordinator serving until Node reports its last connection gone", async () => {
    const { server, arrived, respond } = heldServer(cleanup);
    const graceful = serve(server);
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await arrived;
    const closed = new Promise((resolve) => server.close(resolve));
    await tick(20);
    // Not listening, but a request is in flight: nothing has started.
    expect(graceful.state.borrow()).toBe("serving");
    expect(graceful.isReady).toBe(false);
    respond();
    expect((await client.response(1)).body).toBe("ok");
    expect(graceful.state.borrow()).toBe("serving");
    client.socket.destroy();
    await closed;
    expect(graceful.state.borrow()).toBe("closed");
    expect((await graceful.shutdown()).deadlineHit).toBe(false);
  });

  it.each(["http", "https", "h2c", "h2"] as const)("%s: after a request, the client leaving and server.close(), the coordinator is closed", async (protocol) => {
    const server = cleanup.add(createServer(protocol, (_req, res) => res.end("ok")));
    const graceful = serve(server);
    const port = await listen(server);
    if (protocol === "h2c" || protocol === "h2") {
      const session = cleanup.add(await h2connect(protocol, port));
      expect((await h2request(session, "/").done).body).toBe("ok");
      session.close();
    } else {
      const client = new RawClient(cleanup.add(await connect(protocol, port)));
      client.get("/");
      expect((await client.response(1)).body).toBe("ok");
      client.socket.end();
    }
    await new Promise((resolve) => server.close(resolve));
    expect(graceful.state.borrow()).toBe("closed");
    expect(await graceful.shutdown()).toMatchObject({ listenerClosedMs: null, connectionsClosedGracefully: 0, connectionsForced: 0 });
  });

  it("of several servers, the coordinator closes once the application closed the last one", async () => {
    const first = okServer();
    const second = okServer();
    const graceful = serve([first, second]);
    await listen(first);
    await listen(second);
    await new Promise((resolve) => first.close(resolve));
    expect(graceful.state.borrow()).toBe("serving");
    await new Promise((resolve) => second.close(resolve));
    expect(graceful.state.borrow()).toBe("closed");
  });

  it("a server closed, listening again and closed with a request in flight keeps the coordinator serving", async () => {
    const { server: first, arrived, respond } = heldServer(cleanup);
    const second = okServer();
    const graceful = serve([first, second]);
    await listen(first);
    await listen(second);
    await new Promise((resolve) => first.close(resolve));
    // Its earlier 'close' no longer counts once it listens again.
    const port = await listen(first);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await arrived;
    const firstClosed = new Promise((resolve) => first.close(resolve));
    await new Promise((resolve) => second.close(resolve));
    expect(graceful.state.borrow()).toBe("serving");
    respond();
    expect((await client.response(1)).body).toBe("ok");
    client.socket.destroy();
    await firstClosed;
    expect(graceful.state.borrow()).toBe("closed");
  });

  it("every listener serve() added is removed once closed", async () => {
    const server = okServer();
    const before = server.eventNames().map((name) => [name, server.listenerCount(name)]);
    const graceful = serve(server);
    server.on("upgrade", () => {});
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await client.response(1);
    await graceful.shutdown();
    server.removeAllListeners("upgrade");
    expect(server.eventNames().map((name) => [name, server.listenerCount(name)])).toEqual(before);
  });

  it("after shutdown no socket, server or timer of ours keeps the process alive", async () => {
    const server = okServer();
    const graceful = serve(server, { idleGraceMs: 20 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await client.response(1);
    const baseline = process.getActiveResourcesInfo().filter((type) => type === "TCPServerWrap").length;
    expect(baseline).toBeGreaterThanOrEqual(1);
    await graceful.shutdown();
    await client.ended();
    await new Promise((resolve) => setImmediate(resolve));
    const resources = process.getActiveResourcesInfo();
    expect(resources.filter((type) => type === "TCPServerWrap").length).toBe(baseline - 1);
    expect(resources.filter((type) => type === "TCPSocketWrap").length).toBe(0);
  });
});

describe("requestToken() and drainingToken()", () => {
  it("drainingToken() is cancelled when the client goes away, with the request token's reason", async () => {
    const arrived = latch();
    let req: http.IncomingMessage | undefined;
    const server = cleanup.add(
      http.createServer((request) => {
        req = request;
        arrived.release();
      }),
    );
    serve(server);
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await arrived.promise;
    const draining = drainingToken(req!);
    expect(drainingToken(req!)).toBe(draining);
    client.socket.destroy();
    const reason = await draining.cancelled();
    expect(reason).toBe(requestToken(req!).reason);
  });

  it("requestToken() asked for after the response finished is never cancelled", async () => {
    const finished = latch();
    let req: http.IncomingMessage | undefined;
    const server = cleanup.add(
      http.createServer((request, res) => {
        req = request;
        res.on("finish", () => finished.release());
        res.end("ok");
      }),
    );
    const graceful = serve(server, { idleGraceMs: 60_000, drainTimeoutMs: 30 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await client.response(1);
    await finished.promise;
    const late = requestToken(req!);
    expect((await graceful.shutdown()).deadlineHit).toBe(true);
    expect(late.isCancelled).toBe(false);
  });
});

describe("while serving", () => {
  it("a request token taken while serving is disposed when its response finishes, before any shutdown", async () => {
    const gate = latch();
    let token: CancellationToken | undefined;
    const server = cleanup.add(
      http.createServer((req, res) => {
        token = requestToken(req);
        void gate.promise.then(() => res.end("ok"));
      }),
    );
    const graceful = serve(server, { idleGraceMs: 60_000, drainTimeoutMs: 30 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await new Promise((resolve) => setTimeout(resolve, 20));
    gate.release();
    await client.response(1);
    // The deadline cancels the lifetime token: a token still attached to it would be cancelled.
    expect((await graceful.shutdown()).deadlineHit).toBe(true);
    expect(token!.isCancelled).toBe(false);
  });

  it("keep-alive responses finished while serving leave the connection idle at drain start", async () => {
    const server = okServer();
    const graceful = serve(server, { idleGraceMs: 20 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    for (let i = 1; i <= 3; i++) {
      client.get("/");
      expect((await client.response(i)).headers.connection).toBe("keep-alive");
    }
    const report = await graceful.shutdown();
    await client.ended();
    expect(client.error).toBeNull();
    expect(report).toMatchObject({ requestsCompletedWhileDraining: 0, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("a request in flight behind finished ones is announced and counted at drain start", async () => {
    const gate = latch();
    const started = latch();
    let n = 0;
    const server = cleanup.add(
      http.createServer((_req, res) => {
        if (++n < 3) {
          res.end("ok");
          return;
        }
        started.release();
        void gate.promise.then(() => res.end("late"));
      }),
    );
    const graceful = serve(server, { idleGraceMs: 60_000 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await client.response(1);
    client.get("/");
    await client.response(2);
    client.get("/");
    await started.promise;
    const done = graceful.shutdown();
    gate.release();
    expect((await client.response(3)).headers.connection).toBe("close");
    await client.ended();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });
});

describe("how requests are seen", () => {
  it("a finished response is not kept while its keep-alive connection stays open", async () => {
    let last: WeakRef<http.ServerResponse> | undefined;
    const server = cleanup.add(
      http.createServer((_req, res) => {
        last = new WeakRef(res);
        res.end("ok");
      }),
    );
    const graceful = serve(server, { idleGraceMs: 20 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await client.response(1);
    for (let i = 0; i < 3 && last!.deref() !== undefined; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      (globalThis as { gc?: () => void }).gc!();
    }
    expect(last!.deref()).toBeUndefined();
    expect(client.closed).toBe(false);
    // The connection is still tracked: the drain closes it as idle.
    const report = await graceful.shutdown();
    await client.ended();
    expect(report).toMatchObject({ connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("a served connection carries one symbol-keyed property of ours, set when it connects; an unserved one none", async () => {
    const ours = (socket: net.Socket) => Object.getOwnPropertySymbols(socket).filter((key) => key.description === "cancelkit.conn");
    const seen: Array<{ keys: symbol[]; value: unknown; names: string[] }> = [];
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const keys = ours(req.socket);
      seen.push({ keys, value: keys.length === 1 ? (req.socket as unknown as Record<symbol, unknown>)[keys[0]!] : undefined, names: Object.keys(req.socket) });
      res.end("ok");
    };
    const served = cleanup.add(http.createServer(handler));
    serve(served);
    const bare = cleanup.add(http.createServer(handler));
    const client = new RawClient(cleanup.add(net.connect(await listen(served), "127.0.0.1")));
    client.get("/");
    client.get("/");
    await client.response(2);
    const other = new RawClient(cleanup.add(net.connect(await listen(bare), "127.0.0.1")));
    other.get("/");
    await other.response(1);
    expect(seen.map((s) => s.keys.length)).toEqual([1, 1, 0]);
    // The same value on both requests of the connection: set once, when it connected.
    expect(seen[0]!.value).toBeDefined();
    expect(seen[1]!.value).toBe(seen[0]!.value);
    // Not a string key: Object.keys, JSON and for-in do not see it.
    expect(seen[0]!.names).toEqual(seen[2]!.names);
  });

  it("serve() adds no 'checkContinue' / 'checkExpectation' listener of its own: Node still answers Expect itself", async () => {
    const server = okServer();
    serve(server);
    expect(server.listenerCount("checkContinue")).toBe(0);
    expect(server.listenerCount("checkExpectation")).toBe(0);
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/", "Expect: 100-continue\r\n");
    expect((await client.response(1)).status).toBe(100);
    expect((await client.response(2)).status).toBe(200);
    client.get("/", "Expect: something-else\r\n");
    expect((await client.response(3)).status).toBe(417);
  });

  it.each([
    ["checkContinue", "100-continue"],
    ["checkExpectation", "something-else"],
  ] as const)("a request the application takes through '%s' is seen: announced and counted at drain start", async (event, expectation) => {
    const gate = latch();
    const started = latch();
    const server = okServer();
    const graceful = serve(server, { idleGraceMs: 60_000 });
    // Added after serve(), which adds no listener of its own for it.
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      started.release();
      void gate.promise.then(() => res.end("late"));
    };
    server.on(event, handler);
    expect(server.listenerCount(event)).toBe(1);
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/", `Expect: ${expectation}\r\n`);
    await started.promise;
    const done = graceful.shutdown();
    gate.release();
    const response = await client.response(1);
    expect(response.body).toBe("late");
    expect(response.headers.connection).toBe("close");
    await client.ended();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
    server.off(event, handler);
    expect(server.listenerCount(event)).toBe(0);
  });

  it("an HTTP/2 server used through 'stream' only gets no 'request' listener (no compatibility layer), and still drains", async () => {
    const server = cleanup.add(http2.createServer());
    const gate = latch();
    server.on("stream", (stream) => {
      void gate.promise.then(() => {
        stream.respond({ ":status": 200 });
        stream.end("late");
      });
    });
    const graceful = serve(server, { idleGraceMs: 60_000 });
    expect(server.listenerCount("request")).toBe(0);
    const port = await listen(server);
    const session = cleanup.add(http2.connect(`http://127.0.0.1:${port}`));
    const stream = session.request({ ":path": "/" });
    let body = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (body += chunk));
    const ended = new Promise((resolve) => stream.on("end", resolve));
    await new Promise((resolve) => stream.once("response", resolve).once("ready", resolve));
    const done = graceful.shutdown();
    gate.release();
    await ended;
    expect(body).toBe("late");
    expect(await done).toMatchObject({ deadlineHit: false, connectionsForced: 0 });
  });

  it("a token asked for by a 'request' listener prepended after serve() follows its response", async () => {
    const gate = latch();
    const tokens: CancellationToken[] = [];
    const server = cleanup.add(http.createServer((_req, res) => void gate.promise.then(() => res.end("ok"))));
    const graceful = serve(server, { idleGraceMs: 60_000 });
    // Runs before any other listener; the request is known already.
    server.prependListener("request", (req: http.IncomingMessage) => tokens.push(requestToken(req), drainingToken(req)));
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await until(() => tokens.length === 2);
    await tick(10);
    const [request, draining] = tokens as [CancellationToken, CancellationToken];
    const done = graceful.shutdown();
    // In flight, so told at drain start (a request taken for finished would not be).
    const told = await Promise.race([draining.cancelled().then(() => "told"), tick(1000).then(() => "not told")]);
    expect(told).toBe("told");
    gate.release();
    expect((await client.response(1)).headers.connection).toBe("close");
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, deadlineHit: false });
    expect(request.isCancelled).toBe(false);
  });

  it("a token asked for an old request whose body was never read, after its response finished, is never cancelled", async () => {
    let req: http.IncomingMessage | undefined;
    const finished = latch();
    const server = cleanup.add(
      http.createServer((request, res) => {
        req = request;
        res.on("finish", () => finished.release());
        res.end("early"); // answered before the body arrived
      }),
    );
    const graceful = serve(server, { idleGraceMs: 60_000, drainTimeoutMs: 30 });
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.socket.write("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc");
    await client.response(1);
    await finished.promise;
    expect(req!.complete).toBe(false);
    const late = requestToken(req!);
    expect((await graceful.shutdown()).deadlineHit).toBe(true);
    expect(late.isCancelled).toBe(false);
  });
});

async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe("serve() over several servers", () => {
  it("drains http, https and h2 together with one report", async () => {
    const { tlsMaterial } = await import("./helpers.js");
    const gate = latch();
    let inFlight = 0;
    const all = latch();
    const handler = (_req: unknown, res: { end(body: string): void }): void => {
      if (++inFlight === 3) all.release();
      void gate.promise.then(() => res.end("done"));
    };
    const servers = [
      cleanup.add(createServer("http", handler as never)),
      cleanup.add(createServer("https", handler as never)),
      cleanup.add(http2.createSecureServer(tlsMaterial(), handler as never)),
    ];
    const graceful = serve(servers as never);
    const ports = await Promise.all(servers.map((server) => listen(server)));
    const { connect, h2connect, h2request } = await import("./helpers.js");
    const a = new RawClient(cleanup.add(await connect("http", ports[0]!)));
    const b = new RawClient(cleanup.add(await connect("https", ports[1]!)));
    const c = cleanup.add(await h2connect("h2", ports[2]!));
    a.get("/");
    b.get("/");
    const { done: h2done } = h2request(c, "/");
    await all.promise;
    const done = graceful.shutdown();
    expect(await Promise.all(ports.map(tryConnect))).toEqual(["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED"]);
    gate.release();
    expect((await a.response(1)).headers.connection).toBe("close");
    expect((await b.response(1)).headers.connection).toBe("close");
    expect((await h2done).status).toBe(200);
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 3, connectionsClosedGracefully: 3, sessionsSentGoaway: 1, connectionsForced: 0 });
  });
});

describe("serve() attached after listen()", () => {
  it("adopts a keep-alive connection accepted before it on its next request", async () => {
    const server = okServer();
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    expect((await client.response(1)).headers.connection).toBe("keep-alive");
    const graceful = serve(server, { idleGraceMs: 20 });
    const done = graceful.shutdown();
    client.get("/");
    expect((await client.response(2)).headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0 });
  });
});
