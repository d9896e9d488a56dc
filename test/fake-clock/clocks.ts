/*
 * The two fake clocks users drive cancelkit with, behind one small interface
 * so every fake-clock test runs under both: vitest's (`vi.useFakeTimers`) and
 * `@sinonjs/fake-timers` (what Jest's modern timers and sinon use).
 *
 * Both fake `performance` as well as the timers and `Date`: cancelkit
 * measures deadlines and idleness on `performance.now()`, the monotonic
 * clock, and reads it (like `setTimeout`) at call time, never at import.
 */
import * as FakeTimers from "@sinonjs/fake-timers";
import { vi } from "vitest";

/** What a fake-clock test needs: install, advance (running the promise jobs in between), count, uninstall. */
export interface FakeClock {
  readonly name: string;
  install(): void;
  /** Advances the clock by `ms`, firing due timers in order and flushing promise jobs between them. */
  tick(ms: number): Promise<void>;
  /** Timers pending on the fake clock (timeouts, intervals, immediates). */
  pending(): number;
  uninstall(): void;
}

/** Faked by both: every timer, `Date` and `performance`; never microtasks or `nextTick`. */
const TO_FAKE = ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "setImmediate", "clearImmediate", "Date", "performance"] as const;

export function vitestClock(): FakeClock {
  return {
    name: "vitest fake timers",
    install: () => void vi.useFakeTimers({ toFake: [...TO_FAKE] }),
    tick: async (ms) => void (await vi.advanceTimersByTimeAsync(ms)),
    pending: () => vi.getTimerCount(),
    uninstall: () => void vi.useRealTimers(),
  };
}

export function sinonClock(): FakeClock {
  let clock: FakeTimers.Clock | null = null;
  const installed = (): FakeTimers.Clock => {
    if (clock === null) throw new Error("the sinon clock is not installed");
    return clock;
  };
  return {
    name: "@sinonjs/fake-timers",
    install: () => {
      clock = FakeTimers.install({ toFake: [...TO_FAKE] });
    },
    tick: async (ms) => void (await installed().tickAsync(ms)),
    pending: () => installed().countTimers(),
    uninstall: () => {
      clock?.uninstall();
      clock = null;
    },
  };
}

export const clocks: readonly (() => FakeClock)[] = [vitestClock, sinonClock];
