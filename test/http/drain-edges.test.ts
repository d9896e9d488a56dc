/*
 * serve() against clients that time their requests badly (issue 16): a
 * request that crosses our FIN, headers that pause mid-way, HTTP/2 sessions
 * older than serve(), a listen() still resolving, force(), a moment to
 * answer at the deadline, and the exact public surface.
 *
 * Each test gathers what it observed into one object and compares it once,
 * so a failure shows every outcome side by side. Waits are for events; the
 * few bounded waits (`within`) are for an event that must *not* happen, or
 * that the code under test may never produce.
 */
import { EventEmitter } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { isShutdownTimeoutError } from "../../src/index.js";
import { drainingToken, requestToken, serve, type GracefulServer, type ShutdownReport } from "../../src/http/index.js";
import { createServer, h2connect, h2request, latch, listen, RawClient, type H2Protocol, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

/** Every test here uses real sockets; none may wait for a 30 s default. */
const TIMEOUT = 10_000;

/** The API issue 16 adds, not yet in the types. */
interface Forceable {
  force(reason?: unknown): Promise<ShutdownReport>;
}
interface NewReport {
  requestsRefusedAfterClose?: number;
}

function refused(report: ShutdownReport): number | undefined {
  return (report as unknown as NewReport).requestsRefusedAfterClose;
}

/** `true` when `promise` settles within `ms`; its timer is cleared either way. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves on `emitter`'s next `event`, or with `false` after `ms`; removes its listener either way. */
async function nextEvent(emitter: EventEmitter, event: string, ms: number): Promise<boolean> {
  let listener: (() => void) | undefined;
  const seen = new Promise<void>((resolve) => {
    listener = () => resolve();
    emitter.once(event, listener);
  });
  try {
    return await within(seen, ms);
  } finally {
    emitter.removeListener(event, listener!);
  }
}

/** A raw HTTP/1 client that, like a client whose request was already written, can still write after our FIN. */
async function openHalfOpen(port: number): Promise<RawClient> {
  const socket = cleanup.add(net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return new RawClient(socket);
}

async function open(port: number): Promise<RawClient> {
  const socket = cleanup.add(net.connect(port, "127.0.0.1"));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return new RawClient(socket);
}

/** Tries a new TCP connection to `host`; resolves with the error code, or "connected". */
function tryConnectTo(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

/**
 * An HTTP/1 server that counts its handler's calls by path, answers at once
 * (a POST once its body is read, with the body's length), and resolves
 * `connected` on its first accepted connection.
 */
function countingServer(): { server: http.Server; calls: Map<string, number>; connected: Promise<void> } {
  const calls = new Map<string, number>();
  const connected = latch();
  const server = cleanup.add(
    http.createServer((req, res) => {
      calls.set(req.url!, (calls.get(req.url!) ?? 0) + 1);
      if (req.method === "POST") {
        let length = 0;
        req.on("data", (chunk: Buffer) => (length += chunk.length));
        req.on("end", () => res.end(`received ${length}`));
      } else {
        res.end("ok");
      }
    }),
  );
  server.on("connection", () => connected.release());
  return { server, calls, connected: connected.promise };
}

// ---------------------------------------------------------------------------
// Defect 1: a request that arrives after our FIN

describe("serve(): a request that arrives after our FIN", () => {
  const late = {
    GET: "GET /late HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    POST: "POST /late HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
  };

  it.each(["GET", "POST"] as const)(
    "serve() never hands a %s that arrives after its FIN to a handler; the client sees the connection close with no response, and the report counts it",
    async (method) => {
      const { server, calls } = countingServer();
      const graceful = serve(server, { idleGraceMs: 100, drainTimeoutMs: 5000 });
      const port = await listen(server);
      const client = await openHalfOpen(port);
      client.get("/first");
      expect((await client.response(1)).headers.connection).toBe("keep-alive");
      const done = graceful.shutdown();
      // Our FIN after the idle grace.
      await client.until(() => client.gotEnd);
      const bytesAtFin = client.socket.bytesRead;
      // The request crosses the FIN; then the client's own FIN, as a Node
      // socket sends once it reads ours.
      client.socket.end(late[method]);
      await client.ended();
      const report = await done;
      expect({
        handlerCallsForLate: calls.get("/late") ?? 0,
        responseBytesAfterFin: client.socket.bytesRead - bytesAtFin,
        responses: client.responses.length,
        closed: client.closed,
        requestsRefusedAfterClose: refused(report),
        deadlineHit: report.deadlineHit,
        connectionsForced: report.connectionsForced,
      }).toEqual({
        handlerCallsForLate: 0,
        responseBytesAfterFin: 0,
        responses: 1,
        closed: true,
        requestsRefusedAfterClose: 1,
        deadlineHit: false,
        connectionsForced: 0,
      });
    },
    TIMEOUT,
  );

  it(
    "serve() never hands an http.Agent keep-alive POST written the instant its FIN left to a handler, and counts it refused",
    async () => {
      const { server, calls } = countingServer();
      let serverSocket: net.Socket | undefined;
      server.on("connection", (socket: net.Socket) => (serverSocket = socket));
      const graceful = serve(server, { idleGraceMs: 100, drainTimeoutMs: 5000 });
      const port = await listen(server);
      const agent = cleanup.add(new http.Agent({ keepAlive: true, maxSockets: 1 }));
      const freed = nextEvent(agent, "free", 2000);
      const first = await new Promise<string | undefined>((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: "/first", agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.headers.connection));
        }).on("error", reject);
      });
      expect(first).toBe("keep-alive");
      expect(await freed).toBe(true);
      const outcome = new Promise<{ status?: number; error?: string }>((resolve) => {
        // In the callback of our FIN's shutdown: the pooled socket has not
        // read the FIN yet, so the agent reuses it and the request is
        // written behind the FIN (a client reusing at the grace boundary).
        serverSocket!.once("finish", () => {
          const req = http.request({ host: "127.0.0.1", port, path: "/late", method: "POST", agent }, (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode! }));
          });
          req.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
          req.end("hello");
        });
      });
      const done = graceful.shutdown();
      const result = await outcome;
      const report = await done;
      // Usually the request is written on the pooled socket behind our FIN
      // and refused there; when the agent has already read the FIN it opens
      // a new connection instead, which the closed listener refuses. Either
      // way nothing ran and the client got no response.
      const wentToNewConnection = result.error === "ECONNREFUSED";
      expect({
        handlerCallsForLate: calls.get("/late") ?? 0,
        gotResponse: result.status !== undefined,
        requestsRefusedAfterClose: refused(report),
        deadlineHit: report.deadlineHit,
      }).toEqual({
        handlerCallsForLate: 0,
        gotResponse: false,
        requestsRefusedAfterClose: wentToNewConnection ? 0 : 1,
        deadlineHit: false,
      });
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// Defect 2: a request still arriving is in flight, not idle

describe("serve(): a request still arriving during the drain", () => {
  const GRACE = 100;

  it(
    "serve() does not end a connection whose request headers pause mid-way for several idle graces; the request is answered with Connection: close",
    async () => {
      const { server, calls, connected } = countingServer();
      const graceful = serve(server, { idleGraceMs: GRACE, drainTimeoutMs: 8000 });
      const port = await listen(server);
      const client = await open(port);
      await connected;
      const done = graceful.shutdown();
      client.socket.write("GET /partial HTTP/1.1\r\nHost: 127.0.0.1\r\n");
      // The pause under test: our FIN must not come while the headers are unfinished.
      await within(client.until(() => client.gotEnd || client.closed), 5 * GRACE);
      const finDuringHeaders = client.gotEnd || client.closed;
      let response: { status: number; connection: string | undefined } | null = null;
      if (!finDuringHeaders) {
        client.socket.write("\r\n");
        const r = await client.response(1);
        response = { status: r.status, connection: r.headers.connection };
        await client.ended();
      }
      const report = await done;
      expect({
        finDuringHeaders,
        response,
        handlerCalls: calls.get("/partial") ?? 0,
        requestsCompletedWhileDraining: report.requestsCompletedWhileDraining,
        deadlineHit: report.deadlineHit,
      }).toEqual({
        finDuringHeaders: false,
        response: { status: 200, connection: "close" },
        handlerCalls: 1,
        requestsCompletedWhileDraining: 1,
        deadlineHit: false,
      });
    },
    TIMEOUT + 5000,
  );

  it(
    "serve() does not end a connection whose request body pauses mid-way for several idle graces; the request is answered with Connection: close",
    async () => {
      const { server, calls, connected } = countingServer();
      const graceful = serve(server, { idleGraceMs: GRACE, drainTimeoutMs: 8000 });
      const port = await listen(server);
      const client = await open(port);
      await connected;
      const done = graceful.shutdown();
      client.socket.write("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello");
      await within(client.until(() => client.gotEnd || client.closed), 5 * GRACE);
      const finDuringBody = client.gotEnd || client.closed;
      let response: { status: number; connection: string | undefined; body: string } | null = null;
      if (!finDuringBody) {
        client.socket.write("world");
        const r = await client.response(1);
        response = { status: r.status, connection: r.headers.connection, body: r.body };
        await client.ended();
      }
      const report = await done;
      expect({
        finDuringBody,
        response,
        handlerCalls: calls.get("/upload") ?? 0,
        requestsCompletedWhileDraining: report.requestsCompletedWhileDraining,
        deadlineHit: report.deadlineHit,
      }).toEqual({
        finDuringBody: false,
        response: { status: 200, connection: "close", body: "received 10" },
        handlerCalls: 1,
        requestsCompletedWhileDraining: 1,
        deadlineHit: false,
      });
    },
    TIMEOUT + 5000,
  );
});

// ---------------------------------------------------------------------------
// Defect 3: HTTP/2 sessions opened before serve() attached

describe.each(["h2c", "h2"] as const)("serve() over %s: a session opened before serve() attached", (protocol: H2Protocol) => {
  const DRAIN_MS = 5000;

  async function preAttached(): Promise<{ graceful: GracefulServer; s: http2.ClientHttp2Session }> {
    const server = cleanup.add(createServer(protocol, (_req, res) => res.end("ok")) as http2.Http2Server);
    const port = await listen(server);
    const serverSession = nextEvent(server, "session", 2000);
    const s = cleanup.add(await h2connect(protocol, port));
    s.on("error", () => {});
    expect(await serverSession).toBe(true);
    const graceful = serve(server, { drainTimeoutMs: DRAIN_MS });
    return { graceful, s };
  }

  async function drainObserved(graceful: GracefulServer, s: http2.ClientHttp2Session) {
    let goawayReceived = false;
    s.once("goaway", () => (goawayReceived = true));
    // Settles at the latest when cleanup destroys the session.
    const sessionClosed = new Promise<void>((resolve) => s.once("close", () => resolve()));
    const report = await graceful.shutdown();
    // The client reads GOAWAY and the end of the session after our side closed.
    const clientSessionClosed = await within(sessionClosed, 1000);
    return {
      goawayReceived,
      clientSessionClosed,
      sessionsSentGoaway: report.sessionsSentGoaway,
      deadlineHit: report.deadlineHit,
      drainedWellBeforeDeadline: report.durationMs < DRAIN_MS / 2,
    };
  }

  const expected = { goawayReceived: true, clientSessionClosed: true, sessionsSentGoaway: 1, deadlineHit: false, drainedWellBeforeDeadline: true };

  // Node 24 lists a server's sessions; Node 20 and 22 list none, so there a
  // session that stays idle is only known by its socket, which is ended
  // with a FIN once idle for the grace (docs/http.md, "Attach before or
  // after listen()").
  const listsSessions = Number(process.versions.node.split(".")[0]) >= 24;

  it(
    "serve() drains an idle session opened before it attached without the deadline: GOAWAY where Node lists sessions, else a FIN after the grace",
    async () => {
      const { graceful, s } = await preAttached();
      expect(await drainObserved(graceful, s)).toEqual(listsSessions ? expected : { ...expected, goawayReceived: false, sessionsSentGoaway: 0 });
    },
    TIMEOUT + 5000,
  );

  it(
    "serve() sends GOAWAY to a session opened before it attached that opens its first stream after, and the drain ends without the deadline",
    async () => {
      const { graceful, s } = await preAttached();
      expect(await h2request(s, "/").done).toMatchObject({ status: 200, body: "ok", error: null });
      expect(await drainObserved(graceful, s)).toEqual(expected);
    },
    TIMEOUT + 5000,
  );
});

// ---------------------------------------------------------------------------
// Defect 4: shutdown while listen() is still resolving

describe("serve(): a listen() still resolving when shutdown starts", () => {
  it(
    "shutdown() called while listen(0, 'localhost') is resolving resolves only once the server is closed, and it never accepts a connection",
    async () => {
      const server = cleanup.add(http.createServer((_req, res) => res.end("ok")));
      let bound: net.AddressInfo | null = null;
      server.on("listening", () => (bound = server.address() as net.AddressInfo));
      const bindDone = nextEvent(server, "listening", 2000);
      const graceful = serve(server, { drainTimeoutMs: 5000 });
      server.listen(0, "localhost");
      // Precondition: the host lookup is asynchronous.
      expect(server.listening).toBe(false);
      const report = await graceful.shutdown();
      const listeningAtReport = server.listening;
      // Let a listen the report did not wait for finish binding.
      if (bound === null) await bindDone;
      await new Promise((resolve) => setImmediate(resolve));
      const address = bound as net.AddressInfo | null;
      expect({
        listeningAtReport,
        listenerClosed: report.listenerClosedMs !== null,
        listeningAfterBind: server.listening,
        newConnection: address === null ? "never bound" : await tryConnectTo(address.address, address.port),
      }).toEqual({
        listeningAtReport: false,
        listenerClosed: true,
        listeningAfterBind: false,
        newConnection: "ECONNREFUSED",
      });
    },
    TIMEOUT,
  );

  it(
    "serve() with an already aborted signal closes a server that starts listening afterwards, right after it binds",
    async () => {
      const server = cleanup.add(http.createServer((_req, res) => res.end("ok")));
      let port = 0;
      let closed = false;
      server.on("listening", () => (port = (server.address() as net.AddressInfo).port));
      server.on("close", () => (closed = true));
      const bindDone = nextEvent(server, "listening", 2000);
      const graceful = serve(server, { signal: AbortSignal.abort("stop") });
      server.listen(0, "127.0.0.1");
      expect(await bindDone).toBe(true);
      if (!closed) await nextEvent(server, "close", 1000);
      const shutdownResolved = await within(graceful.shutdown(), 2000);
      expect({
        closedAfterBind: closed,
        listening: server.listening,
        newConnection: await tryConnectTo("127.0.0.1", port),
        shutdownResolved,
        state: graceful.state.borrow(),
      }).toEqual({
        closedAfterBind: true,
        listening: false,
        newConnection: "ECONNREFUSED",
        shutdownResolved: true,
        state: "closed",
      });
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// Defect 5: force now

describe("GracefulServer.force()", () => {
  /** A served server whose handler holds each request until its token is cancelled, and never answers. */
  async function holding(options: Parameters<typeof serve>[1]) {
    const tokens: Array<ReturnType<typeof requestToken>> = [];
    const arrived = latch();
    const server = cleanup.add(
      http.createServer(async (req) => {
        const token = requestToken(req);
        tokens.push(token);
        arrived.release();
        await token.cancelled();
      }),
    );
    const graceful = serve(server, options);
    const port = await listen(server);
    const client = await open(port);
    client.get("/hold");
    await arrived.promise;
    return { graceful, tokens, client };
  }

  it(
    "force(reason) during the drain jumps to the deadline: request tokens are cancelled with reason, and shutdown()'s report resolves with deadlineHit",
    async () => {
      const { graceful, tokens, client } = await holding({ drainTimeoutMs: 30_000 });
      const done = graceful.shutdown();
      const reason = new Error("second Ctrl+C");
      const forced = (graceful as unknown as Forceable).force(reason);
      expect(forced).toBe(done);
      const report = await forced;
      await client.ended();
      expect({
        sameReason: tokens[0]!.reason === reason,
        deadlineHit: report.deadlineHit,
        connectionsForced: report.connectionsForced,
        state: graceful.state.borrow(),
      }).toEqual({ sameReason: true, deadlineHit: true, connectionsForced: 1, state: "closed" });
    },
    TIMEOUT,
  );

  it(
    "force() before shutdown() starts the shutdown without beforeCloseMs and cancels request tokens with a ShutdownTimeoutError",
    async () => {
      const { graceful, tokens, client } = await holding({ beforeCloseMs: 30_000, drainTimeoutMs: 30_000 });
      const forced = (graceful as unknown as Forceable).force();
      expect(graceful.shutdown()).toBe(forced);
      const report = await forced;
      await client.ended();
      expect({
        timeoutReason: isShutdownTimeoutError(tokens[0]!.reason),
        deadlineHit: report.deadlineHit,
        listenerClosed: report.listenerClosedMs !== null,
        listening: graceful.server.listening,
        state: graceful.state.borrow(),
      }).toEqual({ timeoutReason: true, deadlineHit: true, listenerClosed: true, listening: false, state: "closed" });
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// Defect 6: a moment to answer at the deadline

describe("serve(): a moment to answer at the deadline", () => {
  it(
    "serve() lets a handler that answers 503 when its request token is cancelled at the deadline get its response out, counted as graceful",
    async () => {
      const arrived = latch();
      const server = cleanup.add(
        http.createServer(async (req, res) => {
          arrived.release();
          await requestToken(req).cancelled();
          res.statusCode = 503;
          res.end("shutting down");
        }),
      );
      const graceful = serve(server, { drainTimeoutMs: 200 });
      const port = await listen(server);
      const outcome = new Promise<{ status?: number; body?: string; error?: string }>((resolve) => {
        http
          .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () => resolve({ status: res.statusCode!, body }));
            res.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
          })
          .on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      });
      await arrived.promise;
      const report = await graceful.shutdown();
      expect({
        outcome: await outcome,
        requestsCompletedWhileDraining: report.requestsCompletedWhileDraining,
        connectionsForced: report.connectionsForced,
      }).toEqual({
        outcome: { status: 503, body: "shutting down" },
        requestsCompletedWhileDraining: 1,
        connectionsForced: 0,
      });
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// The returned object exposes exactly the documented API

describe("serve(): the returned object", () => {
  function reachableKeys(object: object): Array<string | symbol> {
    const keys = new Set<string | symbol>();
    for (let o: object | null = object; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
      for (const key of Reflect.ownKeys(o)) if (key !== "constructor") keys.add(key);
    }
    return [...keys];
  }

  it(
    "serve() returns an object whose own enumerable keys show none of its internals",
    async () => {
      const graceful = serve((_req, res) => res.end("ok"));
      cleanup.add(graceful.server as http.Server);
      const keys = Object.keys(graceful);
      await graceful.shutdown();
      expect(keys.filter((key) => key === "lifetime" || key === "draining")).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    "serve() returns an object on which exactly servers, server, state, isReady, shutdown, force and Symbol.asyncDispose are reachable",
    async () => {
      const graceful = serve((_req, res) => res.end("ok"));
      cleanup.add(graceful.server as http.Server);
      const keys = reachableKeys(graceful);
      await graceful.shutdown();
      const name = (key: string | symbol): string => (typeof key === "symbol" ? key.toString() : key);
      expect(keys.map(name).sort()).toEqual(
        ["servers", "server", "state", "isReady", "shutdown", "force", Symbol.asyncDispose].map(name).sort(),
      );
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// docs/http.md: a streaming response ended on its draining token

describe("serve(): a streaming response ended on its draining token", () => {
  it(
    "serve() closes the connection of a streamed response that ended on its draining token once idle for idleGraceMs, gracefully, before the deadline",
    async () => {
      const arrived = latch();
      const server = cleanup.add(
        http.createServer((req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write("data: hello\n\n");
          arrived.release();
          drainingToken(req).onCancel(() => res.end("data: bye\n\n"));
        }),
      );
      const graceful = serve(server, { idleGraceMs: 200, drainTimeoutMs: 5000 });
      const port = await listen(server);
      const client = await open(port);
      client.get("/stream");
      await arrived.promise;
      const done = graceful.shutdown();
      const response = await client.response(1);
      await client.ended();
      const report = await done;
      expect({
        body: response.body,
        // Its headers went out before the drain: it could not say close.
        connection: response.headers.connection,
        fin: client.gotEnd && client.error === null,
        requestsCompletedWhileDraining: report.requestsCompletedWhileDraining,
        connectionsClosedGracefully: report.connectionsClosedGracefully,
        connectionsForced: report.connectionsForced,
        deadlineHit: report.deadlineHit,
      }).toEqual({
        body: "data: hello\n\ndata: bye\n\n",
        connection: "keep-alive",
        fin: true,
        requestsCompletedWhileDraining: 1,
        connectionsClosedGracefully: 1,
        connectionsForced: 0,
        deadlineHit: false,
      });
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------
// HTTP/1 connections accepted before serve() attached

describe.each(["http", "https"] as const)("serve() over %s: a connection accepted before serve() attached", (protocol) => {
  it("serve() finds an idle keep-alive connection accepted before it attached and ends it after the grace, not at the deadline", async () => {
    const server = cleanup.add(createServer(protocol, (_req, res) => res.end("ok")) as http.Server);
    const port = await listen(server);
    const client = await RawClient.open(protocol, port);
    cleanup.add(client.socket);
    client.get("/");
    expect((await client.response(1)).headers.connection).toBe("keep-alive");
    const graceful = serve(server, { idleGraceMs: 50, drainTimeoutMs: 20_000 });
    const report = await graceful.shutdown();
    await client.ended();
    expect({ error: client.error?.code ?? null, gotEnd: client.gotEnd, graceful: report.connectionsClosedGracefully >= 1, forced: report.connectionsForced, deadlineHit: report.deadlineHit }).toEqual({
      error: null,
      gotEnd: true,
      graceful: true,
      forced: 0,
      deadlineHit: false,
    });
  }, TIMEOUT);

  it("serve() lets a request in flight since before it attached finish, told Connection: close", async () => {
    const gate = latch();
    const arrived = latch();
    const server = cleanup.add(
      createServer(protocol, (_req, res) => {
        arrived.release();
        void gate.promise.then(() => res.end("slow"));
      }) as http.Server,
    );
    const port = await listen(server);
    const client = await RawClient.open(protocol, port);
    cleanup.add(client.socket);
    client.get("/slow");
    await arrived.promise;
    const graceful = serve(server, { idleGraceMs: 50, drainTimeoutMs: 20_000 });
    const done = graceful.shutdown();
    // Several graces pass with the request in flight: it is not idle.
    await new Promise((resolve) => setTimeout(resolve, 200));
    gate.release();
    const response = await client.response(1);
    const report = await done;
    expect({ status: response.status, body: response.body, connection: response.headers.connection, completed: report.requestsCompletedWhileDraining, deadlineHit: report.deadlineHit }).toEqual({
      status: 200,
      body: "slow",
      connection: "close",
      completed: 1,
      deadlineHit: false,
    });
  }, TIMEOUT);

  it("serve() announces Connection: close on a request in flight on a connection accepted before it attached", async () => {
    const gate = latch();
    const arrived = latch();
    const server = cleanup.add(
      createServer(protocol, (_req, res) => {
        arrived.release();
        void gate.promise.then(() => res.end("slow"));
      }) as http.Server,
    );
    const port = await listen(server);
    const client = await RawClient.open(protocol, port);
    cleanup.add(client.socket);
    const graceful = serve(server, { drainTimeoutMs: 20_000 });
    client.get("/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    const response = await client.response(1);
    const report = await done;
    expect({ status: response.status, connection: response.headers.connection, completed: report.requestsCompletedWhileDraining, deadlineHit: report.deadlineHit }).toEqual({
      status: 200,
      connection: "close",
      completed: 1,
      deadlineHit: false,
    });
  }, TIMEOUT);
});

describe("GracefulServer.force(), called again", () => {
  it("force() a second time, or after the report, returns the same promise and changes nothing", async () => {
    const gate = latch();
    const arrived = latch();
    const reasons: unknown[] = [];
    const server = cleanup.add(
      http.createServer((req, res) => {
        requestToken(req).onCancel((reason) => reasons.push(reason));
        arrived.release();
        void gate.promise.then(() => res.end("late"));
      }),
    );
    const port = await listen(server);
    const graceful = serve(server, { drainTimeoutMs: 20_000, forceAnswerMs: 0 });
    const client = await RawClient.open("http", port);
    cleanup.add(client.socket);
    client.get("/");
    await arrived.promise;
    const first = graceful.force("first");
    const second = graceful.force("second");
    const report = await first;
    const third = graceful.force("third");
    gate.release();
    expect({ same: second === first && third === first && graceful.shutdown() === first, reasons, deadlineHit: report.deadlineHit, forced: report.connectionsForced }).toEqual({
      same: true,
      reasons: ["first"],
      deadlineHit: true,
      forced: 1,
    });
  }, TIMEOUT);
});
