/**
 * fastify: `app.register(cancelkitFastify, { signal })` makes `app.close()`
 * drain `app.server` with `serve()` from `cancelkit/http`, runs the
 * `onClose` hooks after the last request, and puts the request's tokens on
 * `request.requestToken` / `request.drainingToken`.
 *
 * fastify (5) is an optional peer dependency: this entry point loads nothing
 * of it. express 5 and koa 3 need no adapter: see the recipes in
 * `docs/frameworks.md`.
 *
 * ```ts
 * import Fastify from "fastify";
 * import { cancelkitFastify } from "cancelkit/fastify";
 * const app = Fastify({ return503OnClosing: false });
 * await app.register(cancelkitFastify, { drainTimeoutMs: 10_000 });
 * await app.listen({ port: 0 });
 * await app.close(); // drains, then runs the onClose hooks
 * console.assert(app.graceful.state.borrow() === "closed");
 * ```
 *
 * @module
 */
export { cancelkitFastify, type CancelkitFastifyOptions } from "./fastify-plugin.js";
