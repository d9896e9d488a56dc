/*
 * The fastify integration: a plugin that serves `app.server` with
 * `serve()` and makes `app.close()` drain.
 *
 * Invariants:
 * 1. fastify is a type-only import: nothing of fastify is loaded at run time
 *    by this module, so it stays an optional peer dependency.
 * 2. The order on `app.close()` is fastify's own, with the drain inserted
 *    where fastify stops accepting: fastify's `preClose` hooks (ours awaits
 *    the whole drain), then fastify's `server.close()` (nothing left to
 *    close), then the `onClose` hooks, so a database closed in `onClose`
 *    outlives every request.
 * 3. The decorations are getters over the public `requestToken()` /
 *    `drainingToken()`: one source of truth, the request's state.
 */
import type { FastifyInstance, FastifyPluginCallback } from "fastify";
import type { CancellationToken } from "../cancel/cancellation-token.js";
import { assertOptions } from "../internal/errors.js";
import { drainingToken, requestToken } from "../http/request-token.js";
import { serve, type GracefulServer, type ServeOptions, type Server } from "../http/serve.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The drain of `app.server` (`cancelkit/fastify`): `isReady`, `state`, `shutdown()`, `force()`. */
    graceful: GracefulServer;
  }
  interface FastifyRequest {
    /** `requestToken(request.raw)` (`cancelkit/fastify`): cancelled when the client goes away and at the drain deadline. */
    readonly requestToken: CancellationToken;
    /** `drainingToken(request.raw)` (`cancelkit/fastify`): cancelled when draining starts. */
    readonly drainingToken: CancellationToken;
  }
}

/**
 * Options of {@link cancelkitFastify}: those of `serve()` (see
 * `ServeOptions` in `cancelkit/http`). fastify's own register options
 * (`prefix`, `logLevel`, `logSerializers`) are accepted and ignored.
 */
export type CancelkitFastifyOptions = ServeOptions;

const FASTIFY_ACTION = "register cancelkitFastify";
const SERVE_KEYS = ["signal", "beforeCloseMs", "idleGraceMs", "drainTimeoutMs", "forceAnswerMs"] as const;
const FASTIFY_KEYS = ["prefix", "logLevel", "logSerializers"];

function gracefulPlugin(app: FastifyInstance, options: CancelkitFastifyOptions, done: (error?: Error) => void): void {
  let graceful: GracefulServer;
  try {
    // Misuse reaches the caller through avvio (`register()` rejects), before anything is attached.
    assertOptions(FASTIFY_ACTION, options, [...SERVE_KEYS, ...FASTIFY_KEYS]);
    const serveOptions: Record<string, unknown> = {};
    for (const key of SERVE_KEYS) if (options[key] !== undefined) serveOptions[key] = options[key];
    graceful = serve(app.server as Server, serveOptions as ServeOptions);
  } catch (error) {
    done(error as Error);
    return;
  }
  app.decorate("graceful", graceful);
  app.decorateRequest("requestToken", {
    getter(this: { raw: Parameters<typeof requestToken>[0] }) {
      return requestToken(this.raw);
    },
  });
  app.decorateRequest("drainingToken", {
    getter(this: { raw: Parameters<typeof drainingToken>[0] }) {
      return drainingToken(this.raw);
    },
  });
  app.addHook("preClose", async () => {
    await graceful.shutdown();
  });
  done();
}

// Not encapsulated: the decorations and the hook belong to the root instance
// (what fastify-plugin does, without depending on it).
// The name users import it by, in stack traces and fastify's plugin errors.
Object.defineProperty(gracefulPlugin, "name", { value: "cancelkitFastify" });
Object.defineProperty(gracefulPlugin, Symbol.for("skip-override"), { value: true });
Object.defineProperty(gracefulPlugin, Symbol.for("fastify.display-name"), { value: "cancelkit" });

/**
 * A fastify plugin: serves `app.server` with `serve()` from `cancelkit/http`,
 * so `app.close()` drains it gracefully, and exposes the drain and the
 * per-request tokens.
 *
 * - `app.close()`: fastify runs its `preClose` hooks, where this plugin
 *   awaits the whole drain (`beforeCloseMs`, then draining as
 *   `cancelkit/http` does, up to the deadline); then fastify closes its
 *   server (nothing is left to close) and runs the `onClose` hooks, after
 *   the last request finished. A drain started by `signal` is the same
 *   drain: `await app.close()` afterwards waits for it and then runs the
 *   `onClose` hooks.
 * - `app.graceful`: the {@link GracefulServer} (`isReady` for a readiness
 *   route, `state`, `force()`, the report from `shutdown()`).
 * - `request.requestToken` / `request.drainingToken`: the request's tokens
 *   (`requestToken(request.raw)` / `drainingToken(request.raw)`).
 *
 * fastify answers 503 to a request that arrives on a kept-alive connection
 * once `close()` has begun. To serve those requests instead (the drain
 * still tells the client `Connection: close`), create the app with
 * `return503OnClosing: false`.
 *
 * Register it on the root instance, before `listen()`. fastify is an
 * optional peer dependency: this entry point imports nothing of it at run
 * time.
 *
 * @throws {TypeError} (through `app.register`, at `ready()`/`listen()`)
 *   when an option is unknown or has the wrong type, or `app.server` is
 *   already served.
 * @throws {RangeError} when a duration is negative or not finite.
 *
 * @example Drain on SIGTERM, close the database after the last request
 * ```ts
 * import Fastify from "fastify";
 * import { cancelkitFastify } from "cancelkit/fastify";
 * import { shutdown } from "cancelkit/signals";
 * const stop = shutdown();
 * const app = Fastify({ return503OnClosing: false });
 * await app.register(cancelkitFastify, { signal: stop, drainTimeoutMs: 20_000 });
 * app.get("/", async (request) => {
 *   await new Promise((resolve) => setTimeout(resolve, 100, undefined));
 *   return { cancelled: request.requestToken.isCancelled };
 * });
 * app.addHook("onClose", async () => {
 *   // db.end(): runs after the drain
 * });
 * await app.listen({ port: 8080 });
 * await stop.cancelled();
 * await app.close(); // waits for the drain the signal started, then the onClose hooks
 * console.assert(app.graceful.state.borrow() === "closed");
 * ```
 */
export const cancelkitFastify: FastifyPluginCallback<CancelkitFastifyOptions> = gracefulPlugin as FastifyPluginCallback<CancelkitFastifyOptions>;
