/*
 * A model test of serve()'s lifecycle over real sockets: fast-check picks
 * the order of requests (answered at once or held), releases, clients
 * leaving, shutdown(), force() and the signal; the properties are the
 * drain's promises, whatever that order.
 *
 * - the state only moves forward, serving → draining → closed, and ends closed;
 * - shutdown() and force() return one promise, which resolves once;
 * - without force() and with every client staying, no request is lost: a
 *   request a handler saw got its response, even one sent while the drain
 *   runs (one refused after our FIN, or by the closed listener, never
 *   reached a handler);
 * - the report's counts agree with what the clients saw, and nothing of the
 *   server is left listening.
 */
import fc from "fast-check";
import * as http from "node:http";
import { describe, expect, it } from "vitest";
import { CancellationToken } from "../../src/index.js";
import { serve, type GracefulServer, type ServeState, type ShutdownReport } from "../../src/http/index.js";
import { listen, suiteCleanup, tick } from "./helpers.js";

const cleanup = suiteCleanup();

interface Model {
  started: boolean;
  forced: boolean;
  clientsLeft: boolean;
}

interface Outcome {
  status: number | null;
  error: string | null;
}

class Real {
  readonly server: http.Server;
  readonly graceful: GracefulServer;
  readonly stop = new CancellationToken();
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  readonly states: ServeState[] = [];
  readonly outcomes: Array<Promise<Outcome>> = [];
  /** Requests a handler saw, by number. */
  readonly handled = new Set<number>();
  held: Array<() => void> = [];
  promises: Array<Promise<ShutdownReport>> = [];
  port = 0;
  #next = 0;

  constructor() {
    this.server = cleanup.add(
      http.createServer((req, res) => {
        this.handled.add(Number(req.url!.split("/")[2]));
        if (req.url!.startsWith("/held")) this.held.push(() => res.end("ok"));
        else res.end("ok");
      }),
    );
    const graceful = serve(this.server, { signal: this.stop, idleGraceMs: 30, drainTimeoutMs: 2000, forceAnswerMs: 50 });
    this.graceful = graceful;
    cleanup.defer(() => this.agent.destroy());
    void (async () => {
      for await (const state of graceful.state) this.states.push(state);
    })();
  }

  request(held: boolean): void {
    const path = `/${held ? "held" : "fast"}/${this.#next++}`;
    this.outcomes.push(
      new Promise<Outcome>((resolve) => {
        const req = http.request({ host: "127.0.0.1", port: this.port, path, method: "POST", agent: this.agent }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? null, error: null }));
          res.on("error", (error: NodeJS.ErrnoException) => resolve({ status: null, error: error.code ?? error.message }));
        });
        req.on("error", (error: NodeJS.ErrnoException) => resolve({ status: null, error: error.code ?? error.message }));
        req.end("body");
      }),
    );
  }

  release(): void {
    const held = this.held;
    this.held = [];
    for (const respond of held) respond();
  }
}

type Command = fc.AsyncCommand<Model, Real>;

const commands = [
  fc.boolean().map(
    (held): Command => ({
      check: () => true,
      run: async (_m, r) => {
        r.request(held);
        await tick(2);
      },
      toString: () => `request(${held ? "held" : "fast"})`,
    }),
  ),
  fc.constant<Command>({
    check: () => true,
    run: async (_m, r) => {
      r.release();
      await tick(1);
    },
    toString: () => "release",
  }),
  fc.constant<Command>({
    check: () => true,
    run: async (m, r) => {
      m.clientsLeft = true;
      r.agent.destroy();
      await tick(1);
    },
    toString: () => "clientsLeave",
  }),
  fc.constantFrom("shutdown", "abort").map(
    (how): Command => ({
      check: () => true,
      run: async (m, r) => {
        m.started = true;
        if (how === "shutdown") r.promises.push(r.graceful.shutdown());
        else r.stop.cancel("SIGTERM");
        expect(r.graceful.isReady).toBe(false);
        await tick(1);
      },
      toString: () => how,
    }),
  ),
  fc.constant<Command>({
    check: () => true,
    run: async (m, r) => {
      m.started = true;
      m.forced = true;
      r.promises.push(r.graceful.force("forced"));
      expect(r.graceful.isReady).toBe(false);
      await tick(1);
    },
    toString: () => "force",
  }),
  fc.integer({ min: 0, max: 40 }).map(
    (ms): Command => ({
      check: () => true,
      run: () => tick(ms),
      toString: () => `wait(${ms})`,
    }),
  ),
];

function isOrderedSubsequence<T>(seen: readonly T[], order: readonly T[]): boolean {
  let at = 0;
  for (const item of seen) {
    const found = order.indexOf(item, at);
    if (found < 0) return false;
    at = found + 1;
  }
  return true;
}

describe("serve() lifecycle model", () => {
  it("keeps the drain's promises whatever the order of requests, releases, clients leaving, shutdown, force and the signal", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 12 }), async (cmds) => {
        const real = new Real();
        real.port = await listen(real.server);
        const model: Model = { started: false, forced: false, clientsLeft: false };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // Finish the run: start the shutdown if nothing did; held work is
        // answered as it arrives, so only force() or clients leaving lose any.
        const done = real.graceful.shutdown();
        let finished = false;
        void done.then(() => (finished = true));
        while (!finished) {
          real.release();
          await tick(5);
        }
        const report = await done;
        for (const promise of real.promises) expect(promise).toBe(done);
        expect(real.graceful.force()).toBe(done);
        const outcomes = await Promise.all(real.outcomes);

        expect(isOrderedSubsequence(real.states, ["serving", "draining", "closed"])).toBe(true);
        expect(real.states.at(-1)).toBe("closed");
        expect(real.server.listening).toBe(false);
        if (!model.forced) expect(report.deadlineHit).toBe(false);
        if (report.connectionsForced > 0) expect(report.deadlineHit).toBe(true);
        if (!model.forced && !model.clientsLeft) {
          // No request lost: every request a handler saw got its response,
          // and a request that got none never reached a handler.
          expect(report.deadlineHit).toBe(false);
          const lost = outcomes.flatMap((outcome, i) => (outcome.status !== 200 && real.handled.has(i) ? [{ i, ...outcome }] : []));
          expect(lost).toEqual([]);
          expect(outcomes.filter((o) => o.status === 200).length).toBe(real.handled.size);
        }
      }),
      { numRuns: 30 },
    );
  }, 120_000);
});
