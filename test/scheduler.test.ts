/*
 * The library's waits compose with fc.scheduler(): every wait settles from
 * the actions the scheduler releases, in whatever order it picks, with the
 * outcome a one-line model predicts. These are the patterns docs/testing.md
 * teaches; the library's own race properties live beside each area's model
 * test.
 *
 * Two things to know about the scheduler, both shown here:
 * - an *action* (send, close, cancel) is scheduled as a turn:
 *   `s.schedule(Promise.resolve(label)).then(action)`. `s.scheduleFunction(f)`
 *   calls `f` at once and schedules only its answer: it is for an async
 *   dependency of the code under test (an API call, a hook), not for an action;
 * - `fc.scheduler()` goes last among the arbitraries: listed first, its
 *   choices follow the values generated after it, and whole orders are never
 *   tried. Each property below also checks that every order was reached.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CancellationToken, ChannelClosedError, oneshot, select, TaskTracker, watch } from "../src/index.js";

type Outcome<T> = { ok: true; value: T } | { ok: false; reason: unknown };
const settle = <T>(promise: Promise<T>): Promise<Outcome<T>> =>
  promise.then(
    (value) => ({ ok: true, value }),
    (reason: unknown) => ({ ok: false, reason }),
  );

/** Runs `action` when the scheduler releases the turn named `label`. */
const turn = <T>(s: fc.Scheduler, label: string, action: () => T): Promise<T> => s.schedule(Promise.resolve(label)).then(action);

describe("fc.scheduler() over cancelkit's waits", () => {
  it("recv() settles with whichever of send, close and cancel runs first, and an aborted recv() consumes nothing", async () => {
    const firsts = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("send", "close"), fc.scheduler(), async (senderAction, s) => {
        const [tx, rx] = oneshot<number>();
        const token = new CancellationToken();
        const order: string[] = [];
        const received = settle(rx.recv({ signal: token }));
        const sender = turn(s, senderAction, () => {
          order.push(senderAction);
          if (senderAction === "send") tx.send(7);
          else tx.close();
        });
        const canceller = turn(s, "cancel", () => {
          order.push("cancel");
          token.cancel("stop");
        });
        await s.waitFor(Promise.all([sender, canceller]));
        const outcome = await received;
        firsts.add(order[0]!);
        if (order[0] === "cancel") {
          expect(outcome).toEqual({ ok: false, reason: "stop" });
          // Nothing was consumed: a value sent after the abort is still there.
          expect(rx.tryRecv()).toEqual(senderAction === "send" ? { state: "value", value: 7 } : { state: "closed" });
        } else if (senderAction === "send") {
          expect(outcome).toEqual({ ok: true, value: 7 });
        } else {
          expect(outcome.ok === false && outcome.reason instanceof ChannelClosedError).toBe(true);
        }
      }),
    );
    expect([...firsts].sort()).toEqual(["cancel", "close", "send"]);
  });

  it("changed() in a loop ends with the last value of a scheduleSequence of sends, however it interleaves with them", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.scheduler(), async (n, s) => {
        const [tx, rx] = watch(0);
        const seen: number[] = [];
        const reader = (async () => {
          for (;;) {
            // A turn, then the wait. (Scheduling the wait itself would deadlock: the scheduler waits
            // for the task it released to settle, and this one needs a send it has not released.)
            await s.schedule(Promise.resolve("reader"));
            const r = await settle(rx.changed());
            if (!r.ok) return r.reason;
            seen.push(rx.borrow());
          }
        })();
        const sends = Array.from({ length: n }, (_, i) => ({ label: `send ${i + 1}`, builder: async () => void tx.send(i + 1) }));
        const sequence = s.scheduleSequence([...sends, { label: "close", builder: async () => tx.close() }]);
        await s.waitFor(Promise.all([sequence.task, reader]));
        expect(await reader).toBeInstanceOf(ChannelClosedError);
        // Sends coalesce, but the values seen increase and end with the last one.
        expect(seen.at(-1)).toBe(n);
        expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      }),
    );
  });

  it("waitFor() resolves with a value that passes, never one sent before the first that passed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.scheduler(), async (target, s) => {
        const [tx, rx] = watch(0);
        const sent: number[] = [];
        const found = settle(rx.waitFor((v) => v >= target));
        const sends = [1, 2, 3, 4, 5].map((v) =>
          turn(s, `send ${v}`, () => {
            sent.push(v);
            tx.send(v);
          }),
        );
        await s.waitFor(Promise.all(sends));
        const outcome = await found;
        expect(outcome.ok).toBe(true);
        const value = (outcome as { value: number }).value;
        // The predicate sees the newest value when the wait wakes: a value that passes, sent no
        // earlier than the first one that passed.
        expect(value).toBeGreaterThanOrEqual(target);
        expect(sent.indexOf(value)).toBeGreaterThanOrEqual(sent.findIndex((v) => v >= target));
      }),
    );
  });

  it("select() takes the first ready branch, and its losers consume nothing (the oneshot keeps its value, the watch its unseen version)", async () => {
    const winners = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const [otx, orx] = oneshot<string>();
        const [wtx, wrx] = watch("idle");
        const token = new CancellationToken();
        const order: string[] = [];
        const winner = select({ job: orx, config: wrx, stop: token }, { biased: true });
        const actions = {
          job: () => otx.send("job"),
          config: () => wtx.send("reload"),
          stop: () => token.cancel("stop"),
        };
        const turns = Object.entries(actions).map(([name, action]) => turn(s, name, () => (order.push(name), action())));
        await s.waitFor(Promise.all(turns));
        const r = await winner;
        winners.add(r.key);
        expect(r.key).toBe(order[0]);
        if (r.key !== "job") expect(orx.tryRecv()).toEqual({ state: "value", value: "job" });
        if (r.key !== "config") expect(wrx.hasChanged()).toBe(true);
      }),
    );
    expect([...winners].sort()).toEqual(["config", "job", "stop"]);
  });

  it("cancelled() of CancellationToken.any() resolves with the reason of the source cancelled first", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 4 }), fc.scheduler(), async (count, s) => {
        const sources = Array.from({ length: count }, () => new CancellationToken());
        const any = CancellationToken.any(sources);
        const reason = any.child().cancelled();
        const order: number[] = [];
        const turns = sources.map((source, i) =>
          turn(s, `cancel ${i}`, () => {
            order.push(i);
            source.cancel(`source ${i}`);
          }),
        );
        await s.waitFor(Promise.all(turns));
        expect(await reason).toBe(`source ${order[0]}`);
      }),
    );
  });

  it("TaskTracker.wait() resolves only once the tracker is closed and every task is done, whatever the order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.scheduler(), async (tasks, s) => {
        const tracker = new TaskTracker();
        // An async dependency of each task (a fetch, a query): scheduleFunction decides when it answers.
        const fetchJob = s.scheduleFunction(async function fetchJob(i: number) {
          return i;
        });
        const finished = Array.from({ length: tasks }, () => false);
        for (let i = 0; i < tasks; i++) {
          void tracker.spawn(async () => {
            finished[await fetchJob(i)] = true;
          });
        }
        let closed = false;
        const close = turn(s, "close", () => {
          closed = true;
          tracker.close();
        });
        let atWait: { closed: boolean; finished: boolean[] } | null = null;
        const waited = tracker.wait().then(() => (atWait = { closed, finished: [...finished] }));
        await s.waitFor(Promise.all([close, waited]));
        expect(atWait).toEqual({ closed: true, finished: finished.map(() => true) });
      }),
    );
  });
});
