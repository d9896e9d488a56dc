// The application's own names that doc fragments use without declaring
// (README.md and docs/*.md blocks marked `<!-- doctest: fragment -->`, and
// the examples in src/ doc comments). Only fragments see these: a whole
// block must declare what it uses.
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Selectable } from "cancelkit";

declare global {
  const app: RequestListener;
  const handler: (req: IncomingMessage, res: ServerResponse) => void;
  const db: { query(sql: string, options?: { signal?: AbortSignal }): Promise<unknown[]> };
  /** A queue of jobs that plugs into select (the public Selectable protocol). */
  const jobs: Selectable<string>;
  function handle(job: string): Promise<void>;
  function work(): Promise<void>;
  function reload(): Promise<void>;
  function reloadConfiguration(): Promise<void>;
  function drainConnections(options?: { signal?: AbortSignal }): Promise<void>;
  function destroyRemainingSockets(): void;
  /** The peers of the migration guide (docs/http.md). */
  const server: import("node:http").Server;
  function createHttpTerminator(options: { server: import("node:http").Server; gracefulTerminationTimeout?: number }): { terminate(): Promise<void> };
  function stoppable(server: import("node:http").Server, grace?: number): import("node:http").Server & { stop(callback?: (error: Error | undefined, gracefully: boolean) => void): void };
}
