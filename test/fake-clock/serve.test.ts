/*
 * serve() drains over real loopback sockets while the clock is fake: every
 * timer of the drain (beforeCloseMs, the idle grace, the drain deadline, the
 * forceAnswerMs window, the 2 s linger after a FIN, HTTP/2's GOAWAY phases)
 * fires when the fake clock reaches it, and not before. The sockets stay
 * real: the test awaits their events (a request arriving, a GOAWAY read)
 * as it would without a fake clock, and only time is advanced by hand.
 *
 * Runs under vitest's fake timers and @sinonjs/fake-timers (./clocks.ts).
 */
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { requestToken, serve, type GracefulServer } from "../../src/http/index.js";
import { isShutdownTimeoutError } from "../../src/signals/index.js";
import { clocks } from "./clocks.js";

/** Listens on an ephemeral loopback port: real I/O, no timer involved. */
async function listen(server: net.Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

/** The next server-side socket `server` accepts. */
function nextSocket(server: net.Server): Promise<net.Socket> {
  return once(server, "connection").then(([socket]) => socket as net.Socket);
}

/** Sends one keep-alive GET on a raw socket and resolves once its body `body` has arrived. */
async function get(socket: net.Socket, body: string): Promise<string> {
  let text = "";
  const done = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      text += chunk.toString("latin1");
      if (text.endsWith(body)) {
        socket.off("data", onData);
        socket.off("error", reject);
        resolve(text);
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
  socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  return done;
}

for (const makeClock of clocks) {
  const clock = makeClock();

  describe(`serve() on ${clock.name}`, () => {
    const cleanups: (() => void | Promise<void>)[] = [];
    afterEach(async () => {
      // Real time first, so forcing what a failing test left cannot wait on the fake clock; then
      // sockets, then the drains and servers.
      clock.uninstall();
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A raw client socket to `port`, destroyed after the test. */
    async function connect(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
      const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: options.allowHalfOpen ?? false });
      cleanups.push(() => void socket.destroy());
      await once(socket, "connect");
      return socket;
    }

    function track<S extends net.Server>(server: S, graceful: () => GracefulServer | undefined): S {
      cleanups.push(async () => {
        const served = graceful();
        if (served !== undefined && served.state.borrow() !== "closed") await served.force();
        if (server.listening) await new Promise((resolve) => server.close(resolve));
      });
      return server;
    }

    it("serve() keeps serving for beforeCloseMs, then closes the listener exactly when it is due", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(http.createServer((_req, res) => res.end("ok")), () => graceful);
      graceful = serve(server, { beforeCloseMs: 5_000 });
      const port = await listen(server);
      const report = graceful.shutdown();
      expect(graceful.isReady).toBe(false);
      await clock.tick(4_999);
      expect(graceful.state.borrow()).toBe("serving");
      // Still answering: a load balancer may not have seen the 503 yet.
      const client = await connect(port);
      expect(await get(client, "ok")).toMatch(/^HTTP\/1\.1 200/);
      client.destroy();
      await clock.tick(1);
      expect(graceful.state.borrow()).not.toBe("serving");
      const result = await report;
      expect(result.listenersClosed).toBe(1);
      expect(result.listenerClosedMs).toBe(5_000);
      expect(result.deadlineHit).toBe(false);
      expect(clock.pending()).toBe(0);
    });

    it("serve() ends an idle keep-alive connection with a FIN exactly when idleGraceMs has passed", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(http.createServer((_req, res) => res.end("ok")), () => graceful);
      graceful = serve(server, { idleGraceMs: 1_000 });
      const port = await listen(server);
      const accepted = nextSocket(server);
      const client = await connect(port);
      await get(client, "ok");
      const socket = await accepted;
      // Listen first: the FIN may be read while the clock is advanced.
      const fin = once(client, "end");
      const report = graceful.shutdown();
      // The idle sweep runs every min(50, max(5, idleGraceMs / 8)) ms: every 50 ms here, so at 1 000 exactly.
      await clock.tick(999);
      expect(socket.writableEnded).toBe(false);
      await clock.tick(1);
      expect(socket.writableEnded).toBe(true);
      await fin; // the client closes its side in turn
      const result = await report;
      expect(result.connectionsClosedGracefully).toBe(1);
      expect(result.connectionsForced).toBe(0);
      expect(result.durationMs).toBe(1_000);
      expect(clock.pending()).toBe(0);
    });

    it("serve() destroys a connection that kept its side open 2 s after our FIN, not earlier", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(http.createServer((_req, res) => res.end("ok")), () => graceful);
      graceful = serve(server, { idleGraceMs: 1_000 });
      const port = await listen(server);
      const accepted = nextSocket(server);
      const client = await connect(port, { allowHalfOpen: true }); // reads our FIN, never answers with its own
      await get(client, "ok");
      const socket = await accepted;
      const fin = once(client, "end");
      const report = graceful.shutdown();
      await clock.tick(1_000);
      expect(socket.writableEnded).toBe(true);
      await fin;
      await clock.tick(1_999);
      expect(socket.destroyed).toBe(false);
      await clock.tick(1);
      expect(socket.destroyed).toBe(true);
      const result = await report;
      expect(result.durationMs).toBe(3_000);
      expect(clock.pending()).toBe(0);
    });

    it("serve() cancels request tokens exactly at drainTimeoutMs and destroys the connection after forceAnswerMs", async () => {
      clock.install();
      const tokens: CancellationToken[] = [];
      let graceful: GracefulServer | undefined;
      const server = track(
        http.createServer((req) => void tokens.push(requestToken(req))), // never answers
        () => graceful,
      );
      graceful = serve(server, { drainTimeoutMs: 30_000, forceAnswerMs: 250 });
      const port = await listen(server);
      const accepted = nextSocket(server);
      const client = await connect(port);
      const arrived = once(server, "request");
      client.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await arrived;
      const socket = await accepted;
      const token = tokens[0]!;
      const report = graceful.shutdown();
      await clock.tick(29_999);
      expect(token.isCancelled).toBe(false);
      await clock.tick(1);
      expect(isShutdownTimeoutError(token.reason)).toBe(true);
      await clock.tick(249);
      expect(socket.destroyed).toBe(false);
      await clock.tick(1);
      expect(socket.destroyed).toBe(true);
      const result = await report;
      expect(result.deadlineHit).toBe(true);
      expect(result.connectionsForced).toBe(1);
      expect(result.durationMs).toBe(30_250);
      expect(clock.pending()).toBe(0);
    });

    it("serve() counts a response finished inside the forceAnswerMs window as completed, and forces nothing", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(
        http.createServer((req, res) => {
          // Answers 100 ms (of the fake clock) after its token is cancelled at the deadline.
          requestToken(req).onCancel(() => setTimeout(() => res.end("late"), 100));
        }),
        () => graceful,
      );
      graceful = serve(server, { drainTimeoutMs: 1_000, forceAnswerMs: 250 });
      const port = await listen(server);
      const client = await connect(port);
      const arrived = once(server, "request");
      const response = get(client, "late");
      await arrived;
      const report = graceful.shutdown();
      await clock.tick(1_099);
      await clock.tick(1);
      expect(await response).toMatch(/^HTTP\/1\.1 200[\s\S]*Connection: close/i);
      const result = await report;
      expect(result.requestsCompletedWhileDraining).toBe(1);
      expect(result.connectionsForced).toBe(0);
      expect(result.deadlineHit).toBe(true);
      expect(clock.pending()).toBe(0);
    });

    it("serve() sends HTTP/2's first GOAWAY 1 s after a PING left unanswered, and closes the session 10 ms later", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(http2.createServer((_req, res) => res.end("ok")), () => graceful);
      graceful = serve(server);
      const port = await listen(server);
      // A minimal HTTP/2 client that never answers a PING: the connection preface and SETTINGS, then silence.
      const sessionArrived = once(server, "session");
      const raw = await connect(port);
      raw.on("data", () => {}); // reads (and ignores) whatever the server sends
      raw.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      const [session] = (await sessionArrived) as [http2.ServerHttp2Session];
      const log: string[] = [];
      const goaway = session.goaway.bind(session);
      const close = session.close.bind(session);
      session.goaway = (...args: Parameters<typeof session.goaway>): void => {
        log.push("goaway");
        goaway(...args);
      };
      session.close = (...args: Parameters<typeof session.close>): void => {
        log.push("close");
        close(...args);
      };
      const report = graceful.shutdown();
      await clock.tick(999);
      expect(log).toEqual([]);
      await clock.tick(1);
      expect(log).toEqual(["goaway"]);
      await clock.tick(9);
      expect(log).toEqual(["goaway"]);
      await clock.tick(1);
      expect(log.slice(0, 2)).toEqual(["goaway", "close"]); // (Node's close() may send its GOAWAY through goaway())
      const result = await report;
      expect(result.sessionsSentGoaway).toBe(1);
      expect(result.connectionsForced).toBe(0);
      expect(clock.pending()).toBe(0);
    });

    it("serve() sends the final HTTP/2 GOAWAY twice the measured round trip after the PING answer, at least 10 ms", async () => {
      clock.install();
      let graceful: GracefulServer | undefined;
      const server = track(http2.createServer((_req, res) => res.end("ok")), () => graceful);
      graceful = serve(server);
      const port = await listen(server);
      const sessionArrived = once(server, "session");
      const client = http2.connect(`http://127.0.0.1:${port}`);
      cleanups.push(() => void client.destroy());
      client.on("error", () => {});
      await once(client, "remoteSettings");
      const [session] = (await sessionArrived) as [http2.ServerHttp2Session];
      const firstGoaway = once(client, "goaway");
      const report = graceful.shutdown();
      // The PING is answered over the real socket while the fake clock stands still: a round trip of 0 ms.
      await firstGoaway;
      await clock.tick(9);
      expect(session.closed).toBe(false);
      await clock.tick(1);
      expect(session.closed).toBe(true);
      const result = await report;
      expect(result.sessionsSentGoaway).toBe(1);
      expect(clock.pending()).toBe(0);
    });
  });
}
