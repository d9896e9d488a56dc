/*
 * The express 5 and koa 3 recipes of docs/frameworks.md: a client that goes away
 * cancels the request token; the work rejects with its reason (or, from
 * Node's own APIs, an AbortError whose `cause` is that reason), and the
 * recipe's error handler keeps it out of the framework's default handler,
 * which prints a stack for every abort.
 */
import express, { type ErrorRequestHandler, type Request } from "express";
import Koa from "koa";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { requestToken, serve } from "../../src/http/index.js";
import { latch, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

afterEach(() => {
  vi.restoreAllMocks();
});

/** The recipe, as in docs/frameworks.md. */
const ignoreAborts: ErrorRequestHandler = (err, req, res, next) => {
  const token = requestToken(req);
  // Our reason itself, or Node's AbortError wrapping it (timers/promises, events.once, streams).
  if (token.isCancelled && (err === token.reason || (err as { cause?: unknown } | null)?.cause === token.reason)) {
    // The client went away (or the drain deadline passed): nobody reads an answer.
    if (!res.headersSent && !res.writableEnded) res.status(503).end();
    return;
  }
  next(err);
};

/** A client sends GET /slow and goes away while the handler waits on the request token. */
async function abortOnce(withRecipe: boolean): Promise<{ printed: () => unknown[][]; handled: Promise<void> }> {
  const errors = vi.spyOn(console, "error").mockImplementation(() => {});
  const arrived = latch();
  const handled = latch();
  let seen: Request | undefined;
  const app = express();
  app.set("env", "production"); // express's default handler prints unless env is "test"
  app.get("/slow", async (req, res) => {
    seen = req;
    arrived.release();
    await sleep(60_000, undefined, { signal: requestToken(req).signal });
    res.send("late");
  });
  if (withRecipe) {
    app.use(((err, req, res, next) => {
      ignoreAborts(err, req, res, next);
      handled.release();
    }) as ErrorRequestHandler);
  } else {
    errors.mockImplementation(() => handled.release());
  }
  const server = cleanup.add(http.createServer(app));
  const graceful = serve(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await arrived.promise;
  socket.destroy();
  await requestToken(seen!).cancelled();
  await handled.promise;
  await graceful.shutdown();
  return { printed: () => errors.mock.calls, handled: handled.promise };
}

describe("express 5 and a client that goes away", () => {
  it("express's default error handler prints an AbortError stack when the client aborts (the problem)", async () => {
    const { printed } = await abortOnce(false);
    expect(printed()).toHaveLength(1);
    expect(String((printed()[0]![0] as Error).stack ?? printed()[0]![0])).toMatch(/AbortError/);
  });

  it("the recipe's error handler keeps a client abort out of express's default handler", async () => {
    const { printed } = await abortOnce(true);
    expect(printed()).toEqual([]);
  });
});

/** The koa recipe, as in docs/frameworks.md. */
const koaIgnoreAborts: Koa.Middleware = async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    const token = requestToken(ctx.req);
    if (token.isCancelled && (err === token.reason || (err as { cause?: unknown } | null)?.cause === token.reason)) {
      ctx.status = 503;
      return;
    }
    throw err;
  }
};

async function koaAbortOnce(withRecipe: boolean): Promise<unknown[][]> {
  const errors = vi.spyOn(console, "error").mockImplementation(() => {});
  const arrived = latch();
  const handled = latch();
  let seen: http.IncomingMessage | undefined;
  const app = new Koa();
  if (withRecipe) {
    app.use(async (ctx, next) => {
      await koaIgnoreAborts(ctx, next);
      handled.release();
    });
  } else {
    errors.mockImplementation(() => handled.release());
  }
  app.use(async (ctx) => {
    seen = ctx.req;
    arrived.release();
    await sleep(60_000, undefined, { signal: requestToken(ctx.req).signal });
    ctx.body = "late";
  });
  const server = cleanup.add(http.createServer(app.callback()));
  const graceful = serve(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await arrived.promise;
  socket.destroy();
  await requestToken(seen!).cancelled();
  await handled.promise;
  await graceful.shutdown();
  return errors.mock.calls;
}

describe("koa 3 and a client that goes away", () => {
  it("koa's default error handler prints the abort when the client goes away (the problem)", async () => {
    const printed = await koaAbortOnce(false);
    expect(printed.length).toBeGreaterThan(0);
    expect(printed.flat().map(String).join("\n")).toMatch(/AbortError|aborted/);
  });

  it("the recipe's middleware keeps a client abort out of koa's error handler", async () => {
    expect(await koaAbortOnce(true)).toEqual([]);
  });
});
