import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ChannelClosedError, oneshot, watch, type OneshotReceiver, type OneshotSender, type WatchReceiver, type WatchSender } from "../../src/channels/index.js";
import { abortListeners, countingToken, flush, track, type Tracked } from "./helpers.js";

// Our loom: fc.commands model tests against tiny reference models, and
// fc.scheduler() properties for the races.

// ---------------------------------------------------------------------------
// watch: model

interface WatchModel {
  value: number;
  senders: boolean[]; // open?
  /** `accepts`: the pending wait is a `waitFor()` with this predicate (null: a `changed()`). */
  /** `recheck`: a pending waitFor() must look at the value again (a markChanged() since its last check). */
  receivers: { open: boolean; unseen: boolean; pending: boolean; accepts?: ((n: number) => boolean) | null; recheck?: boolean }[];
  closed: boolean; // every sender closed
}

interface WatchReal {
  txs: WatchSender<{ n: number }>[];
  rxs: WatchReceiver<{ n: number }>[];
  waits: (Tracked<{ n: number }> | null)[];
  aborts: (AbortController | null)[];
  /** What each pending wait must have settled with, once the model says so. */
  expected: ({ state: "fulfilled"; n: number } | { state: "rejected"; reason: unknown } | null)[];
  txClosed: Tracked<void>[];
}

type WatchCommand = fc.AsyncCommand<WatchModel, WatchReal, false>;

const openReceivers = (m: WatchModel): number => m.receivers.filter((r) => r.open).length;

/** A notifying send or the last sender closing: settle pending waits in the model. */
function modelNotify(m: WatchModel, r: WatchReal): void {
  m.receivers.forEach((rx, i) => {
    if (!rx.open || !rx.pending) return;
    const accepts = rx.accepts ?? null;
    if (accepts !== null) {
      // waitFor(): the newest value is checked (checkWatch flushes after every
      // command, so each notifying send is checked); on close it rejects and
      // the checked value counts as seen.
      // On close only a value changed since the last check is checked again
      // (tokio's wait_for: `if !closed || has_changed`): a value stored
      // silently after a check is not, unless markChanged() made it changed.
      const check = m.closed ? rx.recheck === true : rx.unseen;
      rx.recheck = false;
      if (check && accepts(m.value)) {
        rx.unseen = false;
        rx.pending = false;
        r.expected[i] = { state: "fulfilled", n: m.value };
      } else if (m.closed) {
        rx.unseen = false;
        rx.pending = false;
        r.expected[i] = { state: "rejected", reason: ChannelClosedError };
      }
      return;
    }
    if (rx.unseen) {
      rx.unseen = false;
      rx.pending = false;
      r.expected[i] = { state: "fulfilled", n: m.value };
    } else if (m.closed) {
      rx.pending = false;
      r.expected[i] = { state: "rejected", reason: ChannelClosedError };
    }
  });
}

function bump(m: WatchModel, r: WatchReal): void {
  for (const rx of m.receivers) if (rx.open) rx.unseen = true;
  modelNotify(m, r);
}

async function checkWatch(m: WatchModel, r: WatchReal): Promise<void> {
  await flush();
  m.receivers.forEach((_, i) => {
    const wait = r.waits[i];
    if (wait === null || wait === undefined) return;
    const expected = r.expected[i];
    if (expected === null || expected === undefined) {
      expect(wait.state).toBe("pending");
      return;
    }
    expect(wait.state).toBe(expected.state);
    if (expected.state === "fulfilled") expect(wait.value?.n).toBe(expected.n);
    else if (expected.reason === ChannelClosedError) expect(wait.error).toBeInstanceOf(ChannelClosedError);
    else expect(wait.error).toBe(expected.reason);
    r.waits[i] = null;
    r.expected[i] = null;
    r.aborts[i] = null;
  });
  expect(r.txs[0]?.receiverCount).toBe(openReceivers(m));
  expect(r.txs[0]?.isClosed).toBe(openReceivers(m) === 0);
  expect(r.txs[0]?.borrow().n).toBe(m.value);
  m.receivers.forEach((rx, i) => {
    if (!rx.open) return;
    const real = r.rxs[i]!;
    if (m.closed) expect(() => real.hasChanged()).toThrow(ChannelClosedError);
    else expect(real.hasChanged()).toBe(rx.unseen);
  });
  if (openReceivers(m) === 0) for (const t of r.txClosed) expect(t.state).toBe("fulfilled");
}

const txIndex = fc.nat(3);
const rxIndex = fc.nat(5);
const value = fc.integer({ min: 0, max: 1000 });

function watchCommands(): fc.Arbitrary<WatchCommand>[] {
  const cmd = (
    name: string,
    check: (m: Readonly<WatchModel>) => boolean,
    run: (m: WatchModel, r: WatchReal) => void,
  ): WatchCommand => ({
    check,
    async run(m, r) {
      run(m, r);
      await checkWatch(m, r);
    },
    toString: () => name,
  });
  const txOpen = (i: number) => (m: Readonly<WatchModel>) => m.senders[i % m.senders.length] === true;
  const rxOpen = (i: number) => (m: Readonly<WatchModel>) => m.receivers[i % m.receivers.length]?.open === true;
  const tx = (m: WatchModel, r: WatchReal, i: number) => r.txs[i % m.senders.length]!;
  const rxi = (m: WatchModel, i: number) => i % m.receivers.length;
  return [
    fc.tuple(txIndex, value).map(([i, v]) =>
      cmd(`send(tx${i}, ${v})`, txOpen(i), (m, r) => {
        const ok = tx(m, r, i).send({ n: v });
        expect(ok).toBe(openReceivers(m) > 0);
        if (ok) {
          m.value = v;
          bump(m, r);
        }
      }),
    ),
    fc.tuple(txIndex, value).map(([i, v]) =>
      cmd(`sendReplace(tx${i}, ${v})`, txOpen(i), (m, r) => {
        expect(tx(m, r, i).sendReplace({ n: v }).n).toBe(m.value);
        m.value = v;
        bump(m, r);
      }),
    ),
    fc.tuple(txIndex, value).map(([i, v]) =>
      cmd(`sendModify(tx${i}, ${v})`, txOpen(i), (m, r) => {
        tx(m, r, i).sendModify((box) => void (box.n = v));
        m.value = v;
        bump(m, r);
      }),
    ),
    fc.tuple(txIndex, value, fc.boolean()).map(([i, v, modified]) =>
      cmd(`sendIfModified(tx${i}, ${v}, ${modified})`, txOpen(i), (m, r) => {
        expect(tx(m, r, i).sendIfModified((box) => ((box.n = v), modified))).toBe(modified);
        m.value = v;
        if (modified) bump(m, r);
      }),
    ),
    txIndex.map((i) =>
      cmd(`subscribe(tx${i})`, (m) => txOpen(i)(m) && m.receivers.length < 8, (m, r) => {
        r.rxs.push(tx(m, r, i).subscribe());
        m.receivers.push({ open: true, unseen: false, pending: false });
        r.waits.push(null);
        r.expected.push(null);
        r.aborts.push(null);
      }),
    ),
    txIndex.map((i) =>
      cmd(`cloneTx(tx${i})`, (m) => txOpen(i)(m) && m.senders.length < 4, (m, r) => {
        r.txs.push(tx(m, r, i).clone());
        m.senders.push(true);
      }),
    ),
    txIndex.map((i) =>
      cmd(`closeTx(tx${i})`, () => true, (m, r) => {
        const k = i % m.senders.length;
        tx(m, r, i).close();
        if (!m.senders[k]) return;
        m.senders[k] = false;
        if (!m.senders.includes(true)) {
          m.closed = true;
          modelNotify(m, r);
        }
      }),
    ),
    rxIndex.map((i) =>
      cmd(`cloneRx(rx${i})`, (m) => rxOpen(i)(m) && m.receivers.length < 8, (m, r) => {
        const k = rxi(m, i);
        r.rxs.push(r.rxs[k]!.clone());
        m.receivers.push({ open: true, unseen: m.receivers[k]!.unseen, pending: false });
        r.waits.push(null);
        r.expected.push(null);
        r.aborts.push(null);
      }),
    ),
    rxIndex.map((i) =>
      cmd(`closeRx(rx${i})`, () => true, (m, r) => {
        const k = rxi(m, i);
        r.rxs[k]!.close();
        const rx = m.receivers[k]!;
        if (!rx.open) return;
        rx.open = false;
        if (rx.pending) {
          rx.pending = false;
          r.expected[k] = { state: "rejected", reason: ChannelClosedError };
        }
      }),
    ),
    rxIndex.map((i) =>
      cmd(`borrowAndUpdate(rx${i})`, rxOpen(i), (m, r) => {
        const k = rxi(m, i);
        expect(r.rxs[k]!.borrowAndUpdate().n).toBe(m.value);
        m.receivers[k]!.unseen = false;
      }),
    ),
    rxIndex.map((i) =>
      cmd(`borrow(rx${i})`, rxOpen(i), (m, r) => {
        expect(r.rxs[rxi(m, i)]!.borrow().n).toBe(m.value);
      }),
    ),
    rxIndex.map((i) =>
      cmd(`markChanged(rx${i})`, rxOpen(i), (m, r) => {
        const k = rxi(m, i);
        r.rxs[k]!.markChanged();
        const rx = m.receivers[k]!;
        rx.unseen = true;
        rx.recheck = true;
        if (rx.pending && !rx.accepts) {
          rx.pending = false;
          rx.unseen = false;
          r.expected[k] = { state: "fulfilled", n: m.value };
        }
      }),
    ),
    rxIndex.map((i) =>
      cmd(`markUnchanged(rx${i})`, rxOpen(i), (m, r) => {
        const k = rxi(m, i);
        r.rxs[k]!.markUnchanged();
        m.receivers[k]!.unseen = false;
      }),
    ),
    fc.tuple(rxIndex, fc.boolean()).map(([i, withSignal]) =>
      cmd(
        `changed(rx${i}${withSignal ? ", signal" : ""})`,
        (m) => rxOpen(i)(m) && !m.receivers[i % m.receivers.length]!.pending,
        (m, r) => {
          const k = rxi(m, i);
          const ac = withSignal ? new AbortController() : null;
          r.aborts[k] = ac;
          r.waits[k] = track(r.rxs[k]!.changed(ac === null ? undefined : { signal: ac.signal }));
          const rx = m.receivers[k]!;
          rx.accepts = null;
          if (rx.unseen) {
            rx.unseen = false;
            r.expected[k] = { state: "fulfilled", n: m.value };
          } else if (m.closed) r.expected[k] = { state: "rejected", reason: ChannelClosedError };
          else rx.pending = true;
        },
      ),
    ),
    fc.tuple(rxIndex, fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([i, divisor, withSignal]) =>
      cmd(
        `waitFor(rx${i}, n % ${divisor} === 0${withSignal ? ", signal" : ""})`,
        (m) => rxOpen(i)(m) && !m.receivers[i % m.receivers.length]!.pending,
        (m, r) => {
          const k = rxi(m, i);
          const accepts = (n: number): boolean => n % divisor === 0;
          const ac = withSignal ? new AbortController() : null;
          r.aborts[k] = ac;
          r.waits[k] = track(r.rxs[k]!.waitFor((box) => accepts(box.n), ac === null ? undefined : { signal: ac.signal }));
          const rx = m.receivers[k]!;
          rx.accepts = null;
          if (accepts(m.value)) {
            // the current value is checked first, even if seen
            rx.unseen = false;
            r.expected[k] = { state: "fulfilled", n: m.value };
          } else if (m.closed) {
            rx.unseen = false;
            r.expected[k] = { state: "rejected", reason: ChannelClosedError };
          } else {
            rx.pending = true;
            rx.accepts = accepts;
            rx.recheck = false;
          }
        },
      ),
    ),
    rxIndex.map((i) =>
      cmd(
        `abort(rx${i})`,
        (m) => m.receivers[i % m.receivers.length]?.pending === true,
        (m, r) => {
          const k = rxi(m, i);
          const ac = r.aborts[k];
          const reason = new Error("abort");
          ac?.abort(reason);
          if (ac) {
            m.receivers[k]!.pending = false;
            r.expected[k] = { state: "rejected", reason };
          }
        },
      ),
    ),
    txIndex.map((i) =>
      cmd(`tx${i}.closed()`, () => true, (m, r) => {
        r.txClosed.push(track(tx(m, r, i).closed()));
      }),
    ),
  ];
}

describe("watch model", () => {
  it("matches the reference model for any sequence of operations", async () => {
    await fc.assert(
      fc.asyncProperty(value, fc.commands(watchCommands(), { maxCommands: 40 }), async (initial, commands) => {
        const [tx, rx] = watch({ n: initial });
        const model: WatchModel = { value: initial, senders: [true], receivers: [{ open: true, unseen: false, pending: false }], closed: false };
        const real: WatchReal = { txs: [tx], rxs: [rx], waits: [null], aborts: [null], expected: [null], txClosed: [] };
        await fc.asyncModelRun(() => ({ model, real }), commands);
        // Leave nothing pending: close everything, every wait settles.
        for (const r of real.rxs) r.close();
        for (const t of real.txs) t.close();
        await flush();
        for (const w of real.waits) if (w) expect(w.state).not.toBe("pending");
        for (const t of real.txClosed) expect(t.state).toBe("fulfilled");
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------
// oneshot: model

interface OneshotModel {
  state: "empty" | "value" | "taken" | "none";
  value: number;
  txUsed: boolean;
  rxClosed: boolean;
  terminated: boolean;
  pending: number[]; // indices into real.waits, in order
  closedWaits: number;
}

interface OneshotReal {
  tx: OneshotSender<number>;
  rx: OneshotReceiver<number>;
  waits: { tracked: Tracked<number>; abort: AbortController | null; expected: { state: "fulfilled"; value: number } | { state: "rejected"; reason: unknown } | null }[];
  closedWaits: Tracked<void>[];
}

type OneshotCommand = fc.AsyncCommand<OneshotModel, OneshotReal, false>;

async function checkOneshot(m: OneshotModel, r: OneshotReal): Promise<void> {
  await flush();
  for (const wait of r.waits) {
    if (wait.expected === null) {
      expect(wait.tracked.state).toBe("pending");
      continue;
    }
    expect(wait.tracked.state).toBe(wait.expected.state);
    if (wait.expected.state === "fulfilled") expect(wait.tracked.value).toBe(wait.expected.value);
    else if (wait.expected.reason === ChannelClosedError) expect(wait.tracked.error).toBeInstanceOf(ChannelClosedError);
    else expect(wait.tracked.error).toBe(wait.expected.reason);
  }
  expect(r.tx.isClosed).toBe(m.rxClosed);
  expect(r.rx.isEmpty).toBe(m.state !== "value");
  expect(r.rx.isTerminated).toBe(m.terminated);
  for (const c of r.closedWaits) expect(c.state).toBe(m.rxClosed ? "fulfilled" : "pending");
}

function rejectPending(m: OneshotModel, r: OneshotReal): void {
  if (m.pending.length > 0) m.terminated = true;
  for (const i of m.pending) r.waits[i]!.expected = { state: "rejected", reason: ChannelClosedError };
  m.pending = [];
}

function oneshotCommands(): fc.Arbitrary<OneshotCommand>[] {
  const cmd = (name: string, run: (m: OneshotModel, r: OneshotReal) => void, check: (m: Readonly<OneshotModel>) => boolean = () => true): OneshotCommand => ({
    check,
    async run(m, r) {
      run(m, r);
      await checkOneshot(m, r);
    },
    toString: () => name,
  });
  return [
    value.map((v) =>
      cmd(`send(${v})`, (m, r) => {
        if (m.txUsed) {
          expect(() => r.tx.send(v)).toThrow(expect.objectContaining({ value: v }));
          return;
        }
        m.txUsed = true;
        const ok = r.tx.send(v);
        expect(ok).toBe(!m.rxClosed);
        if (!ok) return;
        const [first, ...rest] = m.pending;
        if (first !== undefined) {
          r.waits[first]!.expected = { state: "fulfilled", value: v };
          m.pending = rest;
          m.state = "taken";
          rejectPending(m, r);
          m.terminated = true;
        } else {
          m.state = "value";
          m.value = v;
        }
      }),
    ),
    fc.constant(
      cmd("tx.close()", (m, r) => {
        r.tx.close();
        if (m.txUsed) return;
        m.txUsed = true;
        if (m.state === "empty") {
          m.state = "none";
          rejectPending(m, r);
        }
      }),
    ),
    fc.constant(
      cmd("rx.close()", (m, r) => {
        r.rx.close();
        if (m.rxClosed) return;
        m.rxClosed = true;
        if (m.state === "empty") {
          m.state = "none";
          rejectPending(m, r);
        }
      }),
    ),
    fc.constant(
      cmd("tryRecv()", (m, r) => {
        const result = r.rx.tryRecv();
        if (m.state === "value") {
          expect(result).toEqual({ state: "value", value: m.value });
          m.state = "taken";
          m.terminated = true;
        } else if (m.state === "empty") expect(result).toEqual({ state: "empty" });
        else {
          expect(result).toEqual({ state: "closed" });
          m.terminated = true;
        }
      }),
    ),
    fc.boolean().map((withSignal) =>
      cmd(
        withSignal ? "recv({ signal })" : "recv()",
        (m, r) => {
          const abort = withSignal ? new AbortController() : null;
          const tracked = track(abort === null ? r.rx.recv() : r.rx.recv({ signal: abort.signal }));
          const wait = { tracked, abort, expected: null as OneshotReal["waits"][number]["expected"] };
          const index = r.waits.push(wait) - 1;
          if (m.state === "value") {
            wait.expected = { state: "fulfilled", value: m.value };
            m.state = "taken";
            m.terminated = true;
          } else if (m.state === "empty") m.pending.push(index);
          else {
            wait.expected = { state: "rejected", reason: ChannelClosedError };
            m.terminated = true;
          }
        },
        (m) => m.pending.length < 3,
      ),
    ),
    fc.nat(2).map((k) =>
      cmd(
        `abort(pending[${k}])`,
        (m, r) => {
          const index = m.pending[k % m.pending.length]!;
          const abort = r.waits[index]!.abort;
          if (abort === null) return; // a recv() without a signal cannot be aborted
          const reason = new Error("abort");
          abort.abort(reason);
          r.waits[index]!.expected = { state: "rejected", reason };
          m.pending = m.pending.filter((i) => i !== index);
        },
        (m) => m.pending.length > 0,
      ),
    ),
    fc.constant(
      cmd("tx.closed()", (m, r) => {
        r.closedWaits.push(track(r.tx.closed()));
        m.closedWaits++;
      }),
    ),
  ];
}

describe("oneshot model", () => {
  it("matches the reference model for any sequence of operations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(oneshotCommands(), { maxCommands: 20 }), async (commands) => {
        const [tx, rx] = oneshot<number>();
        const model: OneshotModel = { state: "empty", value: 0, txUsed: false, rxClosed: false, terminated: false, pending: [], closedWaits: 0 };
        const real: OneshotReal = { tx, rx, waits: [], closedWaits: [] };
        await fc.asyncModelRun(() => ({ model, real }), commands);
        tx.close();
        rx.close();
        await flush();
        for (const w of real.waits) {
          expect(w.tracked.state).not.toBe("pending");
          if (w.abort !== null) expect(abortListeners(w.abort.signal)).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------
// Races: send racing close racing abort

describe("oneshot races", () => {
  it("a value is delivered at most once, never to an aborted wait, and never lost when the wait was not aborted", async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), fc.scheduler(), async (useToken, closeRx, s) => {
        const [tx, rx] = oneshot<number>();
        const ac = new AbortController();
        const { token, live } = countingToken();
        const reason = new Error("abort");
        const log: string[] = [];
        const got = track(rx.recv({ signal: useToken ? token : ac.signal }));
        let sent = "threw" as boolean | "threw";
        s.schedule(Promise.resolve("send")).then(() => {
          log.push("send");
          try {
            sent = tx.send(42);
          } catch {
            sent = "threw";
          }
        });
        s.schedule(Promise.resolve("tx.close")).then(() => {
          log.push("tx.close");
          tx.close();
        });
        s.schedule(Promise.resolve("abort")).then(() => {
          log.push("abort");
          if (useToken) token.cancel(reason);
          else ac.abort(reason);
        });
        if (closeRx) {
          s.schedule(Promise.resolve("rx.close")).then(() => {
            log.push("rx.close");
            rx.close();
          });
        }
        await s.waitIdle();
        await flush();
        expect(got.state).not.toBe("pending");
        const rest = rx.tryRecv();
        const delivered = (got.state === "fulfilled" ? 1 : 0) + (rest.state === "value" ? 1 : 0);
        // at most once, and never lost when stored
        expect(delivered).toBe(sent === true ? 1 : 0);
        if (got.state === "fulfilled") {
          expect(got.value).toBe(42);
          // never to an aborted wait: the send came before the abort
          expect(log.indexOf("send")).toBeLessThan(log.indexOf("abort"));
        }
        if (got.state === "rejected" && got.error === reason) {
          // the wait was aborted before the value came: the value (if sent) is still there
          const sendAt = log.indexOf("send");
          if (sent === true) expect(rest).toEqual({ state: "value", value: 42 });
          if (sent === true) expect(sendAt).toBeGreaterThan(log.indexOf("abort"));
        }
        if (got.state === "rejected" && got.error !== reason) expect(got.error).toBeInstanceOf(ChannelClosedError);
        expect(abortListeners(ac.signal)).toBe(0);
        expect(live()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("watch races", () => {
  it("a consumer loop sees increasing values, never one after its abort, and the last value unless aborted", async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.integer({ min: 1, max: 4 }), fc.scheduler(), async (useToken, sends, s) => {
        const [tx, rx] = watch(0);
        const ac = new AbortController();
        const { token, live } = countingToken();
        const signal = useToken ? token : ac.signal;
        const reason = new Error("abort");
        const log: string[] = [];
        const seen: number[] = [];
        let ended: unknown = undefined;
        const consumer = (async () => {
          for (;;) {
            try {
              const v = await rx.changed({ signal });
              log.push(`got ${v}`);
              seen.push(v);
            } catch (error) {
              ended = error;
              return;
            }
          }
        })();
        // Each send carries the next counter value, whatever order they run in,
        // so values are versions.
        let lastSent = 0;
        let counter = 0;
        for (let i = 1; i <= sends; i++) {
          s.schedule(Promise.resolve(`send #${i}`)).then(() => {
            const v = ++counter;
            try {
              if (tx.send(v)) lastSent = v;
              log.push(`send ${v}`);
            } catch {
              log.push(`send ${v} threw`);
            }
          });
        }
        s.schedule(Promise.resolve("close")).then(() => {
          log.push("close");
          tx.close();
        });
        s.schedule(Promise.resolve("abort")).then(() => {
          log.push("abort");
          if (useToken) token.cancel(reason);
          else ac.abort(reason);
        });
        await s.waitIdle();
        await s.waitFor(consumer);
        // values strictly increase: each version is delivered at most once
        for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
        // nothing delivered after the abort was seen by the loop
        const abortAt = log.indexOf("abort");
        log.forEach((entry, i) => {
          if (entry.startsWith("got") && i > abortAt) {
            // a delivery logged after the abort must have been made (marked seen) before it
            const v = Number(entry.slice(4));
            expect(log.indexOf(`send ${v}`)).toBeLessThan(abortAt);
          }
        });
        if (ended === reason) {
          // aborted: whatever was not delivered is still unseen
          const last = seen.at(-1) ?? 0;
          if (lastSent > last) await expect(rx.changed()).resolves.toBe(lastSent);
        } else {
          // not aborted: ended by close, after the last value
          expect(ended).toBeInstanceOf(ChannelClosedError);
          expect(seen.at(-1) ?? 0).toBe(lastSent);
        }
        expect(abortListeners(ac.signal)).toBe(0);
        expect(live()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("watch waitFor races", () => {
  it("waitFor(): a matching value sent before the abort is delivered; one sent after stays unseen", async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), fc.scheduler(), async (useToken, sameTurn, s) => {
        const [tx, rx] = watch(0);
        const ac = new AbortController();
        const { token, live } = countingToken();
        const reason = new Error("abort");
        const log: string[] = [];
        const got = track(rx.waitFor((v) => v === 1, { signal: useToken ? token : ac.signal }));
        const abort = (): void => {
          log.push("abort");
          if (useToken) token.cancel(reason);
          else ac.abort(reason);
        };
        const send = (): void => {
          log.push("send");
          tx.send(1);
        };
        if (sameTurn) {
          // both in one synchronous turn, in an order the scheduler picks
          s.schedule(Promise.resolve("send first")).then(() => (send(), abort()));
          s.schedule(Promise.resolve("abort first")).then(() => (log.length === 0 ? (abort(), send()) : undefined));
        } else {
          s.schedule(Promise.resolve("send")).then(send);
          s.schedule(Promise.resolve("abort")).then(abort);
        }
        await s.waitIdle();
        await flush();
        const sentFirst = log.indexOf("send") < log.indexOf("abort");
        if (sentFirst) {
          expect(got).toMatchObject({ state: "fulfilled", value: 1 });
          expect(rx.hasChanged()).toBe(false);
        } else {
          expect(got).toMatchObject({ state: "rejected", error: reason });
          expect(rx.hasChanged()).toBe(true);
        }
        expect(abortListeners(ac.signal)).toBe(0);
        expect(live()).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
