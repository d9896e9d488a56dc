/*
 * Connection tracking for one served server.
 *
 * Invariants:
 * 1. A `Conn` is one transport connection at the layer HTTP runs on: the
 *    TLS socket for TLS servers ('secureConnection', which is `req.socket`),
 *    the TCP socket otherwise, or one HTTP/2 session. A TLS handshake in
 *    progress is a `PENDING` conn on the raw socket until its
 *    'secureConnection' arrives (matched by the peer's address and port,
 *    both public), so a client that never handshakes cannot hang shutdown
 *    and an in-flight HTTPS request is never mistaken for an idle raw socket.
 * 2. `active` counts requests (HTTP/1 responses not yet finished, HTTP/2
 *    streams not yet closed). For HTTP/1 it is only kept from the drain
 *    start on (while serving nothing reads it): `startDrain()` computes it
 *    from the queue. An HTTP/1 conn is *idle* when `active` is 0 and no
 *    byte arrived since it became idle (`socket.bytesRead` did not move): a
 *    request whose headers are still arriving is not idle. Idle time is only
 *    measured while draining, from the later of the drain start and the
 *    connection's last response.
 * 3. HTTP/1 requests are seen through the `http.server.request.start`
 *    diagnostics channel, which Node publishes for every request before it
 *    emits any event ('request', 'checkContinue', 'checkExpectation', or
 *    none when it answers by itself), so `Connection: close` is set before
 *    any user handler runs, synchronous ones included, and no listener the
 *    application adds can run before we know the request. Both channels
 *    are subscribed while any server is served (not only while draining):
 *    a subscriber costs one short-lived message object per request, less
 *    than a 'request' listener (two listeners make every emit copy the
 *    listener array), and it changes nothing about which events Node
 *    emits. A message finds its connection on the socket itself (a
 *    symbol-keyed property of ours, set once per connection, never
 *    deleted: deleting would turn the socket into a slow dictionary
 *    object), and what to do in the connection's `mode`; so a request
 *    touches no other object of ours: each one more (a `WeakMap` table,
 *    the tracker) is a cache line taken from Node's own work on the request.
 *    HTTP/2 streams are seen by a listener prepended to each session's
 *    'stream'.
 *    `queue` holds an HTTP/1 connection's responses in flight, in request
 *    order (HTTP/1 responses finish in that order), so its last entry is
 *    the newest response. A response leaves the queue when it finishes,
 *    told by the `http.server.response.finish` diagnostics channel
 *    (subscribed while any server is served), which Node publishes first
 *    thing when a response finishes. So a finished response is never kept:
 *    holding every keep-alive connection's last response until its next
 *    request made V8 grow the young generation fourfold under load (more
 *    survivors per scavenge). The channel costs less than a listener on
 *    each response (which adds a property to, or grows an array in, every
 *    response's listener table): its message is one short-lived object. A
 *    response that never finishes leaves with its socket (the socket's
 *    'close', `#abortQueue`). A request whose handler asked for a token has
 *    its state settled by its response's own 'finish' / 'close' (listeners
 *    added only then).
 * 4. Node hands a socket over on 'upgrade' / 'connect' only while those
 *    events have listeners. Our listener for them exists only while the
 *    application has one of its own (`#follow`), so adding ours never
 *    changes behaviour.
 * 5. Every listener added to the server, and the diagnostics channel
 *    subscriptions it holds, are removed by `detach()`.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import type { Server as NetServer, Socket } from "node:net";
import { ABORTED, clientGoneReason, FINISHED, getState, requestKey, RequestState, setState, type TokenSource } from "./request-state.js";

export const PENDING = 0;
export const H1 = 1;
export const H2 = 2;
export const UPGRADED = 3;

/** `Conn.mode` values. */
const IGNORE = 0;
const QUEUE = 1;
const DRAIN = 2;

/** Phases of a coordinator, in order. */
export const SERVING = 0;
export const STOPPING = 1; // shutdown started, `beforeCloseMs` still serving
export const DRAINING = 2;
export const FORCED = 3;
export const CLOSED = 4;

/** What a tracker needs from its coordinator. */
export interface TrackerHost extends TokenSource {
  readonly phase: number;
  /** A tracked connection closed (after any promotion). */
  connectionClosed(conn: Conn): void;
  /** A request or stream ended; `completed` when its response finished. */
  requestEnded(completed: boolean): void;
  /** A connection was upgraded while draining: it was notified at once. */
  upgradedWhileDraining(): void;
  /** The server emitted 'close' (`reportedClose`). */
  serverClosed(): void;
}

export class Conn {
  kind: number;
  socket: Socket | null;
  session: ServerHttp2Session | null;
  /** The tracker whose requests arrive on this socket; `null` once it detached. */
  tracker: ServerTracker | null = null;
  /**
   * What the request hooks do with this connection's HTTP/1 requests
   * (invariant 3): `QUEUE` while serving, `DRAIN` from the drain start on,
   * `IGNORE` once its tracker detached. Read on the connection itself so a
   * request touches nothing else of ours.
   */
  mode = IGNORE;
  active = 0;
  idleSince: number;
  idleBytes: number;
  /** We sent FIN (HTTP/1) or GOAWAY (HTTP/2). */
  ended = false;
  /** Destroyed at the deadline. */
  forced = false;
  timer: ReturnType<typeof setTimeout> | null = null;
  upgrade: RequestState | null = null;
  /** The response we set `shouldKeepAlive = false` on: the last one in flight. */
  marked: ServerResponse | null = null;
  /** HTTP/1 responses in flight, oldest first (invariant 3). */
  readonly queue: ServerResponse[] = [];
  readonly host: TrackerHost;

  constructor(host: TrackerHost, kind: number, socket: Socket | null, session: ServerHttp2Session | null) {
    this.host = host;
    this.kind = kind;
    this.socket = socket;
    this.session = session;
    this.idleSince = performance.now();
    this.idleBytes = socket?.bytesRead ?? 0;
  }
}

interface RequestStartMessage {
  request: IncomingMessage;
  response: ServerResponse;
  socket: Socket;
  server: unknown;
}

const REQUEST_START = "http.server.request.start";
const RESPONSE_FINISH = "http.server.response.finish";
/** Events whose listeners change Node's behaviour (invariant 4). */
const FOLLOWED = ["upgrade", "connect"] as const;
type Followed = (typeof FOLLOWED)[number];
const trackers = new WeakMap<object, ServerTracker>();
/**
 * The `Conn` of a tracked socket or HTTP/2 session, kept on the object itself
 * under a symbol of ours (invariant 3).
 */
const CONN = Symbol("cancelkit.conn");
interface Tagged {
  [CONN]?: Conn;
}
function connOf(target: object): Conn | undefined {
  return (target as Tagged)[CONN];
}
/** Attached trackers: both channels are subscribed while there is one (invariant 3). */
let attachedTrackers = 0;

/** Every HTTP/1 request of the process, served or not (invariant 3). */
function onRequestStart(message: unknown): void {
  const m = message as RequestStartMessage;
  const conn = connOf(m.socket) ?? trackers.get(m.server as object)?.adopt(m.socket);
  if (conn === undefined) return;
  if (conn.mode === QUEUE) conn.queue.push(m.response); // the hot path: one push, nothing allocated
  else if (conn.mode === DRAIN) conn.tracker!.onDrainingRequest(conn, m.response);
}

interface ResponseFinishMessage {
  response: ServerResponse;
  socket: Socket;
}

/**
 * Every HTTP/1 response of the process that finishes, tracked or not
 * (invariant 3). Published before Node detaches the response from its
 * socket; `onResponseFinish` only updates our own counts.
 */
function onResponseFinishMessage(message: unknown): void {
  const m = message as ResponseFinishMessage;
  const conn = connOf(m.socket);
  if (conn !== undefined && conn.mode !== IGNORE) onResponseFinish(conn, m.response);
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
    // Shift the later ones down (splice would allocate).
    for (let j = i + 1; j < queue.length; j++) queue[j - 1] = queue[j]!;
    queue.pop();
  }
  if (conn.mode !== DRAIN) return;
  if (--conn.active === 0) {
    conn.idleSince = performance.now();
    conn.idleBytes = conn.socket!.bytesRead;
  }
  conn.host.requestEnded(true);
}

/**
 * Drops finished responses from the front of `queue` (they finish in order)
 * at the drain start: a response's bytes may all be written before Node
 * emits its 'finish' (and publishes `RESPONSE_FINISH`); that message then
 * finds it gone and changes nothing.
 */
function pruneFinished(queue: ServerResponse[]): void {
  const length = queue.length;
  let n = 0;
  while (n < length && queue[n]!.writableFinished) n++;
  if (n === 0) return;
  for (let j = n; j < length; j++) queue[j - n] = queue[j]!;
  for (let j = 0; j < n; j++) queue.pop(); // keeps the storage, see onResponseFinish
}

/** Settles `state` when `res` ends: its own events, since nothing else reports it while serving. */
function watchResponse(res: ServerResponse, state: RequestState): void {
  res.once("finish", () => state.finish(false));
  res.once("close", () => state.finish(!res.writableFinished));
}

/**
 * The state of a request of a served server, created on first use; `undefined`
 * when `req` does not belong to one.
 */
export function lookupState(req: object): RequestState | undefined {
  const key = requestKey(req);
  const known = getState(key);
  if (known !== undefined) return known;
  if (key !== req || typeof (req as { respond?: unknown }).respond === "function") {
    // HTTP/2: the stream's session tells the coordinator.
    const stream = key as ServerHttp2Stream;
    const conn = stream.session ? connOf(stream.session) : undefined;
    if (conn === undefined) return undefined;
    const state = stream.closed
      ? new RequestState(conn.host, false, stream.rstCode === 0 && stream.writableFinished ? FINISHED : ABORTED, clientGoneReason())
      : new RequestState(conn.host, false);
    setState(key, state);
    return state;
  }
  const socket = (req as IncomingMessage).socket;
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

function isFollowed(event: string | symbol): event is Followed {
  return event === "upgrade" || event === "connect";
}

function upgradeClosedReason(): DOMException {
  return new DOMException("The upgraded connection closed", "AbortError");
}

/** `true` when `server` is already served by a live coordinator. */
export function isTracked(server: object): boolean {
  return trackers.has(server);
}

export class ServerTracker {
  readonly server: NetServer;
  readonly #host: TrackerHost;
  readonly #tls: boolean;
  readonly #h2: boolean;
  readonly conns = new Set<Conn>();
  readonly #pendingByPeer = new Map<string, Conn>();
  readonly #sessions = new Map<ServerHttp2Session, Conn>();
  /** Node emitted 'close' for the listener we closed, or there was none to wait for. */
  closeSettled = true;
  /**
   * Node emitted 'close' since the server last listened: it stopped
   * listening and every connection Node counts for it ended (some of ours
   * may still await their own 'close' event).
   */
  reportedClose = false;
  /** The drain started: new requests count as active and are told `Connection: close`. */
  #draining = false;
  /** The followed events (invariant 4) our listener is currently on. */
  readonly #following = new Set<Followed>();
  readonly #listeners: Array<[string, (...args: never[]) => void]> = [];

  constructor(server: NetServer, host: TrackerHost, tls: boolean, h2: boolean) {
    this.server = server;
    this.#host = host;
    this.#tls = tls;
    this.#h2 = h2;
  }

  attach(): void {
    trackers.set(this.server, this);
    if (attachedTrackers++ === 0) {
      diagnosticsChannel.subscribe(REQUEST_START, onRequestStart);
      diagnosticsChannel.subscribe(RESPONSE_FINISH, onResponseFinishMessage);
    }
    if (this.#tls) {
      this.#on("connection", (raw: Socket) => this.#onRawTlsConnection(raw));
      this.#on("secureConnection", (socket: Socket) => this.#onSecureConnection(socket));
    } else if (!this.#h2) {
      // h2c: the session is created on 'connection' and tracked as a session.
      this.#on("connection", (socket: Socket) => this.#track(new Conn(this.#host, H1, socket, null)));
    }
    if (this.#h2) this.#on("session", (session: ServerHttp2Session) => this.#onSession(session));
    this.#on("listening", () => (this.reportedClose = false));
    this.#on("close", () => {
      this.reportedClose = true;
      this.#host.serverClosed();
    });
    this.#on("newListener", (event: string | symbol, listener: unknown) => {
      if (isFollowed(event) && listener !== this.#onUpgrade) this.#follow(event, 1);
    });
    this.#on("removeListener", (event: string | symbol, listener: unknown) => {
      if (isFollowed(event) && listener !== this.#onUpgrade) this.#follow(event, 0);
    });
    for (const event of FOLLOWED) this.#follow(event, 0);
  }

  detach(): void {
    if (trackers.get(this.server) !== this) return;
    trackers.delete(this.server);
    if (--attachedTrackers === 0) {
      diagnosticsChannel.unsubscribe(REQUEST_START, onRequestStart);
      diagnosticsChannel.unsubscribe(RESPONSE_FINISH, onResponseFinishMessage);
    }
    this.#draining = false;
    for (const conn of this.conns) {
      conn.tracker = null;
      conn.mode = IGNORE;
    }
    for (const [event, listener] of this.#listeners) this.server.removeListener(event, listener as (...args: any[]) => void); // eslint-disable-line @typescript-eslint/no-explicit-any
    this.#listeners.length = 0;
    for (const event of this.#following) this.server.removeListener(event, this.#onUpgrade);
    this.#following.clear();
  }

  /**
   * The drain starts: each HTTP/1 connection's responses in flight give
   * `active`, and the newest one is told `Connection: close`.
   */
  startDrain(): void {
    this.#draining = true;
    for (const conn of this.conns) {
      conn.mode = DRAIN;
      const queue = conn.queue;
      if (queue.length === 0) continue;
      pruneFinished(queue);
      if (conn.kind !== H1) continue;
      conn.active = queue.length;
      if (queue.length > 0) announceClose(conn, queue[queue.length - 1]!);
    }
  }

  #on(event: string, listener: (...args: never[]) => void): void {
    this.server.on(event, listener as (...args: any[]) => void); // eslint-disable-line @typescript-eslint/no-explicit-any
    this.#listeners.push([event, listener]);
  }

  /**
   * Keeps our listener for `event` present exactly while the application has
   * one of its own (invariant 4). `adding` is 1 from 'newListener', which
   * Node emits before it adds the listener.
   */
  #follow(event: Followed, adding: number): void {
    const ours = this.#following.has(event);
    const others = this.server.listenerCount(event) - (ours ? 1 : 0) + adding;
    if (others > 0 && !ours) {
      // Prepended, so it runs before the application takes the socket over.
      this.server.prependListener(event, this.#onUpgrade);
      this.#following.add(event);
    } else if (others === 0 && ours) {
      this.server.removeListener(event, this.#onUpgrade);
      this.#following.delete(event);
    }
  }

  #track(conn: Conn): Conn {
    const socket = conn.socket!;
    conn.tracker = this;
    conn.mode = this.#draining ? DRAIN : QUEUE;
    this.conns.add(conn);
    (socket as Tagged)[CONN] = conn;
    socket.once("close", () => {
      this.#abortQueue(conn);
      this.#untrack(conn);
    });
    return conn;
  }

  /** The tracked connection of `socket`, if this tracker has one. */
  #connOf(socket: Socket): Conn | undefined {
    const conn = connOf(socket);
    return conn !== undefined && conn.tracker === this && this.conns.has(conn) ? conn : undefined;
  }

  #untrack(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    if (conn.upgrade !== null) conn.upgrade.finish(true, upgradeClosedReason());
    this.#host.connectionClosed(conn);
  }

  #onRawTlsConnection(raw: Socket): void {
    // Without a peer address (a pipe) a handshake cannot be matched to its
    // TLS socket, and ending the raw socket of a live TLS connection would
    // kill its requests: such handshakes are left to the TLS handshake timeout.
    if (raw.remoteAddress === undefined) return;
    const key = peerKey(raw);
    this.#pendingByPeer.set(key, this.#track(new Conn(this.#host, PENDING, raw, null)));
    raw.once("close", () => this.#pendingByPeer.delete(key));
  }

  #onSecureConnection(socket: Socket): void {
    const key = peerKey(socket);
    const pending = this.#pendingByPeer.get(key);
    if (pending !== undefined) {
      this.#pendingByPeer.delete(key);
      this.conns.delete(pending);
    }
    // An HTTP/2 TLS connection is tracked as a session; HTTP/1 (allowHTTP1)
    // and plain HTTPS on the TLS socket.
    if (this.#h2 && (socket as Socket & { alpnProtocol?: unknown }).alpnProtocol === "h2") return;
    this.#track(new Conn(this.#host, H1, socket, null));
  }

  /** An HTTP/1 request on a socket of ours while draining, before any user handler (invariant 3). */
  onDrainingRequest(conn: Conn, res: ServerResponse): void {
    conn.active++;
    conn.queue.push(res);
    announceClose(conn, res);
  }

  /** A request arrived on a socket accepted before serve() attached: the socket is adopted. */
  adopt(socket: Socket): Conn {
    return this.#track(new Conn(this.#host, H1, socket, null));
  }

  /** The socket closed: requests still in flight never got their response. */
  #abortQueue(conn: Conn): void {
    const queue = conn.queue;
    for (let i = 0; i < queue.length; i++) {
      const res = queue[i]!;
      if (res.writableFinished) {
        // Written out, its 'finish' not emitted yet: it completed.
        this.#host.requestEnded(true);
        continue;
      }
      const req = res.req;
      const state = getState(req);
      if (state !== undefined) state.finish(true);
      else setState(req, new RequestState(conn.host, false, ABORTED, clientGoneReason()));
      this.#host.requestEnded(false);
    }
    queue.length = 0;
    conn.active = 0;
  }

  readonly #onUpgrade = (req: IncomingMessage, socket: Socket): void => {
    // An HTTP/2 server emits 'connect' with a request and a response: the
    // stream is tracked by its session.
    if (req.httpVersionMajor === 2) return;
    let conn = this.#connOf(socket);
    if (conn === undefined) conn = this.#track(new Conn(this.#host, UPGRADED, socket, null));
    conn.kind = UPGRADED;
    const state = new RequestState(this.#host, true);
    setState(req, state);
    conn.upgrade = state;
    if (this.#host.phase >= DRAINING) this.#host.upgradedWhileDraining();
  };

  #onSession(session: ServerHttp2Session): void {
    const host = this.#host;
    const conn = new Conn(host, H2, null, session);
    this.conns.add(conn);
    this.#sessions.set(session, conn);
    (session as Tagged)[CONN] = conn;
    session.prependListener("stream", (stream: ServerHttp2Stream) => {
      conn.active++;
      stream.on("close", () => {
        conn.active--;
        const completed = stream.rstCode === 0 && stream.writableFinished;
        getState(stream)?.finish(!completed);
        host.requestEnded(completed);
      });
    });
    session.once("close", () => {
      this.#sessions.delete(session);
      this.#untrack(conn);
    });
    // A session opened while draining (before the listener closed) is told at once.
    if (host.phase >= DRAINING) queueMicrotask(() => this.onSessionDuringDrain?.(conn));
  }

  /** Set by the coordinator: sends GOAWAY to a session that arrived during the drain. */
  onSessionDuringDrain: ((conn: Conn) => void) | null = null;
}

/**
 * Makes `res` the response that says `Connection: close` on its connection.
 *
 * Only the last response in flight may say it: with pipelining, Node closes
 * the socket after the first response that does, and requests already
 * received behind it would be dropped. So the mark moves to each newer
 * response while the older one's headers are unsent. A response whose client
 * already asked to close (`shouldKeepAlive` false) ends the connection by
 * itself and takes no mark.
 */
export function announceClose(conn: Conn, res: ServerResponse): void {
  const previous = conn.marked;
  if (previous !== null && previous !== res && !previous.headersSent) previous.shouldKeepAlive = true;
  conn.marked = null;
  if (res.headersSent || !res.shouldKeepAlive) return;
  res.shouldKeepAlive = false;
  conn.marked = res;
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
