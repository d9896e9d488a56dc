/*
 * serve() over HTTP/2, cleartext (h2c) and TLS (h2): GOAWAY drains, clients
 * are real `http2.connect` sessions (and raw sockets for silent peers).
 */
import * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { ShutdownTimeoutError } from "../../src/index.js";
import { drainingToken, requestToken, serve, type GracefulServer } from "../../src/http/index.js";
import { connect, createServer, h2connect, h2request, latch, listen, RawClient, tryConnect, type H2Protocol, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

async function setup(protocol: H2Protocol, options: Parameters<typeof serve>[1] = {}) {
  const gate = latch();
  const arrived = latch();
  const seen: string[] = [];
  const tokens: Array<ReturnType<typeof requestToken>> = [];
  const server = cleanup.add(
    createServer(protocol, (req, res) => {
      const r = req as http2.Http2ServerRequest;
      const w = res as http2.Http2ServerResponse;
      seen.push(r.url);
      tokens.push(requestToken(r));
      if (r.url === "/slow") {
        arrived.release();
        void gate.promise.then(() => w.end("slow"));
      } else if (r.url === "/hang") {
        arrived.release();
      } else if (r.url === "/stream") {
        w.writeHead(200, { "content-type": "text/event-stream" });
        w.write("data: hello\n\n");
        arrived.release();
        drainingToken(r).onCancel(() => w.end("data: bye\n\n"));
      } else if (r.url === "/upload") {
        let length = 0;
        arrived.release();
        r.on("data", (chunk: Buffer) => (length += chunk.length));
        r.on("end", () => w.end(`received ${length}`));
      } else {
        w.end("ok");
      }
    }) as http2.Http2Server,
  );
  const graceful = serve(server, { drainTimeoutMs: 10_000, ...options });
  const port = await listen(server);
  return { graceful, port, seen, gate, arrived, tokens };
}

async function session(protocol: H2Protocol, port: number): Promise<http2.ClientHttp2Session> {
  const s = cleanup.add(await h2connect(protocol, port));
  s.on("error", () => {});
  return s;
}

function goaways(s: http2.ClientHttp2Session): Array<{ code: number; lastStreamID: number }> {
  const frames: Array<{ code: number; lastStreamID: number }> = [];
  s.on("goaway", (code, lastStreamID) => frames.push({ code, lastStreamID }));
  return frames;
}

function closed(s: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => (s.closed && s.destroyed ? resolve() : s.once("close", () => resolve())));
}

describe.each(["h2c", "h2"] as const)("serve() over %s", (protocol) => {
  it("S1: a slow stream in flight at shutdown ends cleanly after GOAWAY", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const s = await session(protocol, port);
    const frames = goaways(s);
    const { done: result } = h2request(s, "/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    expect(graceful.state.borrow()).toBe("draining");
    gate.release();
    expect(await result).toMatchObject({ status: 200, body: "slow", error: null, rstCode: http2.constants.NGHTTP2_NO_ERROR });
    await closed(s);
    expect(frames.length).toBeGreaterThanOrEqual(1);
    expect(frames.every((frame) => frame.code === http2.constants.NGHTTP2_NO_ERROR)).toBe(true);
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, sessionsSentGoaway: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("S1: the first GOAWAY announces the largest stream id (two-phase), so a stream racing it is still served", async () => {
    const { graceful, port, seen } = await setup(protocol);
    const s = await session(protocol, port);
    const frames = goaways(s);
    await h2request(s, "/").done;
    // The client opens a stream in the same turn the server starts draining:
    // its HEADERS are on the wire before the client can see any GOAWAY.
    const { done: raced } = h2request(s, "/");
    const done = graceful.shutdown();
    expect(await raced).toMatchObject({ status: 200, body: "ok", error: null });
    expect(seen).toEqual(["/", "/"]);
    await closed(s);
    expect(frames[0]).toEqual({ code: http2.constants.NGHTTP2_NO_ERROR, lastStreamID: 2 ** 31 - 1 });
    expect(await done).toMatchObject({ sessionsSentGoaway: 1, connectionsForced: 0 });
  });

  it("S3: a streaming response is told through drainingToken and ends; the session closes before the deadline", async () => {
    const { graceful, port, arrived } = await setup(protocol);
    const s = await session(protocol, port);
    const { done: result } = h2request(s, "/stream");
    await arrived.promise;
    const report = await graceful.shutdown();
    expect(await result).toMatchObject({ status: 200, body: "data: hello\n\ndata: bye\n\n", error: null });
    await closed(s);
    expect(report).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsClosedGracefully: 1, connectionsForced: 0, deadlineHit: false });
  });

  it.each([10, 1000])("S4: %i idle sessions get GOAWAY and close", async (count) => {
    const { graceful, port } = await setup(protocol);
    const sessions = await Promise.all(Array.from({ length: count }, () => session(protocol, port)));
    await Promise.all(sessions.map((s) => h2request(s, "/").done));
    const report = await graceful.shutdown();
    await Promise.all(sessions.map(closed));
    expect(report).toMatchObject({ sessionsSentGoaway: count, connectionsClosedGracefully: count, connectionsForced: 0, deadlineHit: false });
  });

  it("S5: a silent pre-request TCP connection does not hang shutdown", async () => {
    const { graceful, port } = await setup(protocol, { idleGraceMs: 50 });
    // No HTTP/2 preface (h2c) / no TLS handshake (h2).
    const raw = new RawClient(cleanup.add(await connect("tcp", port)));
    const report = await graceful.shutdown();
    await raw.ended();
    expect(raw.error).toBeNull();
    expect(report).toMatchObject({ connectionsForced: 0, deadlineHit: false, connectionsClosedGracefully: 1 });
  });

  it("S7: a new connection during the drain is refused", async () => {
    const { graceful, port, gate, arrived } = await setup(protocol);
    const s = await session(protocol, port);
    const { done: result } = h2request(s, "/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    expect(await tryConnect(port)).toBe("ECONNREFUSED");
    gate.release();
    await result;
    await done;
  });

  it("S8: a hung stream is forced at the deadline; its token is cancelled with ShutdownTimeoutError", async () => {
    const { graceful, port, arrived, tokens } = await setup(protocol, { drainTimeoutMs: 150 });
    const s = await session(protocol, port);
    const { done: result } = h2request(s, "/hang");
    await arrived.promise;
    const report = await graceful.shutdown();
    const outcome = await result;
    expect(outcome.status).toBe(0);
    expect(report).toMatchObject({ deadlineHit: true, connectionsForced: 1, sessionsSentGoaway: 1, requestsCompletedWhileDraining: 0 });
    expect(tokens[0]!.reason).toBeInstanceOf(ShutdownTimeoutError);
  });

  it("S10: a new stream on an idle session during the drain is refused by GOAWAY, not served", async () => {
    const { graceful, port, gate, arrived, seen } = await setup(protocol);
    const busy = await session(protocol, port);
    const idle = await session(protocol, port);
    await h2request(idle, "/").done;
    const idleGoaway = new Promise<void>((resolve) => idle.once("goaway", () => resolve()));
    const { done: slow } = h2request(busy, "/slow");
    await arrived.promise;
    const done = graceful.shutdown();
    await idleGoaway;
    // After GOAWAY the client refuses to open streams on the session.
    let refused: unknown = null;
    try {
      const { done: late } = h2request(idle, "/late");
      const outcome = await late;
      refused = outcome.error ?? (outcome.status === 0 ? "no response" : null);
    } catch (error) {
      refused = error;
    }
    expect(refused).not.toBeNull();
    expect(seen).not.toContain("/late");
    gate.release();
    expect(await slow).toMatchObject({ status: 200, body: "slow" });
    expect(await done).toMatchObject({ sessionsSentGoaway: 2, connectionsForced: 0, deadlineHit: false });
  });

  it("S11: a slow upload in progress is read fully and answered", async () => {
    const { graceful, port, arrived } = await setup(protocol);
    const s = await session(protocol, port);
    const stream = s.request({ ":path": "/upload", ":method": "POST" });
    let body = "";
    let status = 0;
    stream.setEncoding("utf8");
    stream.on("response", (headers) => (status = Number(headers[":status"])));
    stream.on("data", (chunk: string) => (body += chunk));
    const ended = new Promise<void>((resolve) => stream.on("close", () => resolve()));
    stream.write("x".repeat(1024));
    await arrived.promise;
    const done = graceful.shutdown();
    for (let i = 1; i < 64; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      stream.write("x".repeat(1024));
    }
    stream.end();
    await ended;
    expect({ status, body, rstCode: stream.rstCode }).toEqual({ status: 200, body: `received ${64 * 1024}`, rstCode: http2.constants.NGHTTP2_NO_ERROR });
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
  });

  it("requestToken() is cancelled when the client resets the stream", async () => {
    const { graceful, port, arrived, tokens } = await setup(protocol);
    const s = await session(protocol, port);
    const { stream } = h2request(s, "/hang");
    await arrived.promise;
    stream.close(http2.constants.NGHTTP2_CANCEL);
    const reason = await tokens[0]!.cancelled();
    expect((reason as DOMException).name).toBe("AbortError");
    expect(graceful.state.borrow()).toBe("serving");
  });
});

describe("serve() over h2 with allowHTTP1", () => {
  it("drains HTTP/1.1 and HTTP/2 clients of the same server", async () => {
    const { tlsMaterial } = await import("./helpers.js");
    const gate = latch();
    let arrivedCount = 0;
    const both = latch();
    const server = cleanup.add(
      http2.createSecureServer({ ...tlsMaterial(), allowHTTP1: true }, (req, res) => {
        if (++arrivedCount === 2) both.release();
        void gate.promise.then(() => res.end(`v${req.httpVersion}`));
      }),
    );
    const graceful: GracefulServer = serve(server, { drainTimeoutMs: 10_000 });
    const port = await listen(server);
    const h1 = new RawClient(cleanup.add(await connect("https", port)));
    h1.get("/");
    const s = await session("h2", port);
    const { done: h2done } = h2request(s, "/");
    await both.promise;
    const done = graceful.shutdown();
    gate.release();
    const h1response = await h1.response(1);
    expect(h1response).toMatchObject({ status: 200, body: "v1.1" });
    expect(h1response.headers.connection).toBe("close");
    expect(await h2done).toMatchObject({ status: 200, body: "v2.0" });
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 2, sessionsSentGoaway: 1, connectionsClosedGracefully: 2, connectionsForced: 0 });
  });
});

describe("serve() over h2c: the 'connect' event", () => {
  it("a CONNECT stream (a request and a response, not a socket) is drained as a stream, not taken for an upgrade", async () => {
    const gate = latch();
    const arrived = latch();
    const tokens: Array<ReturnType<typeof requestToken>> = [];
    // Node's compatibility layer, which emits 'connect', needs a 'request' listener.
    const server = cleanup.add(http2.createServer((_req, res) => res.end("ok")));
    server.on("connect", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      tokens.push(requestToken(req));
      arrived.release();
      void gate.promise.then(() => res.end("tunnel closed"));
    });
    const graceful = serve(server, { idleGraceMs: 60_000, drainTimeoutMs: 10_000 });
    const port = await listen(server);
    const s = await session("h2c", port);
    const stream = s.request({ ":method": "CONNECT", ":authority": "example.test:443" });
    let body = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (body += chunk));
    const ended = new Promise((resolve) => stream.on("end", resolve));
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    await ended;
    stream.end();
    expect(body).toBe("tunnel closed");
    expect(await done).toMatchObject({ upgradesNotified: 0, upgradesForced: 0, requestsCompletedWhileDraining: 1, sessionsSentGoaway: 1, deadlineHit: false });
    expect(tokens[0]!.isCancelled).toBe(false);
  });
});
