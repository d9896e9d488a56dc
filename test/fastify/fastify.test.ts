/*
 * cancelkitFastify against fastify 5, over real loopback sockets: close()
 * drains, the onClose hooks run after the last response, the request's
 * tokens are on the request.
 */
import Fastify, { type FastifyInstance } from "fastify";
import * as http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { cancelkitFastify } from "../../src/fastify/index.js";
import { drainingToken, requestToken } from "../../src/http/index.js";
import { latch, openHandles } from "../http/helpers.js";

const apps: FastifyInstance[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  expect(await openHandles()).toEqual([]);
});

function get(port: number, path: string, agent: http.Agent | false = false): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body, connection: res.headers.connection }));
      })
      .on("error", reject);
  });
}

async function start(app: FastifyInstance): Promise<number> {
  apps.push(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  return (app.server.address() as { port: number }).port;
}

describe("cancelkitFastify", () => {
  it("app.close() lets the request in flight finish, then runs the onClose hooks", async () => {
    const order: string[] = [];
    const gate = latch();
    const arrived = latch();
    const app = Fastify({ return503OnClosing: false });
    await app.register(cancelkitFastify, { drainTimeoutMs: 10_000 });
    app.get("/slow", async () => {
      arrived.release();
      await gate.promise;
      order.push("handler answered");
      return "slow";
    });
    app.addHook("onClose", async () => void order.push("onClose"));
    const port = await start(app);
    const slow = get(port, "/slow");
    await arrived.promise;
    const closed = app.close().then(() => order.push("close() resolved"));
    await app.graceful.state.waitFor((s) => s === "draining");
    expect(order).toEqual([]);
    gate.release();
    expect(await slow).toEqual({ status: 200, body: "slow", connection: "close" });
    await closed;
    expect(order).toEqual(["handler answered", "onClose", "close() resolved"]);
    expect(app.graceful.state.borrow()).toBe("closed");
  });

  it("cancelkitFastify serves a request that arrives on a kept-alive connection during the drain, with Connection: close", async () => {
    const gate = latch();
    const arrived = latch();
    const app = Fastify({ return503OnClosing: false });
    await app.register(cancelkitFastify, { idleGraceMs: 10_000 });
    app.get("/", async () => "ok");
    app.get("/slow", async () => {
      arrived.release();
      await gate.promise;
      return "slow";
    });
    const port = await start(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect((await get(port, "/", agent)).connection).toBe("keep-alive");
    const slow = get(port, "/slow", false);
    await arrived.promise;
    const closed = app.close();
    await app.graceful.state.waitFor((s) => s === "draining");
    // The idle kept-alive connection is reused within its grace.
    expect(await get(port, "/", agent)).toEqual({ status: 200, body: "ok", connection: "close" });
    gate.release();
    await slow;
    await closed;
    agent.destroy();
  });

  it("a drain started by the signal is the one app.close() waits for", async () => {
    const stop = new CancellationToken();
    const order: string[] = [];
    const app = Fastify();
    await app.register(cancelkitFastify, { signal: stop });
    app.addHook("onClose", async () => void order.push("onClose"));
    await start(app);
    stop.cancel("SIGTERM");
    const report = await app.graceful.shutdown();
    expect(order).toEqual([]);
    await app.close();
    expect(order).toEqual(["onClose"]);
    expect(report.deadlineHit).toBe(false);
  });

  it("request.requestToken and request.drainingToken are the request's tokens", async () => {
    const app = Fastify();
    await app.register(cancelkitFastify);
    let same: boolean[] = [];
    app.get("/", async (request) => {
      same = [request.requestToken === requestToken(request.raw), request.drainingToken === drainingToken(request.raw)];
      return { live: !request.requestToken.isCancelled };
    });
    const port = await start(app);
    expect(JSON.parse((await get(port, "/")).body)).toEqual({ live: true });
    expect(same).toEqual([true, true]);
  });

  it("request.drainingToken is cancelled when the drain starts, so a long poll ends cleanly", async () => {
    const arrived = latch();
    const app = Fastify({ return503OnClosing: false });
    await app.register(cancelkitFastify);
    app.get("/poll", async (request) => {
      arrived.release();
      await request.drainingToken.cancelled();
      return "bye";
    });
    const port = await start(app);
    const poll = get(port, "/poll");
    await arrived.promise;
    await app.close();
    expect((await poll).body).toBe("bye");
  });

  it("cancelkitFastify rejects unknown options through app.register, naming the option", async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(cancelkitFastify, { drainTimeout: 5 } as never)).rejects.toThrow(
      new TypeError("Cannot register cancelkitFastify: unknown option 'drainTimeout' (did you mean 'drainTimeoutMs'?)"),
    );
  });

  it("cancelkitFastify accepts fastify's own register options", async () => {
    const app = Fastify();
    await app.register(cancelkitFastify, { prefix: "/x", logLevel: "warn", beforeCloseMs: 0 });
    await start(app);
    expect(app.graceful.isReady).toBe(true);
  });
});
