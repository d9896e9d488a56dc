/*
 * The record of one tracked connection, shared by the policy modules
 * (./http1.ts, ./http2.ts, ./upgrades.ts) and the tracker that owns it.
 *
 * Invariants:
 * 1. A `Conn` is one transport connection at the layer HTTP runs on: the
 *    TLS socket for TLS servers (which is `req.socket`), the TCP socket
 *    otherwise, or one HTTP/2 session. Its `kind` says which policy drains it.
 * 2. A socket or session finds its `Conn` through one symbol-keyed property
 *    of ours, set once when it is tracked and never deleted (deleting would
 *    turn Node's object into a slow dictionary object).
 * 3. Only the tracker that created a `Conn` adds it to or removes it from
 *    its set; the policy modules change the `Conn` itself and tell the
 *    coordinator what happened through the {@link ConnHost} it carries.
 */
import type { ServerResponse } from "node:http";
import type { ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";
import type { RequestState, TokenSource } from "./request-state.js";

/** A TLS handshake in progress, tracked on its TCP socket. */
export const PENDING = 0;
/** An HTTP/1 connection (plain or TLS). */
export const H1 = 1;
/** An HTTP/2 session. */
export const H2 = 2;
/** A connection handed to an 'upgrade' / 'connect' listener (WebSocket, CONNECT). */
export const UPGRADED = 3;
/**
 * A socket of an HTTP/2 server accepted before `serve()` attached, whose
 * session we have not seen yet (Node lists no sessions): it becomes `H2`
 * when the session opens a stream, and is drained like an idle HTTP/1
 * connection until then.
 */
export const FOREIGN = 4;

/**
 * What the request hooks do with a connection's HTTP/1 requests: the
 * diagnostics-channel hooks take `QUEUE` / `DRAIN`, the fallback
 * 'request' listener (a runtime whose sockets have no Node HTTP parser,
 * http1.ts invariant 6) `LISTENED_QUEUE` / `LISTENED_DRAIN`.
 */
export const IGNORE = 0;
export const QUEUE = 1;
export const DRAIN = 2;
export const LISTENED_QUEUE = 3;
export const LISTENED_DRAIN = 4;

/** What a connection tells its coordinator: the counts of the report, and when to re-check "drained". */
export interface ConnHost extends TokenSource {
  /** A tracked connection closed; `conn.forced` says how. */
  connectionClosed(conn: Conn): void;
  /** A request or stream ended while draining; `completed` when its response finished. */
  requestEnded(completed: boolean): void;
  /** A request arrived on an HTTP/1 connection after our FIN and was refused unseen. */
  requestRefused(): void;
  /** An upgraded connection was told that draining started. */
  upgradeNotified(): void;
}

export class Conn {
  kind: number;
  readonly socket: Socket | null;
  session: ServerHttp2Session | null;
  readonly host: ConnHost;
  /** `IGNORE` once its tracker detached; read by the request hooks. */
  mode = IGNORE;
  /** Requests in flight (HTTP/1: responses unfinished, kept while draining; HTTP/2: open streams). */
  active = 0;
  /** Since when the connection is idle, and its bytes moved (read and written) and read then. */
  idleSince: number;
  idleBytes: number;
  idleRead: number;
  /**
   * HTTP/1: the socket has Node's HTTP parser, so a request arriving can be
   * seen in its bytes and refused after our FIN (http1.ts, invariants 4-6).
   */
  parsed = true;
  /** HTTP/1: bytes of a request arrived while idle; in flight until a response finishes. */
  partial = false;
  /** We sent FIN (HTTP/1) or GOAWAY (HTTP/2): the client was told. */
  ended = false;
  /** Destroyed by the force path (deadline or `force()`). */
  forced = false;
  /** The one timer of this connection (linger, GOAWAY phases, the answer window). */
  timer: ReturnType<typeof setTimeout> | null = null;
  /** The request state of an upgraded connection. */
  upgrade: RequestState | null = null;
  /** The response we set `shouldKeepAlive = false` on: the last one in flight. */
  marked: ServerResponse | null = null;
  /** HTTP/1 responses in flight, oldest first. */
  readonly queue: ServerResponse[] = [];

  constructor(host: ConnHost, kind: number, socket: Socket | null, session: ServerHttp2Session | null) {
    this.host = host;
    this.kind = kind;
    this.socket = socket;
    this.session = session;
    this.idleSince = performance.now();
    this.idleBytes = socket === null ? 0 : transferred(socket);
    this.idleRead = socket?.bytesRead ?? 0;
  }

  clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Destroys the connection now; counted as forced. */
  destroy(): void {
    this.forced = true;
    this.clearTimer();
    if (this.session !== null) this.session.destroy();
    else this.socket!.destroy();
  }
}

/** Bytes read plus bytes written: moves whenever the connection is not idle. */
export function transferred(socket: Socket): number {
  return (socket.bytesRead ?? 0) + (socket.bytesWritten ?? 0);
}

const CONN = Symbol("cancelkit.conn");
interface Tagged {
  [CONN]?: Conn;
}

/** The `Conn` of a tracked socket or HTTP/2 session (invariant 2). */
export function connOf(target: object): Conn | undefined {
  return (target as Tagged)[CONN];
}

export function tagConn(target: object, conn: Conn): void {
  (target as Tagged)[CONN] = conn;
}
