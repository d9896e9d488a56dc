import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Piscina } from "piscina";
import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { CancellationToken, shareToken } from "../../src/cancel/index.js";

/*
 * The worker pool users already run: a piscina task takes a shared token's
 * handle in its task object (its port in the transfer list) and stops its
 * busy loop when the token is cancelled. The worker is not terminated, as it
 * would be by piscina's own `signal` option.
 */
const here = dirname(fileURLToPath(import.meta.url));
const filename = pathToFileURL(join(here, "fixtures", "piscina-task.mjs")).href;

let pool: Piscina | undefined;

afterEach(async () => {
  await pool?.destroy();
  pool = undefined;
});

function entry(): string {
  const dist = process.env["CANCELKIT_DIST"];
  if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  return pathToFileURL(join(dist, "cancel", "index.js")).href;
}

interface Result {
  threadId: number;
  cancelled: boolean;
  reason?: unknown;
  sum?: number;
}

describe("shareToken() with piscina", () => {
  it("a cancelled token stops a piscina task and its worker runs the next task", async () => {
    const created: number[] = [];
    const destroyed: number[] = [];
    pool = new Piscina({ filename, minThreads: 1, maxThreads: 1 });
    pool.on("workerCreate", (worker: { id: number }) => created.push(worker.id));
    pool.on("workerDestroy", (worker: { id: number }) => destroyed.push(worker.id));

    const token = new CancellationToken();
    const shared = shareToken(token);
    const { port1: started, port2: startedPort } = new MessageChannel();
    const running = new Promise((resolve) => started.once("message", resolve));
    // Effectively endless: only the token ends it.
    const task = pool.run({ entry: entry(), handle: shared.handle, limit: Number.MAX_SAFE_INTEGER, started: startedPort }, {
      transferList: [...shared.transfer, startedPort],
    }) as Promise<Result>;
    expect(await running).toBe("running");
    started.close();
    token.cancel("user pressed stop");
    const stopped = await task;
    expect(stopped).toMatchObject({ cancelled: true, reason: "user pressed stop" });
    expect(shared.isLive).toBe(false);

    const next = shareToken(new CancellationToken());
    const finished = (await pool.run({ entry: entry(), handle: next.handle, limit: 10_000 }, {
      transferList: next.transfer,
    })) as Result;
    expect(finished).toMatchObject({ cancelled: false, threadId: stopped.threadId });
    // The task disposed its shared token: the origin's share ends with it.
    for (let i = 0; i < 1_000 && next.isLive; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(next.isLive).toBe(false);
    expect(destroyed).toEqual([]);
    expect(new Set(created).size).toBe(1);
  });
});
