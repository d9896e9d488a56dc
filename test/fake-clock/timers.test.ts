/*
 * Every time-based API of the platform-neutral entry and of signals runs on
 * a fake clock: advancing the clock fires exactly what is due, in order, and
 * nothing else. Each test runs under vitest's fake timers and under
 * @sinonjs/fake-timers (./clocks.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { CancellationToken, deadline, select, sleep } from "../../src/index.js";
import { isShutdownTimeoutError, shutdown } from "../../src/signals/index.js";
import { clocks } from "./clocks.js";

/** 2³¹−1 ms, the longest delay `setTimeout` honours: longer ones are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const isTimeoutError = (reason: unknown): boolean => reason instanceof DOMException && reason.name === "TimeoutError";

for (const makeClock of clocks) {
  const clock = makeClock();

  describe(`on ${clock.name}`, () => {
    const disposables: Disposable[] = [];
    afterEach(() => {
      for (const d of disposables.splice(0)) d[Symbol.dispose]();
      clock.uninstall();
    });

    it("sleep() resolves each sleep when its delay is due, in order of deadline then creation, and nothing earlier", async () => {
      clock.install();
      const log: string[] = [];
      for (const [name, ms] of [["c", 30], ["a", 10], ["b", 20], ["a2", 10]] as const) void sleep(ms).then(() => log.push(name));
      await clock.tick(9);
      expect(log).toEqual([]);
      await clock.tick(1);
      expect(log).toEqual(["a", "a2"]);
      await clock.tick(9);
      expect(log).toEqual(["a", "a2"]);
      await clock.tick(1);
      expect(log).toEqual(["a", "a2", "b"]);
      await clock.tick(10);
      expect(log).toEqual(["a", "a2", "b", "c"]);
      expect(clock.pending()).toBe(0);
    });

    it("sleep() past 2³¹−1 ms resolves exactly at its delay, not when the first chained timer fires", async () => {
      clock.install();
      const log: string[] = [];
      const long = sleep(MAX_TIMER_MS + 10);
      void long.then(() => log.push("long"));
      await clock.tick(MAX_TIMER_MS);
      expect(log).toEqual([]);
      expect(long.remainingMs).toBe(10);
      await clock.tick(9);
      expect(log).toEqual([]);
      await clock.tick(1);
      expect(log).toEqual(["long"]);
      expect(clock.pending()).toBe(0);
    });

    it("sleep() reads the fake monotonic clock: isElapsed and remainingMs follow the advanced time without a timer", async () => {
      clock.install();
      const timeout = sleep(100);
      await clock.tick(60);
      expect(timeout.remainingMs).toBe(40);
      expect(timeout.isElapsed).toBe(false);
      await clock.tick(40);
      expect(timeout.isElapsed).toBe(true);
      expect(clock.pending()).toBe(0);
    });

    it("deadline() resolves at its instant on the faked Date, whether given a Date or epoch milliseconds", async () => {
      clock.install();
      const log: string[] = [];
      void deadline(new Date(Date.now() + 20)).then(() => log.push("date"));
      void deadline(Date.now() + 10).then(() => log.push("number"));
      void deadline(Date.now() - 5).then(() => log.push("past"));
      await clock.tick(0);
      expect(log).toEqual(["past"]);
      await clock.tick(9);
      expect(log).toEqual(["past"]);
      await clock.tick(1);
      expect(log).toEqual(["past", "number"]);
      await clock.tick(10);
      expect(log).toEqual(["past", "number", "date"]);
      expect(clock.pending()).toBe(0);
    });

    it("CancellationToken.timeout() cancels each token when due, in order, with a TimeoutError", async () => {
      clock.install();
      const log: string[] = [];
      for (const [name, ms] of [["slow", 25], ["fast", 5], ["kept", 15]] as const) {
        const token = CancellationToken.timeout(ms, name === "kept" ? { keepAlive: true } : undefined);
        disposables.push(token);
        token.onCancel((reason) => log.push(`${name}:${isTimeoutError(reason)}`));
      }
      await clock.tick(4);
      expect(log).toEqual([]);
      await clock.tick(1);
      expect(log).toEqual(["fast:true"]);
      await clock.tick(10);
      expect(log).toEqual(["fast:true", "kept:true"]);
      await clock.tick(9);
      expect(log).toEqual(["fast:true", "kept:true"]);
      await clock.tick(1);
      expect(log).toEqual(["fast:true", "kept:true", "slow:true"]);
      expect(clock.pending()).toBe(0);
    });

    it("CancellationToken.timeout() past 2³¹−1 ms cancels exactly at its delay", async () => {
      clock.install();
      const token = CancellationToken.timeout(MAX_TIMER_MS * 2 + 3);
      disposables.push(token);
      await clock.tick(MAX_TIMER_MS * 2 + 2);
      expect(token.isCancelled).toBe(false);
      await clock.tick(1);
      expect(isTimeoutError(token.reason)).toBe(true);
      expect(clock.pending()).toBe(0);
    });

    it("withTimeout() cancels the child when due, never the parent, and a cancelled or disposed child leaves no timer", async () => {
      clock.install();
      const parent = new CancellationToken();
      const child = parent.withTimeout(50);
      const cancelledEarly = parent.withTimeout(50);
      const disposedEarly = parent.withTimeout(50);
      expect(clock.pending()).toBe(3);
      cancelledEarly.cancel("early");
      disposedEarly[Symbol.dispose]();
      expect(clock.pending()).toBe(1);
      await clock.tick(49);
      expect(child.isCancelled).toBe(false);
      await clock.tick(1);
      expect(isTimeoutError(child.reason)).toBe(true);
      expect(parent.isCancelled).toBe(false);
      expect(cancelledEarly.reason).toBe("early");
      expect(clock.pending()).toBe(0);
    });

    it("shutdown({ timeoutMs }) cancels with a ShutdownTimeoutError when due and removes its signal listeners", async () => {
      const before = { SIGINT: process.listenerCount("SIGINT"), SIGTERM: process.listenerCount("SIGTERM") };
      clock.install();
      const token = shutdown({ timeoutMs: 1_000 });
      disposables.push(token);
      expect(process.listenerCount("SIGTERM")).toBe(before.SIGTERM + 1);
      await clock.tick(999);
      expect(token.isCancelled).toBe(false);
      await clock.tick(1);
      expect(isShutdownTimeoutError(token.reason)).toBe(true);
      expect((token.reason as { timeoutMs: number }).timeoutMs).toBe(1_000);
      expect(process.listenerCount("SIGINT")).toBe(before.SIGINT);
      expect(process.listenerCount("SIGTERM")).toBe(before.SIGTERM);
      expect(clock.pending()).toBe(0);
    });

    it("shutdown({ timeoutMs }) past 2³¹−1 ms cancels exactly at its delay, and disposing it clears the timer", async () => {
      clock.install();
      const long = shutdown({ timeoutMs: MAX_TIMER_MS + 1, signals: [] });
      const dropped = shutdown({ timeoutMs: 10, signals: [] });
      disposables.push(long, dropped);
      dropped[Symbol.dispose]();
      expect(clock.pending()).toBe(1);
      await clock.tick(MAX_TIMER_MS);
      expect(long.isCancelled).toBe(false);
      await clock.tick(1);
      expect(isShutdownTimeoutError(long.reason)).toBe(true);
      expect(dropped.isCancelled).toBe(false);
      expect(clock.pending()).toBe(0);
    });

    it("select() over timers settles with the first one due, and the losing sleeps' timers are cleared", async () => {
      clock.install();
      const token = CancellationToken.timeout(20);
      const stop = shutdown({ timeoutMs: 15, signals: [] });
      disposables.push(token, stop);
      const slow = sleep(30);
      const settled: string[] = [];
      const winner = select({ slow, token, at: deadline(Date.now() + 25), stop }).then((r) => {
        settled.push(r.key);
        return r;
      });
      expect(clock.pending()).toBe(4); // two sleeps armed by the select, the token's timer, the shutdown timer
      await clock.tick(14);
      expect(settled).toEqual([]);
      await clock.tick(1);
      expect((await winner).key).toBe("stop");
      // The sleeps lost: their timers are gone. The timeout token's own timer stays until it fires or is disposed.
      expect(clock.pending()).toBe(1);
      await clock.tick(5);
      expect(token.isCancelled).toBe(true);
      expect(slow.isElapsed).toBe(false);
      expect(clock.pending()).toBe(0);
    });

    it("select() with a sleep reused across a loop times the whole loop out at the sleep's deadline", async () => {
      clock.install();
      const token = new CancellationToken();
      const timeout = sleep(100);
      const keys: string[] = [];
      const loop = (async () => {
        for (;;) {
          const tick = sleep(30);
          const r = await select({ token, timeout, tick }, { biased: true });
          keys.push(r.key);
          if (r.key !== "tick") return;
        }
      })();
      await clock.tick(99);
      expect(keys).toEqual(["tick", "tick", "tick"]);
      await clock.tick(1);
      await loop;
      expect(keys).toEqual(["tick", "tick", "tick", "timeout"]);
      expect(clock.pending()).toBe(0);
    });
  });
}
