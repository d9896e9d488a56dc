/*
 * Connection tracking and drain policy for one served server.
 *
 * Invariants:
 * 1. The tracker owns its connections: only it adds a `Conn` to its set or
 *    removes one, and it applies the policies (./http1.ts, ./http2.ts,
 *    ./upgrades.ts, ./listeners.ts) to them when the coordinator says so:
 *    `startDrain()`, `sweep()`, `force()`, `destroyAll()`. It reports back
 *    only through {@link TrackerHost}; it never reads the coordinator.
 * 2. Connections are tracked from 'connection' (plain HTTP/1), from
 *    'secureConnection' (TLS; the handshake before it is a `PENDING` conn on
 *    the raw socket, matched by the peer's address and port, so a client
 *    that never handshakes cannot hang the drain) and from 'session'
 *    (HTTP/2). Connections accepted before `serve()` attached are found
 *    once, at attach: HTTP/1 ones in the list Node keeps for the server (a
 *    response in flight on one is queued), HTTP/2 sessions in the server's
 *    own list where Node keeps one (24), and otherwise by their socket among
 *    the process's active handles (`socket.server` is the server): such a
 *    socket is `FOREIGN` until its session opens a stream (a 'stream'
 *    listener on the server, present only while such a socket is), then it
 *    is that session's `H2` conn. A request on an HTTP/1 socket still
 *    unknown adopts it too (http1.ts).
 * 3. Every listener added to the server is removed by `detach()`, and so
 *    are the channel subscriptions it holds.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import * as net from "node:net";
import { Conn, connOf, type ConnHost, FOREIGN, H1, H2, IGNORE, LISTENED_QUEUE, PENDING, QUEUE, tagConn, UPGRADED } from "./conn.js";
import { abortQueue, endWithFin, hasNodeParser, onListenedRequest, startDrainH1, sweepIdle, unwatchRequests, watchRequests } from "./http1.js";
import { closeForAnswers, countStream, countStreams, sendGoaway } from "./http2.js";
import { ListenerControl } from "./listeners.js";
import { markUpgraded, UpgradeListener, upgradeClosed } from "./upgrades.js";

/** What a tracker tells its coordinator, besides what its connections tell it. */
export interface TrackerHost extends ConnHost {
  /** An HTTP/2 session was sent GOAWAY. */
  goawaySent(): void;
  /** A listening socket was closed by the drain. */
  listenerClosed(): void;
  /** Something the drain waits for settled (a listener closed, a pending listen resolved). */
  changed(): void;
  /** The server emitted 'close' (the application closed it, or the drain did). */
  serverClosed(): void;
}

/** What `serve()` knows about a server's protocol. */
export interface ServerKind {
  tls: boolean;
  h2: boolean;
}

const served = new WeakSet<object>();

/** `true` when `server` is already served by a live coordinator. */
export function isServed(server: object): boolean {
  return served.has(server);
}

export class ServerTracker {
  readonly server: net.Server;
  readonly #host: TrackerHost;
  readonly #kind: ServerKind;
  readonly #conns = new Set<Conn>();
  /** TLS handshakes and unknown HTTP/2 sockets, by peer address (invariant 2). */
  readonly #byPeer = new Map<string, Conn>();
  readonly #listener: ListenerControl;
  readonly #upgrades: UpgradeListener;
  readonly #listeners: Array<[string, (...args: never[]) => void]> = [];
  #draining = false;
  /** The fallback 'request' listener is on the server (http1.ts, invariant 6). */
  #listening = false;
  #streamListener: ((stream: ServerHttp2Stream) => void) | null = null;
  /**
   * Node emitted 'close' since the server last listened: it stopped
   * listening and every connection Node counts for it ended.
   */
  reportedClose = false;

  constructor(server: net.Server, host: TrackerHost, kind: ServerKind) {
    this.server = server;
    this.#host = host;
    this.#kind = kind;
    this.#listener = new ListenerControl(server, () => host.changed());
    this.#upgrades = new UpgradeListener(server, (req, socket) => this.#onUpgrade(req, socket));
  }

  attach(): void {
    served.add(this.server);
    this.#listener.attach();
    watchRequests(this.server, (socket) => this.#track(new Conn(this.#host, H1, socket, null)));
    if (this.#kind.tls) {
      this.#on("connection", (raw: net.Socket) => this.#onRawTlsConnection(raw));
      this.#on("secureConnection", (socket: net.Socket) => this.#onSecureConnection(socket));
    } else if (!this.#kind.h2) {
      this.#on("connection", (socket: net.Socket) => this.#track(new Conn(this.#host, H1, socket, null)));
    }
    // A TLS server without `addContext` (Bun's https) emits the TLS socket
    // itself as 'connection': it is tracked as plain HTTP/1 above.
    if (this.#kind.h2) this.#on("session", (session: ServerHttp2Session) => this.#onSession(session));
    this.#on("listening", () => {
      this.reportedClose = false;
      if (this.#listener.bound()) this.#host.listenerClosed();
    });
    this.#on("close", () => {
      this.reportedClose = true;
      this.#host.serverClosed();
    });
    this.#on("newListener", (event: string | symbol, listener: unknown) => this.#upgrades.changed(event, listener, true));
    this.#on("removeListener", (event: string | symbol, listener: unknown) => this.#upgrades.changed(event, listener, false));
    this.#upgrades.start();
    this.#adoptExisting();
  }

  detach(): void {
    if (!served.delete(this.server)) return;
    unwatchRequests(this.server);
    this.#listener.detach();
    this.#draining = false;
    for (const conn of this.#conns) conn.mode = IGNORE;
    for (const [event, listener] of this.#listeners) this.server.removeListener(event, listener as (...args: unknown[]) => void);
    this.#listeners.length = 0;
    this.#upgrades.stop();
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** A listen is pending, or a connection is open. */
  get busy(): boolean {
    return this.#listener.listenPending || this.#conns.size > 0;
  }

  /** Nothing left to wait for: no connection, and the listener settled. */
  get settled(): boolean {
    return this.#conns.size === 0 && this.#listener.settled;
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Stops accepting (and keeps a late `listen()` from serving). `true` when a listener was closed now. */
  closeListener(): boolean {
    return this.#listener.close();
  }

  /** Draining starts: every connection is told, or its idle clock starts. */
  startDrain(): void {
    this.#draining = true;
    for (const conn of this.#conns) this.#drainConn(conn);
  }

  /** One look at every idle-able connection (HTTP/1, handshakes, unknown sockets). */
  sweep(now: number, graceMs: number): void {
    for (const conn of this.#conns) {
      if (conn.kind === H1 || conn.kind === PENDING || conn.kind === FOREIGN) sweepIdle(conn, now, graceMs);
    }
  }

  /**
   * The deadline: connections with a request still answering (HTTP/1
   * responses, HTTP/2 streams) are left to finish within the answer window;
   * every other one is destroyed now. Returns how many are answering.
   */
  force(): number {
    let answering = 0;
    for (const conn of this.#conns) {
      if (conn.kind === H1 && conn.active > 0) answering++;
      else if (conn.kind === H2 && closeForAnswers(conn)) answering++;
      else conn.destroy();
    }
    return answering;
  }

  /** The end of the answer window: whatever is left is destroyed. */
  destroyAll(): void {
    for (const conn of this.#conns) conn.destroy();
    // HTTP/1 connections Node knows of and we do not (none, unless a runtime
    // lists no handles): Node closes them.
    (this.server as { closeAllConnections?: () => void }).closeAllConnections?.();
    this.#listener.giveUp();
  }

  /** Ends an idle HTTP/1 connection with a FIN now (the answer window's sweep). */
  endIdle(): void {
    for (const conn of this.#conns) {
      if ((conn.kind === H1 || conn.kind === PENDING) && !conn.ended && conn.active === 0 && !conn.partial) endWithFin(conn);
    }
  }

  // -------------------------------------------------------------------------

  #on(event: string, listener: (...args: never[]) => void): void {
    this.server.on(event, listener as (...args: unknown[]) => void);
    this.#listeners.push([event, listener]);
  }

  #drainConn(conn: Conn): void {
    switch (conn.kind) {
      case H1:
      case PENDING:
      case FOREIGN:
        startDrainH1(conn);
        break;
      case H2:
        if (sendGoaway(conn)) this.#host.goawaySent();
        break;
      case UPGRADED:
        this.#host.upgradeNotified();
        break;
    }
  }

  #track(conn: Conn): Conn {
    const socket = conn.socket!;
    conn.mode = QUEUE;
    if (conn.kind === H1 && !hasNodeParser(socket)) {
      conn.parsed = false;
      conn.mode = LISTENED_QUEUE;
      if (!this.#listening) {
        this.#listening = true;
        this.server.prependListener("request", onListenedRequest);
        this.#listeners.push(["request", onListenedRequest]);
        warnListened();
      }
    }
    this.#conns.add(conn);
    tagConn(socket, conn);
    socket.once("close", () => {
      abortQueue(conn);
      this.#untrack(conn);
    });
    if (this.#draining) startDrainH1(conn);
    return conn;
  }

  #untrack(conn: Conn): void {
    if (!this.#conns.delete(conn)) return;
    conn.clearTimer();
    upgradeClosed(conn);
    this.#host.connectionClosed(conn);
  }

  /** Sockets and sessions accepted before `serve()` attached (invariant 2). */
  #adoptExisting(): void {
    const server = this.server;
    if (!server.listening) return;
    const known = new Set<string>();
    for (const socket of listedConnections(server)) {
      if (socket.destroyed || connOf(socket) !== undefined) continue;
      const conn = this.#track(new Conn(this.#host, H1, socket, null));
      // A request in flight since before we attached: its response is what
      // Node has assigned to the socket.
      const res = (socket as net.Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (res !== null && res !== undefined && !res.writableFinished) conn.queue.push(res);
      if (socket.remoteAddress !== undefined) known.add(peerKey(socket));
    }
    for (const session of this.#kind.h2 ? listedSessions(server) : []) {
      if (connOf(session) !== undefined || session.closed || session.destroyed) continue;
      this.#onSession(session);
      const socket = session.socket;
      if (socket?.remoteAddress !== undefined) known.add(peerKey(socket));
    }
    if (!this.#kind.h2) return;
    // Node 20 and 22 list no sessions: their sockets are what is left.
    const handles = (process as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
    if (typeof handles !== "function") return;
    let foreign = false;
    for (const handle of handles.call(process)) {
      if (!(handle instanceof net.Socket) || (handle as { server?: unknown }).server !== server || connOf(handle) !== undefined) continue;
      if (handle.destroyed || handle.remoteAddress === undefined || known.has(peerKey(handle))) continue;
      const key = peerKey(handle);
      this.#byPeer.set(key, this.#track(new Conn(this.#host, FOREIGN, handle, null)));
      handle.once("close", () => this.#byPeer.delete(key));
      foreign = true;
    }
    if (foreign) {
      this.#streamListener = (stream) => this.#onForeignStream(stream);
      this.#on("stream", this.#streamListener);
    }
  }

  /** A stream of a session we have not seen: its socket was accepted before `serve()` attached. */
  #onForeignStream(stream: ServerHttp2Stream): void {
    const session = stream.session as ServerHttp2Session | undefined;
    if (session === undefined || connOf(session) !== undefined) return;
    const socket = session.socket;
    const foreign = socket?.remoteAddress === undefined ? undefined : this.#byPeer.get(peerKey(socket));
    if (foreign !== undefined) {
      this.#byPeer.delete(peerKey(socket));
      // The same connection, now known as a session: not a close.
      this.#conns.delete(foreign);
      foreign.clearTimer();
    }
    const conn = this.#onSession(session);
    // This stream was emitted before our 'stream' listener was on the session.
    countStream(conn, stream);
    if (this.#byPeer.size === 0 && this.#streamListener !== null) {
      this.server.removeListener("stream", this.#streamListener);
      this.#streamListener = null;
    }
  }

  #onRawTlsConnection(raw: net.Socket): void {
    // Without a peer address (a pipe) a handshake cannot be matched to its
    // TLS socket, and ending the raw socket of a live TLS connection would
    // kill its requests: such handshakes are left to the TLS handshake timeout.
    if (raw.remoteAddress === undefined) return;
    const key = peerKey(raw);
    this.#byPeer.set(key, this.#track(new Conn(this.#host, PENDING, raw, null)));
    raw.once("close", () => this.#byPeer.delete(key));
  }

  #onSecureConnection(socket: net.Socket): void {
    const key = peerKey(socket);
    const pending = this.#byPeer.get(key);
    if (pending !== undefined) {
      this.#byPeer.delete(key);
      this.#conns.delete(pending); // the same connection, past its handshake: not a close
      pending.clearTimer();
    }
    // An HTTP/2 TLS connection is tracked as a session; HTTP/1 (allowHTTP1)
    // and plain HTTPS on the TLS socket.
    if (this.#kind.h2 && (socket as net.Socket & { alpnProtocol?: unknown }).alpnProtocol === "h2") return;
    this.#track(new Conn(this.#host, H1, socket, null));
  }

  #onSession(session: ServerHttp2Session): Conn {
    const conn = new Conn(this.#host, H2, null, session);
    this.#conns.add(conn);
    tagConn(session, conn);
    countStreams(conn, session);
    session.once("close", () => this.#untrack(conn));
    // A session opened while draining (before the listener closed) is told at once.
    if (this.#draining) {
      queueMicrotask(() => {
        if (this.#conns.has(conn) && sendGoaway(conn)) this.#host.goawaySent();
      });
    }
    return conn;
  }

  #onUpgrade(req: IncomingMessage, socket: net.Socket): void {
    // An HTTP/2 server emits 'connect' with a request and a response: the
    // stream is tracked by its session.
    if (req.httpVersionMajor === 2) return;
    const known = connOf(socket);
    const conn = known !== undefined && this.#conns.has(known) ? known : this.#track(new Conn(this.#host, UPGRADED, socket, null));
    markUpgraded(conn, req, this.#draining);
  }
}

/**
 * The HTTP/1 connections Node keeps for a server (for its own
 * `closeIdleConnections()` and request timeouts): a list under a symbol
 * described "http.server.connections" whose `all()` returns their parsers.
 * It holds the TLS socket of an HTTPS connection, which the process's
 * handles do not (they list the TCP socket under it).
 */
function listedConnections(server: object): net.Socket[] {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description !== "http.server.connections") continue;
    const list = (server as Record<symbol, { all?: () => Array<{ socket?: net.Socket | null }> }>)[symbol];
    if (typeof list?.all !== "function") return [];
    return list.all().flatMap((parser) => (parser.socket ? [parser.socket] : []));
  }
  return [];
}

/**
 * The sessions an HTTP/2 server lists itself: Node 24 keeps them (for its
 * own `close()`) in a `Set` under a symbol described "sessions"; Node 20
 * and 22 keep none, and their pre-attach sessions are found by their
 * sockets instead (invariant 2).
 */
function listedSessions(server: object): ServerHttp2Session[] {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description !== "sessions") continue;
    const value = (server as Record<symbol, unknown>)[symbol];
    // Node's own `SafeSet`: a Set by brand, not by `instanceof`.
    if (Object.prototype.toString.call(value) === "[object Set]") return Array.from(Set.prototype.values.call(value as Set<ServerHttp2Session>));
  }
  return [];
}

let warned = false;

/** Says once per process that the drain runs without what Node's parser gives it (http1.ts, invariant 6). */
function warnListened(): void {
  if (warned) return;
  warned = true;
  process.emitWarning(
    "serve(): this runtime's HTTP/1 sockets have no Node HTTP parser (Bun). Requests are seen through a prepended 'request' listener, " +
      "and idle keep-alive connections are closed by the runtime's own close(), not after idleGraceMs; see docs/http.md, \"Runtimes\".",
    { code: "CANCELKIT_HTTP_DEGRADED" },
  );
}

function peerKey(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
