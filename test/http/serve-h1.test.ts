/*
 * serve() over HTTP/1.1, cleartext and TLS: the drain scenarios of issue 5,
 * scripted with raw sockets so every race position is deterministic.
 */
import * as http from "node:http";
import * as https from "node:https";
import type * as net from "node:net";
import { Agent as UndiciAgent, request as undiciRequest } from "undici";
import { describe, expect, it } from "vitest";
import { ShutdownTimeoutError } from "../../src/index.js";
import { drainingToken, requestToken, serve, type GracefulServer } from "../../src/http/index.js";
import { connect, createServer, latch, listen, RawClient, tryConnect, type H1Protocol, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

interface Setup {
  graceful: GracefulServer;
  port: number;
  /** Requests the handler saw, by path. */
  seen: string[];
}

/**
 * A served server whose handler answers `/` at once, `/slow` when `gate`
 * opens, and `/stream` by sending headers and a first chunk, then ending
 * when its draining token fires.
 */
async function setup(protocol: H1Protocol, options: Parameters<typeof serve>[1] = {}, gate = latch()): Promise<Setup & { gate: typeof gate; arrived: ReturnType<typeof latch> }> {
  const seen: string[] = [];
  const arrived = latch();
  const server = cleanup.add(
    createServer(protocol, (req, res) => {
      const r = req as http.IncomingMessage;
      const w = res as http.ServerResponse;
      seen.push(r.url!);
      if (r.url === "/slow") {
        arrived.release();
        void gate.promise.then(() => w.end("slow"));
      } else if (r.url === "/stream") {
        w.writeHead(200, { "content-type": "text/event-stream" });
        w.write("data: hello\n\n");
        arrived.release();
        drainingToken(r).onCancel(() => w.end("data: bye\n\n"));
      } else {
        w.end("ok");
      }
    }) as http.Server,
  );
  const graceful = serve(server, { drainTimeoutMs: 10_000, ...options });
  const port = await listen(server);
  return { graceful, port, seen, gate, arrived };
}

async function open(protocol: H1Protocol, port: number): Promise<RawClient> {
  const client = await RawClient.open(protocol, port);
  cleanup.add(client.socket);
  return client;
}

describe.each(["http", "https"] as const)("serve() over %s", (protocol) => {
  it("S1: a slow request in flight at shutdown completes with Connection: close", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const client = await open(protocol, port);
    client.get("/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    expect(graceful.state.borrow()).toBe("draining");
    gate.release();
    const response = await client.response(1);
    expect(response.status).toBe(200);
    expect(response.body).toBe("slow");
    expect(response.headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(client.gotEnd).toBe(true);
    const report = await done;
    expect(report).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
    expect(graceful.state.borrow()).toBe("closed");
  });

  it("S1: an http.Agent keep-alive request in flight completes with Connection: close", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const agent = cleanup.add(protocol === "https" ? new https.Agent({ keepAlive: true, rejectUnauthorized: false }) : new http.Agent({ keepAlive: true }));
    const get = protocol === "https" ? https.get : http.get;
    const response = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      get({ host: "127.0.0.1", port, path: "/slow", agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection, body }));
      }).on("error", reject);
    });
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    expect(await response).toEqual({ status: 200, connection: "close", body: "slow" });
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("S1: an undici keep-alive request in flight completes with Connection: close", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const dispatcher = new UndiciAgent({ connect: { rejectUnauthorized: false } });
    cleanup.defer(() => dispatcher.close());
    const pending = undiciRequest(`${protocol}://127.0.0.1:${port}/slow`, { dispatcher });
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    const response = await pending;
    expect(response.statusCode).toBe(200);
    expect(response.headers.connection).toBe("close");
    expect(await response.body.text()).toBe("slow");
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("S2: a request written in the same turn as shutdown() on a keep-alive socket is served, not reset", async () => {
    const { graceful, port } = await setup(protocol);
    const client = await open(protocol, port);
    let done: ReturnType<GracefulServer["shutdown"]> | undefined;
    client.onResponse = (response) => {
      if (client.responses.length !== 1) return;
      // The instant the keep-alive response is complete: shut down and reuse.
      expect(response.headers.connection).toBe("keep-alive");
      done = graceful.shutdown();
      client.get("/");
    };
    client.get("/");
    const second = await client.response(2);
    expect(second).toMatchObject({ status: 200, body: "ok" });
    expect(second.headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(await done!).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0 });
  });

  it("S2: a request written while the drain is under way, within the idle grace, is answered with Connection: close", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol, { idleGraceMs: 60_000 });
    const idle = await open(protocol, port);
    idle.get("/");
    expect((await idle.response(1)).headers.connection).toBe("keep-alive");
    // A second connection keeps the drain open while we script the first.
    const busy = await open(protocol, port);
    busy.get("/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    idle.get("/");
    const second = await idle.response(2);
    expect(second.status).toBe(200);
    expect(second.headers.connection).toBe("close");
    await idle.ended();
    expect(idle.error).toBeNull();
    gate.release();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 2, connectionsClosedGracefully: 2, connectionsForced: 0 });
  });

  it("S2: the next request written the instant a streamed response ends during the drain is served with Connection: close", async () => {
    const { graceful, port, arrived } = await setup(protocol);
    const client = await open(protocol, port);
    client.onResponse = () => {
      if (client.responses.length === 1) client.get("/");
    };
    client.get("/stream");
    await arrived.promise;
    const done = graceful.shutdown();
    const first = await client.response(1);
    // Headers were sent before the drain: this response could not say close.
    expect(first.headers.connection).toBe("keep-alive");
    const second = await client.response(2);
    expect(second).toMatchObject({ status: 200, body: "ok" });
    expect(second.headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 2, connectionsForced: 0, deadlineHit: false });
  });

  it("S2: pipelined requests received before the drain are all answered; only the last says Connection: close", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const client = await open(protocol, port);
    client.socket.write("GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    const [first, second] = [await client.response(1), await client.response(2)];
    expect(first).toMatchObject({ status: 200, body: "slow" });
    expect(first.headers.connection).toBe("keep-alive");
    expect(second).toMatchObject({ status: 200, body: "slow" });
    expect(second.headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 2, connectionsClosedGracefully: 1, connectionsForced: 0 });
  });

  it("S3: a streaming response is told through drainingToken, ends, and its socket closes before the deadline", async () => {
    const { graceful, port, arrived } = await setup(protocol, { idleGraceMs: 50 });
    const client = await open(protocol, port);
    client.get("/stream");
    await arrived.promise;
    const done = graceful.shutdown();
    const response = await client.response(1);
    expect(response.body).toBe("data: hello\n\ndata: bye\n\n");
    await client.ended();
    expect(client.error).toBeNull();
    expect(client.gotEnd).toBe(true);
    const report = await done;
    expect(report).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });

  it.each([10, 1000])("S4: %i idle keep-alive sockets are closed with a FIN after the idle grace", async (count) => {
    const { graceful, port } = await setup(protocol, { idleGraceMs: 100 });
    // Opening 1000 TLS connections on a loaded machine can take longer than
    // Node's 5 s keep-alive timeout, which would close the first ones itself.
    (graceful.server as http.Server).keepAliveTimeout = 60_000;
    const clients: RawClient[] = [];
    for (let i = 0; i < count; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => open(protocol, port)));
      for (const client of batch) client.get("/");
      await Promise.all(batch.map((client) => client.response(1)));
      clients.push(...batch);
    }
    expect(clients.every((client) => client.responses[0]!.headers.connection === "keep-alive")).toBe(true);
    const report = await graceful.shutdown();
    await Promise.all(clients.map((client) => client.ended()));
    expect(clients.filter((client) => client.error !== null || !client.gotEnd)).toEqual([]);
    expect(report).toMatchObject({ connectionsClosedGracefully: count, connectionsForced: 0, deadlineHit: false });
  });

  it("S5: a silent pre-request connection does not hang shutdown", async () => {
    const { graceful, port } = await setup(protocol, { idleGraceMs: 50 });
    // TCP only: for https this socket never even starts its TLS handshake.
    const tcp = new RawClient(cleanup.add(await connect("tcp", port)));
    // Connected (and, for https, handshaken) but never sent a byte of HTTP.
    const silent = await open(protocol, port);
    const report = await graceful.shutdown();
    await tcp.ended();
    await silent.ended();
    expect(tcp.error).toBeNull();
    expect(silent.error).toBeNull();
    expect(report).toMatchObject({ connectionsClosedGracefully: 2, connectionsForced: 0, deadlineHit: false });
  });

  it("S6: an upgraded socket's token is cancelled at drain start and the socket destroyed at the deadline", async () => {
    const { graceful, port } = await setup(protocol, { drainTimeoutMs: 200 });
    const events: string[] = [];
    let token: ReturnType<typeof requestToken> | undefined;
    graceful.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      token = requestToken(req);
      token.onCancel(() => events.push(`token cancelled in ${graceful.state.borrow()}`));
      socket.on("error", () => {});
      socket.on("close", () => events.push("socket closed"));
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
    });
    const client = await open(protocol, port);
    client.get("/ws", "Upgrade: test\r\nConnection: Upgrade\r\n");
    await client.until(() => client.socket.bytesRead > 0 && token !== undefined);
    const done = graceful.shutdown();
    expect(events).toEqual(["token cancelled in draining"]);
    const report = await done;
    expect(events).toEqual(["token cancelled in draining", "socket closed"]);
    expect(report).toMatchObject({ upgradesNotified: 1, upgradesForced: 1, deadlineHit: true, connectionsForced: 0 });
    expect(token!.reason).toBeInstanceOf(DOMException);
  });

  it("S6: an upgraded socket that closes when told does not wait for the deadline", async () => {
    const { graceful, port } = await setup(protocol);
    graceful.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
      requestToken(req).onCancel(() => socket.end("goodbye"));
    });
    const client = await open(protocol, port);
    client.get("/ws", "Upgrade: test\r\nConnection: Upgrade\r\n");
    await client.until(() => client.socket.bytesRead > 0);
    const report = await graceful.shutdown();
    await client.ended();
    expect(report).toMatchObject({ upgradesNotified: 1, upgradesForced: 0, deadlineHit: false });
  });

  it("S6: an upgrade request on a server without 'upgrade' listeners is left to Node", async () => {
    const { graceful, port } = await setup(protocol);
    expect(graceful.server.listenerCount("upgrade")).toBe(0);
    const client = await open(protocol, port);
    client.get("/", "Upgrade: test\r\nConnection: Upgrade\r\n");
    // Node answers it as a normal request when nobody takes upgrades.
    expect((await client.response(1)).status).toBe(200);
  });

  it("S7: a new connection during the drain is refused, never accepted and reset", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const client = await open(protocol, port);
    client.get("/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    expect(await tryConnect(port)).toBe("ECONNREFUSED");
    gate.release();
    await done;
  });

  it("S7: during beforeCloseMs new connections are served normally; then the listener closes", async () => {
    const { graceful, port } = await setup(protocol, { beforeCloseMs: 1000, idleGraceMs: 20 });
    expect(graceful.isReady).toBe(true);
    const done = graceful.shutdown();
    expect(graceful.isReady).toBe(false);
    expect(graceful.state.borrow()).toBe("serving");
    const client = await open(protocol, port);
    client.get("/");
    const response = await client.response(1);
    expect(response.status).toBe(200);
    expect(response.headers.connection).toBe("keep-alive");
    expect(await graceful.state.changed()).toBe("draining");
    expect(await tryConnect(port)).toBe("ECONNREFUSED");
    await client.ended();
    expect(client.error).toBeNull();
    const report = await done;
    expect(report.listenerClosedMs).not.toBeNull();
    expect(report).toMatchObject({ connectionsClosedGracefully: 1, connectionsForced: 0 });
  });

  it("S8: a hung request is forced at the deadline, its token cancelled with ShutdownTimeoutError", async () => {
    const tokens: Array<ReturnType<typeof requestToken>> = [];
    const hungGate = latch();
    const { graceful, port } = await setup(protocol, { drainTimeoutMs: 150 }, hungGate);
    const got = latch();
    graceful.server.prependListener("request", (req: http.IncomingMessage) => {
      if (req.url === "/slow") tokens.push(requestToken(req));
      got.release();
    });
    const client = await open(protocol, port);
    client.get("/slow");
    await got.promise;
    const report = await graceful.shutdown();
    await client.ended();
    expect(client.responses).toEqual([]);
    expect(report).toMatchObject({ deadlineHit: true, connectionsForced: 1, connectionsClosedGracefully: 0, requestsCompletedWhileDraining: 0 });
    expect(tokens[0]!.isCancelled).toBe(true);
    expect(tokens[0]!.reason).toBeInstanceOf(ShutdownTimeoutError);
    hungGate.release();
  });

  it("S11: a slow upload in progress is read fully and answered, without a reset", async () => {
    const size = 64 * 1024;
    const received = latch();
    const server = cleanup.add(
      createServer(protocol, (req, res) => {
        let length = 0;
        received.release();
        req.on("data", (chunk: Buffer) => (length += chunk.length));
        req.on("end", () => res.end(`received ${length}`));
      }) as http.Server,
    );
    const graceful = serve(server, { idleGraceMs: 20 });
    const port = await listen(server);
    const client = await open(protocol, port);
    client.socket.write(`POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${size}\r\n\r\n`);
    client.socket.write("x".repeat(1024));
    await received.promise;
    const done = graceful.shutdown();
    // The rest of the body trickles in, one chunk per macrotask.
    for (let sent = 1024; sent < size; sent += 1024) {
      await new Promise((resolve) => setImmediate(resolve));
      client.socket.write("x".repeat(1024));
    }
    const response = await client.response(1);
    expect(response).toMatchObject({ status: 200, body: `received ${size}` });
    expect(response.headers.connection).toBe("close");
    await client.ended();
    expect(client.error).toBeNull();
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("requestToken() is cancelled when the client goes away before the response", async () => {
    const tokens: Array<ReturnType<typeof requestToken>> = [];
    const got = latch();
    const server = cleanup.add(
      createServer(protocol, (req) => {
        tokens.push(requestToken(req as http.IncomingMessage));
        got.release();
      }) as http.Server,
    );
    const graceful = serve(server);
    const port = await listen(server);
    const client = await open(protocol, port);
    client.get("/");
    await got.promise;
    expect(tokens[0]!.isCancelled).toBe(false);
    client.socket.destroy();
    const reason = await tokens[0]!.cancelled();
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe("AbortError");
    expect(graceful.state.borrow()).toBe("serving");
    expect(await graceful.shutdown()).toMatchObject({ connectionsForced: 0, deadlineHit: false });
  });

  it("requestToken() of a finished request is never cancelled, even by a forced shutdown", async () => {
    const tokens: Array<ReturnType<typeof requestToken>> = [];
    const server = cleanup.add(
      createServer(protocol, (req, res) => {
        tokens.push(requestToken(req as http.IncomingMessage), drainingToken(req as http.IncomingMessage));
        res.end("ok");
      }) as http.Server,
    );
    const graceful = serve(server, { idleGraceMs: 10_000, drainTimeoutMs: 50 });
    const port = await listen(server);
    const client = await open(protocol, port);
    client.get("/");
    await client.response(1);
    const report = await graceful.shutdown();
    expect(report).toMatchObject({ deadlineHit: true, connectionsForced: 1 });
    expect(tokens.map((token) => token.isCancelled)).toEqual([false, false]);
  });
});
