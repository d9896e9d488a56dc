/*
 * Scenario 9 of issue 5: keep-alive load with many clients, shutdown in the
 * middle of it. Every request ends either answered (2xx) or refused
 * (ECONNREFUSED after the listener closed); none is lost (reset, EPIPE,
 * "socket hang up", UND_ERR_SOCKET). Shutdown starts after a fixed number of
 * answered requests, not after a wall-clock delay, so it always lands while
 * every loop is busy.
 */
import http from "node:http";
import { once } from "node:events";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { serve } from "../../src/http/index.js";
import { agentClient, emptyTally, runLoad, settledHandles, socketHandles, undiciClient, type LoadClient, type Tally } from "./load-clients.js";

const LOOPS = 32;
const MAX_PER_LOOP = 400; // 12,800 requests per client kind at most
const SHUTDOWN_AFTER_OK = 500;

// No test may leave a socket or server behind (counted from before the suite).
let baseline: ReturnType<typeof socketHandles>;
beforeAll(() => {
  baseline = socketHandles();
});
afterEach(async () => {
  expect(await settledHandles(baseline)).toEqual(baseline);
});

/** A server whose handler answers after 0–3 ms, so shutdown finds requests in flight. */
async function startServer() {
  let n = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    setTimeout(() => res.end("ok\n"), n++ % 4);
  });
  const graceful = serve(server, { idleGraceMs: 200, drainTimeoutMs: 4000 });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, graceful, port: (server.address() as { port: number }).port };
}

/** Drives `clients` concurrently; calls shutdown() once SHUTDOWN_AFTER_OK requests were answered. */
async function loadThenShutdown(makeClients: (port: number) => LoadClient[]) {
  const { server, graceful, port } = await startServer();
  const clients = makeClients(port);
  const tallies: Tally[] = clients.map(() => emptyTally());
  let answered = 0;
  let shutdown: ReturnType<typeof graceful.shutdown> | undefined;
  const onOk = () => {
    if (++answered === SHUTDOWN_AFTER_OK) shutdown = graceful.shutdown();
  };
  try {
    await Promise.all(clients.map((client, i) => runLoad(client, tallies[i]!, { loops: LOOPS / clients.length, maxPerLoop: MAX_PER_LOOP, onOk })));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  const startedMidLoad = shutdown !== undefined;
  // Shut down in any case, so a failing run leaves no server behind.
  const report = await (shutdown ?? graceful.shutdown());
  expect(startedMidLoad, "shutdown started mid-load").toBe(true);
  return { server, graceful, report, tallies };
}

function expectNoneLost(tally: Tally) {
  expect(tally.failures, "lost or failed requests").toEqual([]);
  expect(tally.lost).toBe(0);
  expect(tally.other).toBe(0);
  expect(tally.non2xx).toBe(0);
  // Every loop ended because the listener was gone, not because it ran out.
  expect(tally.exhausted).toBe(0);
}

describe("serve() under keep-alive load (scenario 9)", () => {
  it("loses no http.Agent request when shutdown starts mid-load; refused connections are counted apart", async () => {
    const { server, graceful, report, tallies } = await loadThenShutdown((port) => [agentClient(port, LOOPS)]);
    const [tally] = tallies as [Tally];
    expectNoneLost(tally);
    expect(tally.ok).toBeGreaterThanOrEqual(SHUTDOWN_AFTER_OK);
    // Each loop ends at exactly one refused connection, after the drain.
    expect(tally.refused).toBe(LOOPS);
    // The drain told clients: responses in flight at shutdown said close.
    expect(tally.connectionClose).toBeGreaterThan(0);
    expect(report.connectionsForced).toBe(0);
    expect(report.deadlineHit).toBe(false);
    expect(report.requestsCompletedWhileDraining).toBeGreaterThan(0);
    expect(server.listening).toBe(false);
    expect(graceful.state.borrow()).toBe("closed");
  });

  it("loses no undici request when shutdown starts mid-load", async () => {
    const { report, tallies } = await loadThenShutdown((port) => [undiciClient(port, 16)]);
    const [tally] = tallies as [Tally];
    expectNoneLost(tally);
    expect(tally.ok).toBeGreaterThanOrEqual(SHUTDOWN_AFTER_OK);
    expect(tally.refused).toBe(LOOPS);
    expect(tally.connectionClose).toBeGreaterThan(0);
    expect(report.connectionsForced).toBe(0);
    expect(report.deadlineHit).toBe(false);
  });

  it("loses no request from http.Agent and undici sharing the server", async () => {
    const { report, tallies } = await loadThenShutdown((port) => [agentClient(port, LOOPS / 2), undiciClient(port, LOOPS / 4)]);
    for (const tally of tallies) {
      expectNoneLost(tally);
      expect(tally.refused).toBe(LOOPS / 2);
    }
    expect(tallies[0]!.ok + tallies[1]!.ok).toBeGreaterThanOrEqual(SHUTDOWN_AFTER_OK);
    expect(report.connectionsForced).toBe(0);
    expect(report.connectionsClosedGracefully).toBeGreaterThan(0);
  });
});
