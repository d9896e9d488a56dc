/**
 * Graceful HTTP: drain `node:http`, `node:https` and `node:http2` servers
 * without losing a request.
 *
 * - {@link serve} attaches to one or more servers (or creates one from a
 *   request listener) and drains them when its `signal` fires or
 *   `shutdown()` is called, resolving a {@link ShutdownReport}.
 * - {@link requestToken} is the per-request token: cancelled when the client
 *   goes away and at the drain deadline.
 * - {@link drainingToken} is the per-request soft notice: streaming and
 *   long-poll handlers end cleanly when it fires.
 * - {@link readinessHandler} / {@link livenessHandler} answer probes (503
 *   from the moment shutdown starts); {@link healthServer} serves them on a
 *   port of their own, drained after the app.
 * - {@link clusterPrimary} and {@link clusterWorker} drain a `node:cluster`
 *   service: one token in the primary drains every worker with one
 *   deadline, and each worker exits on its own once drained.
 *
 * Vocabulary:
 * - *draining*: the listeners are closed (new connections are refused), work
 *   in flight finishes, and clients are told to go away — `Connection: close`
 *   on HTTP/1 responses, GOAWAY on HTTP/2 sessions, a cancelled token for
 *   streaming handlers and upgraded (WebSocket) connections;
 * - *grace*: how long an HTTP/1 connection that was never told must stay
 *   idle before it is closed with a FIN (`idleGraceMs`), so a client that
 *   reuses it at that instant gets an answer instead of a reset;
 * - *forced*: at the drain deadline (`drainTimeoutMs`, or `force()`) request
 *   tokens are cancelled with a `ShutdownTimeoutError`, handlers get
 *   `forceAnswerMs` to answer, and what is left is destroyed.
 *
 * The lifecycle is a `watch` channel, `serving → draining → closed`; see
 * the guide `docs/http.md` for the state machine, the options and a
 * Kubernetes recipe.
 *
 * ```ts
 * import { shutdown } from "cancelkit/signals";
 * import { serve, drainingToken } from "cancelkit/http";
 *
 * const stop = shutdown(); // the first SIGINT or SIGTERM
 * const graceful = serve(handler, { signal: stop, beforeCloseMs: 5_000, drainTimeoutMs: 20_000 });
 * graceful.server.listen(8080);
 * await stop.cancelled();
 * const report = await graceful.shutdown(); // the drain the signal started; resolves once drained
 * console.log(report);
 * ```
 *
 * @module
 */
export {
  serve,
  type GracefulServer,
  type ServeOptions,
  type ServeState,
  type ServePhase,
  type Server,
  type ShutdownReport,
} from "./serve.js";
export { requestToken, drainingToken, type AnyRequest } from "./request-token.js";
export {
  readinessHandler,
  livenessHandler,
  healthServer,
  type HealthCheck,
  type HealthHandler,
  type HealthHandlerOptions,
  type HealthServerOptions,
} from "./health.js";
export {
  clusterPrimary,
  clusterWorker,
  type ClusterPrimary,
  type ClusterPrimaryOptions,
  type ClusterReport,
  type ClusterWorkerOptions,
  type ClusterWorkerReport,
} from "./cluster.js";
