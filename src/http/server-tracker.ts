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
 *    streams not yet closed). An HTTP/1 conn is *idle* when `active` is 0
 *    and no byte arrived since it became idle (`socket.bytesRead` did not
 *    move): a request whose headers are still arriving is not idle. Idle
 *    time is only measured while draining, from the later of the drain
 *    start and the connection's last response.
 * 3. Requests are seen before any user handler: through the
 *    `http.server.request.start` diagnostics channel for HTTP/1 (published
 *    before 'request', 'checkContinue' and 'checkExpectation'), and through a
 *    listener prepended to each session's 'stream' for HTTP/2. HTTP/1
 *    responses are seen ending through `http.server.response.finish`; a
 *    response that never finishes ends with its socket. The per-request hot
 *    path allocates nothing but two array slots: `queue` holds
 *    `[req, res, state | null]` triples in response order.
 * 4. Our 'upgrade' / 'connect' listener exists only while the application
 *    has one: Node decides whether to hand a socket over by counting those
 *    listeners, so adding ours alone would change behaviour.
 * 5. Every listener added to the server is removed by `detach()`.
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
}

export class Conn {
  kind: number;
  socket: Socket | null;
  session: ServerHttp2Session | null;
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
  /** HTTP/1 requests in flight: `[req, res, state | null]` triples, oldest first. */
  readonly queue: unknown[] = [];
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
const trackers = new WeakMap<object, ServerTracker>();
/** Every tracked HTTP/1 socket and HTTP/2 session, for `requestToken()` lookups. */
const connOf = new WeakMap<object, Conn>();
let subscribed = 0;

function onRequestStart(message: unknown): void {
  const m = message as RequestStartMessage;
  trackers.get(m.server as object)?.onRequest(m.request, m.response, m.socket);
}

function onResponseFinish(message: unknown): void {
  const m = message as RequestStartMessage;
  trackers.get(m.server as object)?.onResponseFinish(m.request, m.socket);
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
    const conn = stream.session ? connOf.get(stream.session) : undefined;
    if (conn === undefined) return undefined;
    const state = stream.closed
      ? new RequestState(conn.host, false, stream.rstCode === 0 && stream.writableFinished ? FINISHED : ABORTED, clientGoneReason())
      : new RequestState(conn.host, false);
    setState(key, state);
    return state;
  }
  const socket = (req as IncomingMessage).socket;
  const conn = socket ? connOf.get(socket) : undefined;
  if (conn === undefined) return undefined;
  const queue = conn.queue;
  let i = 0;
  while (i < queue.length && queue[i] !== req) i += 3;
  // Not in flight any more: its response finished (an aborted one got its
  // state when its socket closed).
  const state = i < queue.length ? new RequestState(conn.host, false) : new RequestState(conn.host, false, FINISHED);
  if (i < queue.length) queue[i + 2] = state;
  setState(req, state);
  return state;
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
  readonly #bySocket = new Map<Socket, Conn>();
  readonly #pendingByPeer = new Map<string, Conn>();
  readonly #sessions = new Map<ServerHttp2Session, Conn>();
  /** Node emitted 'close' for the listener we closed, or there was none to wait for. */
  closeSettled = true;
  #upgradeListening = false;
  #connectListening = false;
  readonly #listeners: Array<[string, (...args: never[]) => void]> = [];

  constructor(server: NetServer, host: TrackerHost, tls: boolean, h2: boolean) {
    this.server = server;
    this.#host = host;
    this.#tls = tls;
    this.#h2 = h2;
  }

  attach(): void {
    trackers.set(this.server, this);
    if (subscribed++ === 0) {
      diagnosticsChannel.subscribe(REQUEST_START, onRequestStart);
      diagnosticsChannel.subscribe(RESPONSE_FINISH, onResponseFinish);
    }
    if (this.#tls) {
      this.#on("connection", (raw: Socket) => this.#onRawTlsConnection(raw));
      this.#on("secureConnection", (socket: Socket) => this.#onSecureConnection(socket));
    } else if (!this.#h2) {
      // h2c: the session is created on 'connection' and tracked as a session.
      this.#on("connection", (socket: Socket) => this.#track(new Conn(this.#host, H1, socket, null)));
    }
    if (this.#h2) this.#on("session", (session: ServerHttp2Session) => this.#onSession(session));
    this.#on("newListener", (event: string | symbol, listener: unknown) => {
      if ((event === "upgrade" || event === "connect") && listener !== this.#onUpgrade) this.#syncUpgrade(event, 1);
    });
    this.#on("removeListener", (event: string | symbol, listener: unknown) => {
      if ((event === "upgrade" || event === "connect") && listener !== this.#onUpgrade) this.#syncUpgrade(event, 0);
    });
    this.#syncUpgrade("upgrade", 0);
    this.#syncUpgrade("connect", 0);
  }

  detach(): void {
    if (trackers.get(this.server) !== this) return;
    trackers.delete(this.server);
    if (--subscribed === 0) {
      diagnosticsChannel.unsubscribe(REQUEST_START, onRequestStart);
      diagnosticsChannel.unsubscribe(RESPONSE_FINISH, onResponseFinish);
    }
    for (const [event, listener] of this.#listeners) this.server.removeListener(event, listener as (...args: any[]) => void); // eslint-disable-line @typescript-eslint/no-explicit-any
    this.#listeners.length = 0;
    if (this.#upgradeListening) this.server.removeListener("upgrade", this.#onUpgrade);
    if (this.#connectListening) this.server.removeListener("connect", this.#onUpgrade);
    this.#upgradeListening = this.#connectListening = false;
  }

  #on(event: string, listener: (...args: never[]) => void): void {
    this.server.on(event, listener as (...args: any[]) => void); // eslint-disable-line @typescript-eslint/no-explicit-any
    this.#listeners.push([event, listener]);
  }

  /** Keeps our upgrade/connect listener present exactly while the application has one of its own. */
  #syncUpgrade(event: "upgrade" | "connect", adding: number): void {
    const ours = event === "upgrade" ? this.#upgradeListening : this.#connectListening;
    const others = this.server.listenerCount(event) - (ours ? 1 : 0) + adding;
    if (others > 0 && !ours) {
      // Prepended, so it runs before the application takes the socket over.
      this.server.prependListener(event, this.#onUpgrade);
    } else if (others === 0 && ours) {
      this.server.removeListener(event, this.#onUpgrade);
    } else return;
    if (event === "upgrade") this.#upgradeListening = !ours;
    else this.#connectListening = !ours;
  }

  #track(conn: Conn): Conn {
    const socket = conn.socket!;
    this.conns.add(conn);
    this.#bySocket.set(socket, conn);
    connOf.set(socket, conn);
    socket.once("close", () => {
      this.#bySocket.delete(socket);
      this.#abortQueue(conn);
      this.#untrack(conn);
    });
    return conn;
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
      this.#bySocket.delete(pending.socket!);
      this.conns.delete(pending);
    }
    // An HTTP/2 TLS connection is tracked as a session; HTTP/1 (allowHTTP1)
    // and plain HTTPS on the TLS socket.
    if (this.#h2 && (socket as Socket & { alpnProtocol?: unknown }).alpnProtocol === "h2") return;
    this.#track(new Conn(this.#host, H1, socket, null));
  }

  onRequest(req: IncomingMessage, res: ServerResponse, socket: Socket): void {
    let conn = this.#bySocket.get(socket);
    // A socket accepted before serve() attached is adopted on its first request.
    if (conn === undefined) conn = this.#track(new Conn(this.#host, H1, socket, null));
    conn.kind = H1;
    conn.active++;
    conn.queue.push(req, res, null);
    if (this.#host.phase >= DRAINING) announceClose(conn, res);
  }

  onResponseFinish(req: IncomingMessage, socket: Socket): void {
    const conn = this.#bySocket.get(socket);
    if (conn === undefined) return;
    const queue = conn.queue;
    let i = 0;
    while (i < queue.length && queue[i] !== req) i += 3;
    if (i === queue.length) return;
    const state = queue[i + 2] as RequestState | null;
    if (queue.length === 3) queue.length = 0;
    else {
      // Pipelined: shift the later triples down (splice would allocate).
      for (let j = i + 3; j < queue.length; j++) queue[j - 3] = queue[j];
      queue.length -= 3;
    }
    // Idleness only matters while draining; the drain start sets every
    // idle connection's baseline (see Coordinator#startDrain).
    if (--conn.active === 0 && this.#host.phase >= DRAINING) {
      conn.idleSince = performance.now();
      conn.idleBytes = socket.bytesRead;
    }
    if (state !== null) state.finish(false);
    this.#host.requestEnded(true);
  }

  /** The socket closed: requests still in flight never got their response. */
  #abortQueue(conn: Conn): void {
    const queue = conn.queue;
    for (let i = 0; i < queue.length; i += 3) {
      const state = queue[i + 2] as RequestState | null;
      if (state !== null) state.finish(true);
      else setState(queue[i] as object, new RequestState(conn.host, false, ABORTED, clientGoneReason()));
      this.#host.requestEnded(false);
    }
    queue.length = 0;
    conn.active = 0;
  }

  readonly #onUpgrade = (req: IncomingMessage, socket: Socket): void => {
    let conn = this.#bySocket.get(socket);
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
    connOf.set(session, conn);
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
