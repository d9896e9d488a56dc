/*
 * Upgraded connections (WebSocket, CONNECT): tracked from the moment Node
 * hands the socket over, told through their request token when draining
 * starts, destroyed at the deadline.
 *
 * Invariants:
 * 1. Node hands a socket over on 'upgrade' / 'connect' only while those
 *    events have listeners (otherwise it answers or destroys the socket
 *    itself). Our listener for them exists only while the application has
 *    one of its own, so adding ours never changes behaviour; it is
 *    prepended, so it runs before the application takes the socket over.
 * 2. An upgraded connection has no response to carry `Connection: close`:
 *    its request token, which lives as long as the socket, is cancelled when
 *    draining starts (request-state.ts, invariant 5). That is its notice.
 */
import type { IncomingMessage } from "node:http";
import type { Server as NetServer, Socket } from "node:net";
import { type Conn, UPGRADED } from "./conn.js";
import { RequestState, setState } from "./request-state.js";

const FOLLOWED = ["upgrade", "connect"] as const;
type Followed = (typeof FOLLOWED)[number];

function isFollowed(event: string | symbol): event is Followed {
  return event === "upgrade" || event === "connect";
}

/** Keeps one listener of ours on 'upgrade' / 'connect' exactly while the application has one (invariant 1). */
export class UpgradeListener {
  readonly #server: NetServer;
  readonly #listener: (req: IncomingMessage, socket: Socket) => void;
  readonly #following = new Set<Followed>();

  constructor(server: NetServer, listener: (req: IncomingMessage, socket: Socket) => void) {
    this.#server = server;
    this.#listener = listener;
  }

  /** Follows the listeners present now. */
  start(): void {
    for (const event of FOLLOWED) this.#follow(event, 0);
  }

  /** For the server's 'newListener' (emitted before the listener is added) and 'removeListener'. */
  changed(event: string | symbol, listener: unknown, adding: boolean): void {
    if (isFollowed(event) && listener !== this.#listener) this.#follow(event, adding ? 1 : 0);
  }

  stop(): void {
    for (const event of this.#following) this.#server.removeListener(event, this.#listener);
    this.#following.clear();
  }

  #follow(event: Followed, adding: number): void {
    const ours = this.#following.has(event);
    const others = this.#server.listenerCount(event) - (ours ? 1 : 0) + adding;
    if (others > 0 && !ours) {
      this.#server.prependListener(event, this.#listener);
      this.#following.add(event);
    } else if (others === 0 && ours) {
      this.#server.removeListener(event, this.#listener);
      this.#following.delete(event);
    }
  }
}

/** `conn` was upgraded by `req`: it gets a request token that lives as long as the socket (invariant 2). */
export function markUpgraded(conn: Conn, req: IncomingMessage, draining: boolean): void {
  conn.kind = UPGRADED;
  const state = new RequestState(conn.host, true);
  setState(req, state);
  conn.upgrade = state;
  if (draining) conn.host.upgradeNotified();
}

/** The upgraded socket closed: its token is cancelled, as for a client that went away. */
export function upgradeClosed(conn: Conn): void {
  conn.upgrade?.finish(true, new DOMException("The upgraded connection closed", "AbortError"));
}
