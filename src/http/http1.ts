/*
 * HTTP/1 connection policy: how requests are seen, how a connection is told
 * to close, when it counts as idle, and how it is ended.
 *
 * Invariants:
 * 1. Requests are seen through the `http.server.request.start` diagnostics
 *    channel, which Node publishes for every request before it emits any
 *    event ('request', 'checkContinue', 'checkExpectation', or none when it
 *    answers by itself), so `Connection: close` is set before any user
 *    handler runs, synchronous ones included. Responses leave their
 *    connection's `queue` through `http.server.response.finish`, which Node
 *    publishes first thing when a response finishes. Both channels are
 *    subscribed while any server is served: a subscriber costs one
 *    short-lived message object per request, less than a 'request'
 *    listener, and changes nothing about which events Node emits. A message
 *    finds its connection on the socket (conn.ts, invariant 2) and what to
 *    do in its `mode`; the serving path is one `push` and one `pop`.
 * 2. `queue` holds a connection's responses in flight in request order
 *    (HTTP/1 responses finish in that order), so its last entry is the
 *    newest. A finished response is never kept: holding every keep-alive
 *    connection's last response made V8 grow the young generation fourfold
 *    under load. `active` is only kept from the drain start on.
 * 3. Only the last response in flight may say `Connection: close`: with
 *    pipelining, Node closes the socket after the first response that does,
 *    and requests already received behind it would be dropped.
 * 4. Idle means: no response in flight and no byte moved since the later of
 *    the drain start and the last response. A byte received while idle is a
 *    request arriving (its headers or body still on the wire): the
 *    connection is then in flight, not idle, until a response finishes; it
 *    is bounded by Node's `headersTimeout` / `requestTimeout` and by the
 *    deadline, never by the idle grace.
 * 5. A connection idle for the grace is ended with a FIN. From that instant
 *    no request read from it reaches a handler, a token or our hooks: its
 *    parser's `onIncoming` is replaced by one that discards the request and
 *    counts it, so the client sees the connection close with no response
 *    and nothing ran. A client that ignores the FIN is destroyed after
 *    `LINGER_MS`. A socket without that parser (a stalled TLS handshake, a
 *    pre-attach HTTP/2 socket) is destroyed instead of ended: what arrives
 *    after is answered by a reset, never parsed.
 * 6. A socket without Node's HTTP parser (Bun's `node:http`, which also
 *    publishes neither channel and counts no bytes) is *listened*: its
 *    requests are seen by a 'request' listener prepended to the server,
 *    added with the first such socket, and its responses by their own
 *    'finish' / 'close'. Neither a request arriving nor one after a FIN can
 *    be seen there, so such a connection is never ended for idleness: only
 *    `Connection: close`, the runtime's own keep-alive timeout and the
 *    deadline close it.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Conn, connOf, DRAIN, H1, LISTENED_DRAIN, LISTENED_QUEUE, QUEUE, transferred } from "./conn.js";
import { ABORTED, clientGoneReason, FINISHED, getState, RequestState, setState } from "./request-state.js";

/** How long a connection we sent a FIN may stay open before it is destroyed. */
const LINGER_MS = 2000;

interface RequestStartMessage {
  request: IncomingMessage;
  response: ServerResponse;
  socket: Socket;
  server: unknown;
}

interface ResponseFinishMessage {
  response: ServerResponse;
  socket: Socket;
}

const REQUEST_START = "http.server.request.start";
const RESPONSE_FINISH = "http.server.response.finish";

/** Served servers: adopts a socket accepted before `serve()` attached, on its first request. */
const adopters = new WeakMap<object, (socket: Socket) => Conn>();
let servedServers = 0;

/** Starts seeing `server`'s HTTP/1 requests (both channels are subscribed while any server is). */
export function watchRequests(server: object, adopt: (socket: Socket) => Conn): void {
  adopters.set(server, adopt);
  if (servedServers++ === 0) {
    diagnosticsChannel.subscribe(REQUEST_START, onRequestStart);
    diagnosticsChannel.subscribe(RESPONSE_FINISH, onResponseFinishMessage);
  }
}

export function unwatchRequests(server: object): void {
  if (!adopters.delete(server)) return;
  if (--servedServers === 0) {
    diagnosticsChannel.unsubscribe(REQUEST_START, onRequestStart);
    diagnosticsChannel.unsubscribe(RESPONSE_FINISH, onResponseFinishMessage);
  }
}

/** Every HTTP/1 request of the process, served or not (invariant 1). */
function onRequestStart(message: unknown): void {
  const m = message as RequestStartMessage;
  const conn = connOf(m.socket) ?? adopters.get(m.server as object)?.(m.socket);
  if (conn === undefined) return;
  if (conn.mode === QUEUE) conn.queue.push(m.response); // the hot path: one push, nothing allocated
  else if (conn.mode === DRAIN) {
    conn.active++;
    conn.queue.push(m.response);
    announceClose(conn, m.response);
  }
}

/** Every HTTP/1 response of the process that finishes, tracked or not. */
function onResponseFinishMessage(message: unknown): void {
  const m = message as ResponseFinishMessage;
  const conn = connOf(m.socket);
  if (conn !== undefined && (conn.mode === QUEUE || conn.mode === DRAIN)) onResponseFinish(conn, m.response);
}

/** `true` when `socket` carries Node's HTTP/1 parser (invariant 6). */
export function hasNodeParser(socket: Socket): boolean {
  const parser = (socket as Socket & { parser?: { onIncoming?: unknown } | null }).parser;
  return typeof parser?.onIncoming === "function";
}

/** The fallback request hook of a listened connection (invariant 6): a prepended 'request' listener. */
export function onListenedRequest(req: IncomingMessage, res: ServerResponse): void {
  const conn = connOf(req.socket);
  if (conn === undefined || (conn.mode !== LISTENED_QUEUE && conn.mode !== LISTENED_DRAIN)) return;
  conn.queue.push(res);
  if (conn.mode === LISTENED_DRAIN) {
    conn.active++;
    announceClose(conn, res);
  }
  res.once("finish", () => {
    if (conn.mode === LISTENED_QUEUE || conn.mode === LISTENED_DRAIN) onResponseFinish(conn, res);
  });
}

/** `res` finished: it leaves the queue. */
function onResponseFinish(conn: Conn, res: ServerResponse): void {
  const queue = conn.queue;
  // Normally the oldest, and the only one. `pop()`, not `length = 0`: V8
  // drops an array's storage when its length is set to 0, and the next
  // push would allocate it again, once per request.
  if (queue.length === 1 && queue[0] === res) queue.pop();
  else {
    let i = 0;
    while (i < queue.length && queue[i] !== res) i++;
    if (i === queue.length) return;
    for (let j = i + 1; j < queue.length; j++) queue[j - 1] = queue[j]!; // splice would allocate
    queue.pop();
  }
  if (conn.mode !== DRAIN && conn.mode !== LISTENED_DRAIN) return;
  if (--conn.active === 0) markIdle(conn);
  conn.host.requestEnded(true);
}

function markIdle(conn: Conn): void {
  conn.partial = false;
  conn.idleSince = performance.now();
  conn.idleBytes = transferred(conn.socket!);
  conn.idleRead = conn.socket!.bytesRead;
}

/**
 * Makes `res` the response that says `Connection: close` on its connection
 * (invariant 3): the mark moves to each newer response while the older
 * one's headers are unsent. A response whose client already asked to close
 * (`shouldKeepAlive` false) ends the connection by itself and takes no mark.
 */
function announceClose(conn: Conn, res: ServerResponse): void {
  const previous = conn.marked;
  if (previous !== null && previous !== res && !previous.headersSent) previous.shouldKeepAlive = true;
  conn.marked = null;
  if (res.headersSent || !res.shouldKeepAlive) return;
  res.shouldKeepAlive = false;
  conn.marked = res;
}

/**
 * The drain starts for `conn`: responses already finished leave the queue
 * (their bytes may all be written before Node publishes their finish), the
 * rest give `active`, the newest is told `Connection: close`, and the idle
 * clock starts.
 */
export function startDrainH1(conn: Conn): void {
  conn.mode = conn.parsed ? DRAIN : LISTENED_DRAIN;
  const queue = conn.queue;
  let n = 0;
  while (n < queue.length && queue[n]!.writableFinished) n++;
  if (n > 0) {
    for (let j = n; j < queue.length; j++) queue[j - n] = queue[j]!;
    for (let j = 0; j < n; j++) queue.pop();
  }
  conn.active = queue.length;
  if (queue.length > 0 && conn.kind === H1) announceClose(conn, queue[queue.length - 1]!);
  if (conn.active === 0) markIdle(conn);
}

/**
 * One look at an HTTP/1 connection (or a pending TLS handshake, or a socket
 * accepted before `serve()` attached) while draining: ended with a FIN once
 * idle for `graceMs` (invariant 4).
 */
export function sweepIdle(conn: Conn, now: number, graceMs: number): void {
  if (conn.ended || conn.active > 0 || !conn.parsed) return;
  const bytes = transferred(conn.socket!);
  if (bytes !== conn.idleBytes) {
    // Something moved (a handshake, a TLS session ticket, a session of
    // unknown protocol): the idle clock restarts. Bytes received on an
    // HTTP/1 connection are a request arriving: in flight until its
    // response finishes (invariant 4).
    conn.idleBytes = bytes;
    conn.idleSince = now;
    if (conn.kind === H1 && conn.socket!.bytesRead !== conn.idleRead) conn.partial = true;
  } else if (!conn.partial && now - conn.idleSince >= graceMs) {
    endWithFin(conn);
  }
}

/**
 * Ends `conn` with a FIN; no request read after it reaches anyone
 * (invariant 5). A socket with no HTTP/1 parser of Node's (a TLS handshake
 * that stalled, a socket of an HTTP/2 session we have not seen) cannot be
 * kept from parsing what arrives later, so it is closed outright instead:
 * it has been idle for the whole grace, nothing of ours is unsent, and what
 * the client writes after is answered by a reset, never processed.
 */
export function endWithFin(conn: Conn): void {
  const socket = conn.socket!;
  conn.ended = true;
  conn.clearTimer();
  const parser = (socket as Socket & { parser?: ParserLike | null }).parser;
  if (parser === null || parser === undefined || typeof parser.onIncoming !== "function") {
    socket.destroy();
    return;
  }
  parser.onIncoming = (req: IncomingMessage): number => {
    conn.host.requestRefused();
    if ((req as { upgrade?: boolean }).upgrade === true) socket.destroy();
    else req.resume(); // its body is read and discarded
    return 0;
  };
  socket.end();
  conn.timer = setTimeout(() => socket.destroy(), LINGER_MS);
  conn.timer.unref();
}

interface ParserLike {
  onIncoming?: unknown;
}

/** The socket closed: requests still in flight never got their response. */
export function abortQueue(conn: Conn): void {
  const queue = conn.queue;
  const draining = conn.mode === DRAIN || conn.mode === LISTENED_DRAIN;
  for (let i = 0; i < queue.length; i++) {
    const res = queue[i]!;
    if (res.writableFinished) {
      // Written out, its 'finish' not emitted yet: it completed.
      if (draining) conn.host.requestEnded(true);
      continue;
    }
    const req = res.req;
    const state = getState(req);
    if (state !== undefined) state.finish(true);
    else setState(req, new RequestState(conn.host, false, ABORTED, clientGoneReason()));
    if (draining) conn.host.requestEnded(false);
  }
  queue.length = 0;
  conn.active = 0;
}

/** Settles `state` when `res` ends: its own events, since nothing else reports it while serving. */
function watchResponse(res: ServerResponse, state: RequestState): void {
  res.once("finish", () => state.finish(false));
  res.once("close", () => state.finish(!res.writableFinished));
}

/** The state of an HTTP/1 request of a served connection, created on first use. */
export function lookupStateH1(req: IncomingMessage): RequestState | undefined {
  const socket = req.socket;
  const conn = socket ? connOf(socket) : undefined;
  if (conn === undefined) return undefined;
  const queue = conn.queue;
  let i = 0;
  while (i < queue.length && queue[i]!.req !== req) i++;
  const res = i < queue.length ? queue[i]! : null;
  let state: RequestState;
  if (res === null || res.writableFinished) {
    // Not in flight any more: its response finished (an aborted one got its
    // state when its socket closed).
    state = new RequestState(conn.host, false, FINISHED);
  } else {
    state = new RequestState(conn.host, false);
    watchResponse(res, state);
  }
  setState(req, state);
  return state;
}
