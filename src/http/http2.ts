/*
 * HTTP/2 session policy: streams are counted per session, and a draining
 * session is told with a two-phase GOAWAY.
 *
 * Invariants:
 * 1. Streams are seen by a listener prepended to each session's 'stream'
 *    event, so a stream is counted before any application listener runs;
 *    `active` is the number of open streams.
 * 2. GOAWAY is two-phase (RFC 9113 §6.8): a PING first measures the round
 *    trip (an nghttp2 peer that received GOAWAY with no open stream stops
 *    reading, so the PING must come before it); then GOAWAY with the
 *    largest stream id, "no new streams", while streams the client already
 *    sent are still accepted; after twice the round trip, `session.close()`
 *    sends GOAWAY with the last processed id, and Node destroys the session
 *    once its last stream ends.
 * 3. The GOAWAY timers are referenced on purpose (at most `GOAWAY_PING_MS`
 *    each): after the first GOAWAY an idle peer's socket stops reading, so
 *    such a timer may be the only handle left, and unreferenced the process
 *    could exit with the drain unfinished.
 */
import type { ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import { Conn, connOf } from "./conn.js";
import { ABORTED, clientGoneReason, FINISHED, getState, RequestState, setState } from "./request-state.js";

/** How long to wait for the PING acknowledgement that measures a session's round trip. */
const GOAWAY_PING_MS = 1000;
/** Shortest wait between the two GOAWAY frames. */
const MIN_GOAWAY_WAIT_MS = 10;
const NGHTTP2_NO_ERROR = 0;

/** Counts `conn`'s streams from now on (invariant 1). */
export function countStreams(conn: Conn, session: ServerHttp2Session): void {
  session.prependListener("stream", (stream: ServerHttp2Stream) => countStream(conn, stream));
}

/** Counts one stream until it closes. */
export function countStream(conn: Conn, stream: ServerHttp2Stream): void {
  conn.active++;
  stream.once("close", () => {
    conn.active--;
    const completed = stream.rstCode === 0 && stream.writableFinished;
    getState(stream)?.finish(!completed);
    conn.host.requestEnded(completed);
  });
}

/** Tells `conn`'s session to go away (invariant 2); `false` when it was already closing. */
export function sendGoaway(conn: Conn): boolean {
  const session = conn.session!;
  if (conn.ended || session.closed || session.destroyed) return false;
  conn.ended = true;
  const close = (): void => {
    conn.clearTimer();
    if (!session.closed && !session.destroyed) session.close();
  };
  let announced = false;
  const announce = (waitMs: number): void => {
    if (announced) return;
    announced = true;
    conn.clearTimer();
    if (session.closed || session.destroyed) return;
    try {
      session.goaway(NGHTTP2_NO_ERROR, 2 ** 31 - 1);
    } catch {
      close();
      return;
    }
    conn.timer = setTimeout(close, waitMs); // referenced (invariant 3)
  };
  const sent = performance.now();
  try {
    const pinged = session.ping((error) => {
      const rtt = performance.now() - sent;
      announce(error === null ? Math.min(GOAWAY_PING_MS, Math.max(MIN_GOAWAY_WAIT_MS, 2 * rtt)) : MIN_GOAWAY_WAIT_MS);
    });
    if (!pinged) announce(MIN_GOAWAY_WAIT_MS);
  } catch {
    announce(MIN_GOAWAY_WAIT_MS);
  }
  if (!announced) conn.timer = setTimeout(() => announce(MIN_GOAWAY_WAIT_MS), GOAWAY_PING_MS); // referenced (invariant 3)
  return true;
}

/**
 * At the deadline: a session with streams open stops taking new ones and
 * closes after its last (its handlers get the answer window); `false` when
 * it has none and should be destroyed now.
 */
export function closeForAnswers(conn: Conn): boolean {
  const session = conn.session!;
  if (conn.active === 0 || session.destroyed) return false;
  conn.clearTimer();
  if (!session.closed) session.close();
  return true;
}

/** The state of an HTTP/2 stream of a served session, created on first use. */
export function lookupStateH2(stream: ServerHttp2Stream): RequestState | undefined {
  const conn = stream.session ? connOf(stream.session) : undefined;
  if (conn === undefined) return undefined;
  const state = stream.closed
    ? new RequestState(conn.host, false, stream.rstCode === 0 && stream.writableFinished ? FINISHED : ABORTED, clientGoneReason())
    : new RequestState(conn.host, false);
  setState(stream, state);
  return state;
}
