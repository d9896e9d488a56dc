/*
 * The public per-request tokens. Invariants live in ./request-state.ts.
 */
import type { CancellationToken } from "../cancel/cancellation-token.js";
import { typeError } from "../internal/errors.js";
import type { IncomingMessage } from "node:http";
import type { ServerHttp2Stream } from "node:http2";
import { lookupStateH1 } from "./http1.js";
import { lookupStateH2 } from "./http2.js";
import { getState, requestKey, type AnyRequest, type RequestState } from "./request-state.js";

export type { AnyRequest };

/**
 * The state of a request of a served server, created on first use;
 * `undefined` when `req` does not belong to one.
 */
function lookupState(req: object): RequestState | undefined {
  const key = requestKey(req);
  const known = getState(key);
  if (known !== undefined) return known;
  if (key !== req || typeof (req as { respond?: unknown }).respond === "function") return lookupStateH2(key as ServerHttp2Stream);
  return lookupStateH1(req as IncomingMessage);
}

function stateOf(action: string, req: unknown): RequestState {
  const state = typeof req === "object" && req !== null ? lookupState(req) : undefined;
  if (state === undefined) {
    throw typeError(action, "req", "a request (IncomingMessage, Http2ServerRequest or ServerHttp2Stream) of a server passed to serve()", req);
  }
  return state;
}

/**
 * The request's token: *cancelled* when the client goes away before the
 * response finished, and *forced* (cancelled with a `ShutdownTimeoutError`)
 * at the drain deadline. Pass it (or its `signal`) to the work the request
 * starts: database queries, `fetch` to upstreams, timers.
 *
 * When the response finishes normally the token is disposed, never
 * cancelled: work that outlives the response is not cut off. For an upgraded
 * request (WebSocket, `CONNECT`) the token lives as long as the upgraded
 * connection and is also cancelled when *draining* starts — upgraded
 * connections have no response to carry `Connection: close`, so this is
 * their notice to say goodbye (a WebSocket close 1001); the connection is
 * destroyed at the deadline.
 *
 * The same token is returned on every call for the same request. It is
 * created on the first call, so requests that never ask cost nothing. For
 * HTTP/2, pass the compat `Http2ServerRequest` or the `ServerHttp2Stream`.
 *
 * @param req - a request of a server passed to `serve()`.
 * @returns the request's token.
 * @throws TypeError when `req` does not belong to a served server (a
 *   request seen before `serve()` attached, or a framework's own wrapper:
 *   pass koa's `ctx.req`, fastify's `request.raw`).
 *
 * @example Cancel an upstream call when the client leaves
 * ```ts
 * import { requestToken, serve } from "cancelkit/http";
 * const graceful = serve(async (req, res) => {
 *   const token = requestToken(req);
 *   console.assert(requestToken(req) === token && !token.isCancelled);
 *   const upstream = await fetch("http://127.0.0.1:9000/slow", { signal: token.signal });
 *   res.end(await upstream.text());
 * });
 * ```
 */
export function requestToken(req: AnyRequest): CancellationToken {
  return stateOf("get requestToken()", req).getToken();
}

/**
 * The request's *draining* token: cancelled softly when draining starts
 * (with the shutdown's reason), and whenever the request token is
 * (the client went away, the deadline). A streaming response — SSE, long
 * poll, a chunked feed — ends cleanly when it fires: send a final event,
 * then `res.end()`. The connection is then closed after the response, long
 * before the deadline.
 *
 * It is a *child* of {@link requestToken}'s token; disposed with it when the
 * response finishes normally. Created on the first call.
 *
 * @param req - a request of a server passed to `serve()`.
 * @returns the request's draining token.
 * @throws TypeError when `req` does not belong to a served server.
 *
 * @example End an SSE stream when the server drains
 * ```ts
 * import { drainingToken, serve } from "cancelkit/http";
 * const graceful = serve((req, res) => {
 *   res.writeHead(200, { "content-type": "text/event-stream" });
 *   const timer = setInterval(() => res.write("data: tick\n\n"), 1000);
 *   drainingToken(req).onCancel(() => {
 *     clearInterval(timer);
 *     res.end("event: bye\ndata: server restarting\n\n");
 *   });
 * });
 * console.assert(graceful.state.borrow() === "serving");
 * ```
 */
export function drainingToken(req: AnyRequest): CancellationToken {
  return stateOf("get drainingToken()", req).getDrainingToken();
}
