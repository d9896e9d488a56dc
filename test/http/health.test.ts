/*
 * readinessHandler(), livenessHandler() and healthServer() over real
 * loopback sockets, in this process. The process-level rules (behind
 * HAProxy, never holding the process) are in health-process.test.ts.
 */
import * as http from "node:http";
import { describe, expect, it } from "vitest";
import { healthServer, livenessHandler, readinessHandler, serve, type HealthHandler } from "../../src/http/index.js";
import { createServer, h2connect, h2request, latch, listen, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

interface Probe {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function probe(port: number, path: string, method = "GET"): Promise<Probe> {
  return new Promise((resolve, reject) => {
    http
      .request({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      })
      .on("error", reject)
      .end();
  });
}

/** An app that answers `/ready` and `/live` with the given handlers, and "hello" elsewhere. */
function app(handlers: { ready?: () => HealthHandler; live?: () => HealthHandler }): http.Server {
  return cleanup.add(
    http.createServer((req, res) => {
      if (req.url === "/ready" && handlers.ready) return handlers.ready()(req, res);
      if (req.url === "/live" && handlers.live) return handlers.live()(req, res);
      res.end("hello");
    }),
  );
}

describe("readinessHandler() mounted in the app", () => {
  it("readinessHandler() answers 200 with JSON while the app is ready", async () => {
    let ready!: HealthHandler;
    const server = app({ ready: () => ready });
    const graceful = serve(server);
    ready = readinessHandler(graceful);
    const port = await listen(server);
    const answer = await probe(port, "/ready");
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ status: "ok", checks: {} });
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(answer.headers["cache-control"]).toBe("no-store");
    await graceful.shutdown();
  });

  it("readinessHandler() answers 503 from the moment shutdown starts, during beforeCloseMs, while the app still serves", async () => {
    let ready!: HealthHandler;
    const server = app({ ready: () => ready });
    const graceful = serve(server, { beforeCloseMs: 60_000 });
    ready = readinessHandler(graceful, { checks: { never: () => Promise.reject(new Error("must not run")) } });
    const port = await listen(server);
    const done = graceful.shutdown();
    expect(graceful.state.borrow()).toBe("serving");
    const answer = await probe(port, "/ready");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({ status: "unavailable", reason: "shutting down" });
    expect((await probe(port, "/")).body).toBe("hello");
    await graceful.force();
    await done;
  });

  it("readinessHandler() answers 503 naming the check that failed or threw", async () => {
    let ready!: HealthHandler;
    const server = app({ ready: () => ready });
    const graceful = serve(server);
    ready = readinessHandler(graceful, {
      checks: {
        db: async () => {},
        cache: () => Promise.reject(new Error("connection refused")),
        queue: () => {
          throw new TypeError("bad config");
        },
      },
    });
    const port = await listen(server);
    const answer = await probe(port, "/ready");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({
      status: "unavailable",
      checks: { db: "ok", cache: "Error: connection refused", queue: "TypeError: bad config" },
    });
    await graceful.shutdown();
  });

  it("readinessHandler() fails a check that outlives timeoutMs and aborts its signal with a TimeoutError", async () => {
    let ready!: HealthHandler;
    let seen: AbortSignal | undefined;
    const server = app({ ready: () => ready });
    const graceful = serve(server);
    ready = readinessHandler(graceful, {
      timeoutMs: 20,
      checks: {
        slow: (signal) => {
          seen = signal;
          return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
        },
      },
    });
    const port = await listen(server);
    const answer = await probe(port, "/ready");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).checks.slow).toBe("TimeoutError: The check did not answer within 20 ms");
    expect(seen!.aborted).toBe(true);
    expect((seen!.reason as DOMException).name).toBe("TimeoutError");
    await graceful.shutdown();
  });

  it("readinessHandler() runs a check at most once at a time: probes that arrive meanwhile share its answer", async () => {
    let ready!: HealthHandler;
    const gate = latch();
    let runs = 0;
    let probes = 0;
    const bothArrived = latch();
    const server = app({
      ready: () => (req, res) => {
        ready(req, res);
        if (++probes === 2) bothArrived.release();
      },
    });
    const graceful = serve(server);
    ready = readinessHandler(graceful, {
      timeoutMs: 60_000,
      checks: {
        db: async () => {
          runs++;
          await gate.promise;
        },
      },
    });
    const port = await listen(server);
    const first = probe(port, "/ready");
    const second = probe(port, "/ready");
    await bothArrived.promise;
    expect(runs).toBe(1);
    gate.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(runs).toBe(1);
    expect((await probe(port, "/ready")).status).toBe(200);
    expect(runs).toBe(2);
    await graceful.shutdown();
  });

  it("readinessHandler() starts no new run of a check that ignores its signal until it settles", async () => {
    let ready!: HealthHandler;
    const gate = latch();
    let runs = 0;
    const server = app({ ready: () => ready });
    const graceful = serve(server);
    ready = readinessHandler(graceful, {
      timeoutMs: 10,
      checks: {
        stuck: async () => {
          runs++;
          await gate.promise; // ignores the signal
        },
      },
    });
    const port = await listen(server);
    expect((await probe(port, "/ready")).status).toBe(503);
    expect((await probe(port, "/ready")).status).toBe(503);
    expect(runs).toBe(1);
    gate.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect((await probe(port, "/ready")).status).toBe(200);
    expect(runs).toBe(2);
    await graceful.shutdown();
  });

  it("readinessHandler() answers HEAD with the status and no body", async () => {
    let ready!: HealthHandler;
    const server = app({ ready: () => ready });
    const graceful = serve(server);
    ready = readinessHandler(graceful);
    const port = await listen(server);
    const answer = await probe(port, "/ready", "HEAD");
    expect(answer.status).toBe(200);
    expect(answer.body).toBe("");
    await graceful.shutdown();
  });
});

describe("health handlers over HTTP/2", () => {
  it.each(["h2c", "h2"] as const)("readinessHandler() answers over %s through the compatibility API, 503 once shutdown starts", async (protocol) => {
    let ready!: HealthHandler;
    const server = cleanup.add(createServer(protocol, (req, res) => ready(req, res)));
    const graceful = serve(server, { beforeCloseMs: 60_000 });
    ready = readinessHandler(graceful, { checks: { db: async () => {} } });
    const port = await listen(server);
    const session = cleanup.add(await h2connect(protocol, port));
    const before = await h2request(session, "/ready").done;
    expect({ status: before.status, body: JSON.parse(before.body) }).toEqual({ status: 200, body: { status: "ok", checks: { db: "ok" } } });
    const done = graceful.shutdown();
    const after = await h2request(session, "/ready").done;
    expect(after.status).toBe(503);
    session.close();
    await graceful.force();
    await done;
  });
});

describe("livenessHandler()", () => {
  it("livenessHandler() answers 200 while the app drains: a draining process is alive", async () => {
    const live = livenessHandler();
    const server = app({ live: () => live });
    const graceful = serve(server, { beforeCloseMs: 60_000 });
    const port = await listen(server);
    const done = graceful.shutdown();
    expect(graceful.isReady).toBe(false);
    expect((await probe(port, "/live")).status).toBe(200);
    await graceful.force();
    await done;
  });

  it("livenessHandler() answers 503 when a check fails", async () => {
    const live = livenessHandler({ checks: { loop: () => Promise.reject(new Error("stuck")) } });
    const server = app({ live: () => live });
    const graceful = serve(server);
    const port = await listen(server);
    const answer = await probe(port, "/live");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({ status: "unavailable", checks: { loop: "Error: stuck" } });
    await graceful.shutdown();
  });
});

describe("healthServer() on its own port", () => {
  it("healthServer() answers readiness 503 and liveness 200 while the app drains, and closes after the app", async () => {
    const gate = latch();
    const arrived = latch();
    const appServer = cleanup.add(
      http.createServer((_req, res) => {
        arrived.release();
        void gate.promise.then(() => res.end("slow"));
      }),
    );
    const graceful = serve(appServer);
    const health = healthServer(graceful);
    cleanup.add(health.server as http.Server);
    const appPort = await listen(appServer);
    const healthPort = await listen(health.server as http.Server);
    expect((await probe(healthPort, "/ready?verbose=1")).status).toBe(200);
    expect((await probe(healthPort, "/live")).status).toBe(200);
    expect((await probe(healthPort, "/other")).status).toBe(404);

    const order: string[] = [];
    void graceful.state.clone().waitFor((s) => s === "closed").then(() => order.push("app closed"));
    void health.state.clone().waitFor((s) => s === "closed").then(() => order.push("health closed"));
    const slow = probe(appPort, "/slow");
    await arrived.promise;
    const drained = graceful.shutdown();
    expect(graceful.state.borrow()).toBe("draining");
    expect((await probe(healthPort, "/ready")).status).toBe(503);
    expect((await probe(healthPort, "/live")).status).toBe(200);
    expect(health.state.borrow()).toBe("serving");
    gate.release();
    expect((await slow).body).toBe("slow");
    await drained;
    const report = await health.shutdown();
    expect(order).toEqual(["app closed", "health closed"]);
    expect(report.deadlineHit).toBe(false);
  });

  it("healthServer() uses the given paths", async () => {
    const graceful = serve(cleanup.add(http.createServer((_req, res) => res.end())));
    const health = healthServer(graceful, { readyPath: "/healthz/ready", livePath: "/healthz/live" });
    cleanup.add(health.server as http.Server);
    const port = await listen(health.server as http.Server);
    expect((await probe(port, "/healthz/ready")).status).toBe(503); // the app is not listening
    expect((await probe(port, "/healthz/live")).status).toBe(200);
    expect((await probe(port, "/ready")).status).toBe(404);
    await graceful.shutdown();
    await health.shutdown();
  });
});

describe("health handlers misuse", () => {
  it("readinessHandler() and healthServer() reject what serve() did not return, naming the call", () => {
    expect(() => readinessHandler({} as never)).toThrow(new TypeError("Cannot create readinessHandler(): 'graceful' must be what serve() returns, received an object"));
    expect(() => healthServer(null as never)).toThrow(TypeError);
  });

  it("health handlers reject unknown options and wrong values before creating anything", () => {
    expect(() => livenessHandler({ check: {} } as never)).toThrow(new TypeError("Cannot create livenessHandler(): unknown option 'check' (did you mean 'checks'?)"));
    expect(() => livenessHandler({ timeoutMs: -1 })).toThrow(RangeError);
    expect(() => livenessHandler({ checks: { db: "ping" as never } })).toThrow(new TypeError(`Cannot create livenessHandler(): 'options.checks.db' must be a function, received string "ping"`));
    const graceful = serve(cleanup.add(http.createServer()));
    expect(() => healthServer(graceful, { readyPath: "ready" })).toThrow(TypeError);
    expect(() => healthServer(graceful, { readiness: { timeoutMs: "1" as never } })).toThrow(TypeError);
    void graceful.shutdown();
  });
});
