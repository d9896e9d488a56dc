/*
 * The library's waits compose with fc.scheduler(): every wait settles from
 * the actions the scheduler releases, in whatever order it picks, with the
 * outcome a one-line model predicts. These are the patterns docs/testing.md
 * teaches (scheduled promises, scheduleFunction, scheduleSequence); the
 * library's own race properties live beside each area's model test.
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

describe("fc.scheduler() over cancelkit's waits", () => {
  it("recv() settles with whichever of send, close and cancel the scheduler runs first, and an aborted recv() consumes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.constantFrom("send", "close"), async (s, senderAction) => {
        const [tx, rx] = oneshot<number>();
        const token = new CancellationToken();
        const order: string[] = [];
        const received = settle(rx.recv({ signal: token }));
        // Each action is a scheduled call: the scheduler decides the order.
        const act = s.scheduleFunction(async (name: string) => {
          order.push(name);
          if (name === "send") tx.send(7);
          else if (name === "close") tx.close();
          else token.cancel("stop");
        });
        await s.waitFor(Promise.all([act(senderAction), act("cancel")]));
        const outcome = await received;
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
  });

  it("changed() in a loop sees the last value of a scheduled sequence of sends, however they interleave with it", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 5 }), async (s, n) => {
        const [tx, rx] = watch(0);
        const seen: number[] = [];
        const reader = (async () => {
          for (;;) {
            // A scheduled yield, then the wait. (Scheduling the wait itself would deadlock: the
            // scheduler waits for a released task to settle, and this one needs a later send.)
            await s.schedule(Promise.resolve("reader's turn"));
            const r = await settle(rx.changed());
            if (!r.ok) return r.reason;
            seen.push(rx.borrow());
          }
        })();
        const steps = Array.from({ length: n }, (_, i) => ({ label: `send ${i + 1}`, builder: async () => void tx.send(i + 1) }));
        const sequence = s.scheduleSequence([...steps, { label: "close", builder: async () => tx.close() }]);
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
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 5 }), async (s, target) => {
        const [tx, rx] = watch(0);
        const sent: number[] = [];
        const found = settle(rx.waitFor((v) => v >= target));
        const send = s.scheduleFunction(async (v: number) => {
          sent.push(v);
          tx.send(v);
        });
        await s.waitFor(Promise.all([1, 2, 3, 4, 5].map((v) => send(v))));
        const outcome = await found;
        expect(outcome.ok).toBe(true);
        const value = (outcome as { value: number }).value;
        // Sends coalesce: the predicate sees the newest value when the wait wakes, so the winner is a
        // value that passes, sent no earlier than the first one that passed.
        expect(value).toBeGreaterThanOrEqual(target);
        expect(sent.indexOf(value)).toBeGreaterThanOrEqual(sent.findIndex((v) => v >= target));
      }),
    );
  });

  it("select() takes the first ready branch, and its losers consume nothing (the oneshot keeps its value, the watch its unseen version)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const [otx, orx] = oneshot<string>();
        const [wtx, wrx] = watch("idle");
        const token = new CancellationToken();
        const order: string[] = [];
        const act = s.scheduleFunction(async (name: "job" | "config" | "stop") => {
          order.push(name);
          if (name === "job") otx.send("job");
          else if (name === "config") wtx.send("reload");
          else token.cancel("stop");
        });
        const winner = select({ job: orx, config: wrx, stop: token }, { biased: true });
        await s.waitFor(Promise.all([act("job"), act("config"), act("stop")]));
        const r = await winner;
        expect(r.key).toBe(order[0]);
        if (r.key !== "job") expect(orx.tryRecv()).toEqual({ state: "value", value: "job" });
        if (r.key !== "config") expect(wrx.hasChanged()).toBe(true);
      }),
    );
  });

  it("cancelled() of CancellationToken.any() resolves with the reason of the source the scheduler cancels first", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 4 }), async (s, count) => {
        const sources = Array.from({ length: count }, () => new CancellationToken());
        const any = CancellationToken.any(sources);
        const child = any.child();
        const order: number[] = [];
        const cancel = s.scheduleFunction(async (i: number) => {
          order.push(i);
          sources[i]!.cancel(`source ${i}`);
        });
        const reason = child.cancelled();
        await s.waitFor(Promise.all(sources.map((_, i) => cancel(i))));
        expect(await reason).toBe(`source ${order[0]}`);
        any[Symbol.dispose]();
      }),
    );
  });

  it("TaskTracker.wait() resolves only once the tracker is closed and every task is done, whatever the order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 0, max: 4 }), async (s, tasks) => {
        const tracker = new TaskTracker();
        const finished: boolean[] = Array.from({ length: tasks }, () => false);
        let closed = false;
        for (let i = 0; i < tasks; i++) {
          void tracker.spawn(async () => {
            await s.schedule(Promise.resolve(`task ${i}`));
            finished[i] = true;
          });
        }
        const close = s.scheduleFunction(async () => {
          closed = true;
          tracker.close();
        });
        let sawAtWait: { closed: boolean; finished: boolean[] } | null = null;
        const waited = tracker.wait().then(() => (sawAtWait = { closed, finished: [...finished] }));
        void close();
        await s.waitFor(waited);
        expect(sawAtWait).toEqual({ closed: true, finished: finished.map(() => true) });
      }),
    );
  });
});
