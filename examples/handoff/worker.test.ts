/*
 * A property over "send vs close vs cancel" that finds the race planted in
 * ./worker.ts within fast-check's default number of runs, and holds for the
 * correct worker. Run it with `npm test`; docs/testing.md walks through it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CancellationToken, oneshot } from "../../src/index.js";
import { worker } from "./worker.js";

/** No job is lost: every run ends with the job processed once, or still the producer's. */
function noJobLost(buggy: boolean): fc.IAsyncPropertyWithHooks<["send" | "close", fc.Scheduler]> {
  // fc.scheduler() comes last: listed before other arbitraries, its choices follow theirs (fast-check 4).
  return fc.asyncProperty(fc.constantFrom("send", "close"), fc.scheduler(), async (producerAction, s) => {
    const [tx, rx] = oneshot<string>();
    const stop = new CancellationToken();
    const processed: string[] = [];
    let accepted: boolean | null = null;

    // The worker, with a scheduled await inside its shutdown path.
    const done = worker(rx, stop, {
      process: (job) => processed.push(job),
      onStop: s.scheduleFunction(async function onStop() {}),
      buggy,
    });
    // The producer and the shutdown: each runs when the scheduler releases its turn, in the order it picks.
    // (Not scheduleFunction: that calls the function at once and only schedules its answer, like
    // the onStop above, an async dependency whose completion the scheduler decides.)
    const produce = s.schedule(Promise.resolve("producer")).then(() => {
      if (producerAction === "send") accepted = tx.send("job-1");
      else tx.close();
    });
    const cancel = s.schedule(Promise.resolve("shutdown")).then(() => stop.cancel("SIGTERM"));
    await s.waitFor(Promise.all([done, produce, cancel]));

    if (accepted === true) expect(processed).toEqual(["job-1"]); // accepted: processed exactly once
    else expect(processed).toEqual([]); // refused or never sent: the producer still has it
  });
}

describe("examples/handoff: worker()", () => {
  it("worker() loses no job whatever the order of send, close and cancel", async () => {
    await fc.assert(noJobLost(false));
  });

  it("worker() with the planted Promise.race bug is caught: fast-check reports a counterexample", async () => {
    const result = await fc.check(noJobLost(true));
    expect(result.failed).toBe(true);
    // Found within the default number of runs (100), and shrunk to the interleaving that loses the job:
    // shutdown first, then the producer's send (accepted), then the worker's onStop.
    expect(result.numRuns).toBeLessThanOrEqual(100);
    const report = fc.defaultReportMessage(result) ?? "";
    expect(report).toMatch(/shutdown[\s\S]*producer[\s\S]*onStop/);
  });
});
