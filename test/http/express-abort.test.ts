/*
 * The express 5 recipe of docs/frameworks.md: a client that goes away
 * cancels the request token; the work rejects with its reason (or, from
 * Node's own APIs, an AbortError whose `cause` is that reason), and the
 * recipe's error handler keeps it out of express's default handler, which
 * prints a stack for every abort.
 */
import express, { type ErrorRequestHandler, type Request } from "express";
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
