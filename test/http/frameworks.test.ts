/*
 * serve() on the servers that express 5, fastify 5 and koa 3 build, with
 * real clients over loopback:
 * - scenario 1: a slow request in flight at shutdown completes, and its
 *   response carries `Connection: close`;
 * - scenario 9: keep-alive load (http.Agent and undici), shutdown mid-load,
 *   no request lost, refused connections counted apart.
 * The slow handler waits on a gate the test opens after draining started, so
 * "in flight at shutdown" is scripted, not timed.
 */
import http from "node:http";
import { once } from "node:events";
import express from "express";
import Fastify from "fastify";
import Koa from "koa";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { serve } from "../../src/http/index.js";
import { agentClient, emptyTally, runLoad, settledHandles, socketHandles, undiciClient, type Tally } from "./load-clients.js";

interface Hooks {
  /** Called when the slow handler has started. */
  entered: () => void;
  /** The slow handler answers once this settles. */
  gate: Promise<void>;
}

interface Started {
  server: http.Server;
  /** The framework's own teardown, after serve() drained (a no-op where there is none). */
  cleanup: () => Promise<void>;
}

/** Each framework with two routes: `/` answers at once, `/slow` waits for the gate. */
const frameworks: Record<string, (hooks: Hooks) => Promise<Started>> = {
  "express 5": async (hooks) => {
    const app = express();
    app.get("/slow", async (_req, res) => {
      hooks.entered();
      await hooks.gate;
      res.send("slow done");
    });
    app.get("/", (_req, res) => {
      res.send("ok");
    });
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, cleanup: async () => {} };
  },
  "fastify 5": async (hooks) => {
    const app = Fastify();
    app.get("/slow", async () => {
      hooks.entered();
      await hooks.gate;
      return "slow done";
    });
    app.get("/", async () => "ok");
    await app.listen({ port: 0, host: "127.0.0.1" });
    return { server: app.server, cleanup: () => app.close() };
  },
  "koa 3": async (hooks) => {
    const app = new Koa();
    app.use(async (ctx) => {
      if (ctx.path === "/slow") {
        hooks.entered();
        await hooks.gate;
        ctx.body = "slow done";
      } else {
        ctx.body = "ok";
      }
    });
    const server = http.createServer(app.callback());
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, cleanup: async () => {} };
  },
};

function portOf(server: http.Server): number {
  return (server.address() as { port: number }).port;
}

/** A GET on `agent` that resolves with status, body and the Connection header. */
function get(port: number, path: string, agent: http.Agent) {
  return new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

// No test may leave a socket or server behind (counted from before the suite).
let baseline: ReturnType<typeof socketHandles>;
beforeAll(() => {
  baseline = socketHandles();
});
afterEach(async () => {
  expect(await settledHandles(baseline)).toEqual(baseline);
});

describe.each(Object.entries(frameworks))("serve() on %s", (_name, start) => {
  it("completes a slow request in flight at shutdown, with Connection: close (scenario 1)", async () => {
    const slow = gate();
    const entered = gate();
    const { server, cleanup } = await start({ entered: entered.open, gate: slow.promise });
    const graceful = serve(server, { idleGraceMs: 200, drainTimeoutMs: 10_000 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const port = portOf(server);
      // Before the drain the socket is kept alive, so the close below is the drain's doing.
      const warm = await get(port, "/", agent);
      expect(warm).toMatchObject({ status: 200, body: "ok", connection: "keep-alive" });

      const response = get(port, "/slow", agent);
      await entered.promise;
      const shutdown = graceful.shutdown();
      await graceful.state.waitFor((s) => s === "draining" || s === "closed");
      expect(graceful.state.borrow()).toBe("draining");
      slow.open();

      expect(await response).toEqual({ status: 200, body: "slow done", connection: "close" });
      const report = await shutdown;
      expect(report.requestsCompletedWhileDraining).toBeGreaterThanOrEqual(1);
      expect(report.connectionsForced).toBe(0);
      expect(report.deadlineHit).toBe(false);
      expect(server.listening).toBe(false);
      expect(graceful.state.borrow()).toBe("closed");
    } finally {
      slow.open();
      agent.destroy();
      await graceful.shutdown();
      await cleanup();
    }
  });

  it("loses no request under keep-alive load with shutdown mid-load (scenario 9)", async () => {
    const { server, cleanup } = await start({ entered: () => {}, gate: Promise.resolve() });
    const graceful = serve(server, { idleGraceMs: 200, drainTimeoutMs: 4000 });
    const port = portOf(server);
    const clients = [agentClient(port, 16), undiciClient(port, 8)];
    const tallies: Tally[] = clients.map(() => emptyTally());
    let answered = 0;
    let shutdown: ReturnType<typeof graceful.shutdown> | undefined;
    const onOk = () => {
      if (++answered === 300) shutdown = graceful.shutdown();
    };
    try {
      await Promise.all(clients.map((client, i) => runLoad(client, tallies[i]!, { loops: 16, maxPerLoop: 300, onOk })));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    const startedMidLoad = shutdown !== undefined;
    // Shut down in any case, so a failing run leaves no server behind.
    const report = await (shutdown ?? graceful.shutdown());
    await cleanup();
    expect(startedMidLoad, "shutdown started mid-load").toBe(true);
    for (const tally of tallies) {
      expect(tally.failures, "lost or failed requests").toEqual([]);
      expect(tally.lost).toBe(0);
      expect(tally.other).toBe(0);
      expect(tally.non2xx).toBe(0);
      expect(tally.exhausted).toBe(0);
      expect(tally.refused).toBe(16);
    }
    expect(tallies[0]!.ok + tallies[1]!.ok).toBeGreaterThanOrEqual(300);
    expect(tallies[0]!.connectionClose + tallies[1]!.connectionClose).toBeGreaterThan(0);
    expect(report.connectionsForced).toBe(0);
    expect(report.deadlineHit).toBe(false);
  });
});
