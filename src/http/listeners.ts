/*
 * Listening sockets: closing them, and a `listen()` still resolving.
 *
 * Invariants:
 * 1. A listener is closed with `net.Server.prototype.close`, never the
 *    server's own `close()`: the HTTP server's sweeps idle sockets once, at
 *    an instant a client may be writing its next request, and on Node 24 the
 *    HTTP/2 server's closes sessions with a single GOAWAY. Connections are
 *    the drain's business, not the listener's.
 * 2. A `listen()` whose host is still being looked up binds later: Node
 *    publishes `net.server.listen`'s tracing `asyncStart` when `listen()` is
 *    called and `asyncEnd` / `error` when it resolves. A served server with a
 *    listen pending is not *settled*: a drain waits for it, and closes its
 *    listener the moment it binds (`bound()`), so a server that starts
 *    listening after the shutdown began never serves.
 * 3. The tracing channels are subscribed while any server is served; a
 *    message for a server nobody serves costs one `WeakMap` lookup.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import * as net from "node:net";

const LISTEN_START = "tracing:net.server.listen:asyncStart";
const LISTEN_END = "tracing:net.server.listen:asyncEnd";
const LISTEN_ERROR = "tracing:net.server.listen:error";

const controls = new WeakMap<object, ListenerControl>();
let watched = 0;

function onListenStart(message: unknown): void {
  const control = controls.get((message as { server?: object }).server ?? {});
  if (control !== undefined) control.listenPending = true;
}

function onListenSettled(message: unknown): void {
  const control = controls.get((message as { server?: object }).server ?? {});
  if (control === undefined || !control.listenPending) return;
  control.listenPending = false;
  control.changed();
}

/** The listening side of one served server. */
export class ListenerControl {
  readonly server: net.Server;
  /** `listen()` was called and has not bound or failed yet (invariant 2). */
  listenPending = false;
  /** We closed the listener and Node has not reported it closed yet. */
  #closing = false;
  /** Closing (invariant 2): a listener that binds from now on is closed at once. */
  #draining = false;
  readonly #onClosed: () => void;

  /** `onClosed`: a listener we closed is gone, or a pending listen settled. */
  constructor(server: net.Server, onClosed: () => void) {
    this.server = server;
    this.#onClosed = onClosed;
  }

  attach(): void {
    controls.set(this.server, this);
    if (watched++ === 0) {
      diagnosticsChannel.subscribe(LISTEN_START, onListenStart);
      diagnosticsChannel.subscribe(LISTEN_END, onListenSettled);
      diagnosticsChannel.subscribe(LISTEN_ERROR, onListenSettled);
    }
  }

  detach(): void {
    if (controls.get(this.server) !== this) return;
    controls.delete(this.server);
    if (--watched === 0) {
      diagnosticsChannel.unsubscribe(LISTEN_START, onListenStart);
      diagnosticsChannel.unsubscribe(LISTEN_END, onListenSettled);
      diagnosticsChannel.unsubscribe(LISTEN_ERROR, onListenSettled);
    }
  }

  /** Nothing of the listener is left to wait for. */
  get settled(): boolean {
    return !this.listenPending && !this.#closing;
  }

  /**
   * Stops accepting, now and whenever the server binds later (invariant 1).
   * Returns `true` when a listening socket was closed now.
   */
  close(): boolean {
    this.#draining = true;
    return this.#closeNow();
  }

  /** The server emitted 'listening'. Returns `true` when the drain closed it at once. */
  bound(): boolean {
    this.listenPending = false;
    return this.#draining && this.#closeNow();
  }

  /** At the deadline: stop waiting for Node's 'close', which waits for connections we cannot see. */
  giveUp(): void {
    this.#closing = false;
    this.listenPending = false;
  }

  changed(): void {
    this.#onClosed();
  }

  #closeNow(): boolean {
    if (!this.server.listening || this.#closing) return false;
    this.#closing = true;
    const done = (): void => {
      this.#closing = false;
      this.#onClosed();
    };
    if (this.server instanceof net.Server) net.Server.prototype.close.call(this.server, done);
    else (this.server as { close(callback: () => void): unknown }).close(done);
    return true;
  }
}
