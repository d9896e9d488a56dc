/*
 * Per-request bookkeeping behind `requestToken(req)` and `drainingToken(req)`.
 *
 * Invariants:
 * 1. A `RequestState` exists only for requests whose handler asked for a
 *    token (and for upgraded requests): it is created on the first
 *    `requestToken(req)` / `drainingToken(req)` call and stored in the
 *    module-level `WeakMap` (an `Http2ServerRequest` under its `stream`).
 *    Requests that never ask cost no allocation and no `WeakMap` entry —
 *    the hot path of a server that does not use tokens stays bare.
 * 2. A state is settled through `finish()` when its request ends: for
 *    HTTP/1 by its response's own 'finish' / 'close' (listeners added when
 *    the state is created, so only requests that asked pay for them) and by
 *    the tracker when the socket closes with the response unfinished; for
 *    HTTP/2 by the tracker when the stream closes. A state created after the
 *    request ended is born settled.
 * 3. A request token is a child of the coordinator's lifetime token, which is
 *    cancelled (with a `ShutdownTimeoutError`) only at the drain deadline.
 *    The draining token is a child of the request token, so it is cancelled
 *    whenever the request token is, and additionally when draining starts
 *    (one registration on the coordinator's draining token).
 * 4. When the request ends, `finish()` settles both for good: cancelled when
 *    the client went away, otherwise disposed (never cancelled), so the
 *    long-lived lifetime token holds nothing of finished requests.
 * 5. The token of an upgraded request (WebSocket, CONNECT) lives as long as
 *    the upgraded socket and is cancelled when draining starts: it is the only
 *    way to tell such a connection to say goodbye.
 */
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest, ServerHttp2Stream } from "node:http2";
import { CancellationToken, type CancelRegistration } from "../cancel/cancellation-token.js";

/** What the per-request tokens need from the coordinator. */
export interface TokenSource {
  /** Cancelled at the drain deadline; request tokens are its children. */
  readonly lifetime: CancellationToken;
  /** Cancelled when draining starts, with the shutdown reason. */
  readonly draining: CancellationToken;
}

export const ACTIVE = 0;
export const FINISHED = 1;
export const ABORTED = 2;

/** The reason a request token carries when the client went away first. */
export function clientGoneReason(): DOMException {
  return new DOMException("The client closed the connection before the response finished", "AbortError");
}

const states = new WeakMap<object, RequestState>();

export class RequestState {
  readonly source: TokenSource;
  readonly upgraded: boolean;
  status = ACTIVE;
  reason: unknown = undefined;
  token: CancellationToken | null = null;
  drainingToken: CancellationToken | null = null;
  #upgradeRegistration: CancelRegistration | null = null;
  #drainRegistration: CancelRegistration | null = null;

  constructor(source: TokenSource, upgraded: boolean, status = ACTIVE, reason?: unknown) {
    this.source = source;
    this.upgraded = upgraded;
    this.status = status;
    this.reason = reason;
  }

  getToken(): CancellationToken {
    if (this.token !== null) return this.token;
    let token: CancellationToken;
    if (this.status === ABORTED) token = CancellationToken.alreadyCancelled(this.reason);
    else if (this.status === FINISHED) token = new CancellationToken();
    else {
      token = this.source.lifetime.child();
      if (this.upgraded) {
        // Upgraded connections have no response to announce `Connection:
        // close` on; their token is how they hear that draining started.
        this.#upgradeRegistration = this.source.draining.onCancel((reason) => token.cancel(reason));
      }
    }
    return (this.token = token);
  }

  getDrainingToken(): CancellationToken {
    if (this.drainingToken !== null) return this.drainingToken;
    const token = this.getToken().child();
    if (this.status === ACTIVE) this.#drainRegistration = this.source.draining.onCancel((reason) => token.cancel(reason));
    return (this.drainingToken = token);
  }

  /** The request is over: `aborted` when the client went away before the response finished. */
  finish(aborted: boolean, reason?: unknown): void {
    if (this.status !== ACTIVE) return;
    this.status = aborted ? ABORTED : FINISHED;
    this.#drainRegistration?.unregister();
    this.#upgradeRegistration?.unregister();
    this.#drainRegistration = this.#upgradeRegistration = null;
    if (aborted) {
      this.reason = reason ?? clientGoneReason();
      this.token?.cancel(this.reason);
    } else {
      // Disposing never cancels; the child goes first so it is not re-parented
      // onto the lifetime token.
      this.drainingToken?.[Symbol.dispose]();
      this.token?.[Symbol.dispose]();
    }
  }
}


/** Anything `requestToken` accepts. */
export type AnyRequest = IncomingMessage | Http2ServerRequest | ServerHttp2Stream;

/** The key a request's state is stored under: the stream for HTTP/2 compat requests. */
export function requestKey(req: object): object {
  const stream = (req as { stream?: unknown }).stream;
  // `Http2ServerRequest` exposes its `ServerHttp2Stream` as `stream`; an
  // `IncomingMessage` has no such property.
  return typeof stream === "object" && stream !== null && typeof (stream as { respond?: unknown }).respond === "function" ? stream : req;
}

export function getState(key: object): RequestState | undefined {
  return states.get(key);
}

export function setState(key: object, state: RequestState): void {
  states.set(key, state);
}
