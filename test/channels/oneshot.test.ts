import { describe, expect, it } from "vitest";
import { selectable } from "../../src/index.js";
import { ChannelClosedError, oneshot, OneshotReceiver, OneshotSender } from "../../src/channels/index.js";
import { CancellationToken } from "../../src/cancel/index.js";
import { select } from "../../src/signals/index.js";
import { abortListeners, collectGarbage, countingToken, flush, resolvesToItself, track } from "./helpers.js";

// Port of tokio/tests/sync_oneshot.rs, one `it` per upstream test. Rust's
// "drop the handle" is `close()` here; "the task is woken" + "poll is Ready"
// is "the promise settled after a flush".
describe("tokio sync_oneshot.rs", () => {
  it("send_recv", async () => {
    const [tx, rx] = oneshot<number>();
    const got = track(rx.recv());
    await flush();
    expect(got.state).toBe("pending");
    expect(tx.send(1)).toBe(true);
    await flush();
    expect(got).toMatchObject({ state: "fulfilled", value: 1 });
  });

  it("async_send_recv", async () => {
    const [tx, rx] = oneshot<number>();
    expect(tx.send(1)).toBe(true);
    expect(await rx.recv()).toBe(1);
  });

  it("close_tx", async () => {
    const [tx, rx] = oneshot<number>();
    const got = track(rx.recv());
    await flush();
    expect(got.state).toBe("pending");
    tx.close();
    await flush();
    expect(got.state).toBe("rejected");
    expect(got.error).toBeInstanceOf(ChannelClosedError);
  });

  it("close_rx", async () => {
    // First, without checking closed(): the receiver is gone, send fails.
    {
      const [tx, rx] = oneshot<number>();
      rx.close();
      expect(tx.send(1)).toBe(false);
    }
    // Second, via closed().
    const [tx, rx] = oneshot<number>();
    const closed = track(tx.closed());
    await flush();
    expect(closed.state).toBe("pending");
    rx.close();
    await flush();
    expect(closed.state).toBe("fulfilled");
    expect(tx.isClosed).toBe(true);
    expect(track(tx.closed()).state).toBe("pending"); // a fresh promise…
    await expect(tx.closed()).resolves.toBeUndefined(); // …that is already resolved
    expect(tx.send(1)).toBe(false);
  });

  it("async_rx_closed", async () => {
    const [tx, rx] = oneshot<void>();
    queueMicrotask(() => rx.close()); // tokio spawns a task that drops rx
    await tx.closed();
    expect(tx.isClosed).toBe(true);
  });

  it("explicit_close_poll", async () => {
    // First, with a value sent: it survives close().
    {
      const [tx, rx] = oneshot<number>();
      expect(tx.send(1)).toBe(true);
      rx.close();
      expect(await rx.recv()).toBe(1);
    }
    // Second, without the value sent: close() wakes closed(); send fails; recv fails.
    {
      const [tx, rx] = oneshot<number>();
      const closed = track(tx.closed());
      await flush();
      expect(closed.state).toBe("pending");
      rx.close();
      await flush();
      expect(closed.state).toBe("fulfilled");
      expect(tx.isClosed).toBe(true);
      expect(tx.send(1)).toBe(false);
      await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    }
    // Again, without ever sending: recv fails while the sender is still open.
    {
      const [tx, rx] = oneshot<number>();
      const closed = track(tx.closed());
      rx.close();
      await flush();
      expect(closed.state).toBe("fulfilled");
      expect(tx.isClosed).toBe(true);
      await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    }
  });

  it("explicit_close_try_recv", async () => {
    {
      const [tx, rx] = oneshot<number>();
      expect(tx.send(1)).toBe(true);
      rx.close();
      expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
    }
    const [tx, rx] = oneshot<number>();
    const closed = track(tx.closed());
    rx.close();
    await flush();
    expect(closed.state).toBe("fulfilled");
    expect(tx.isClosed).toBe(true);
    expect(rx.tryRecv()).toEqual({ state: "closed" });
  });

  it("close_try_recv_poll", async () => {
    // tokio panics when a terminated receiver is polled again; here a recv()
    // after termination rejects with ChannelClosedError instead.
    const [tx, rx] = oneshot<number>();
    rx.close();
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(tx.send(1)).toBe(false);
  });

  it("close_after_recv", () => {
    const [tx, rx] = oneshot<number>();
    tx.send(17);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 17 });
    expect(() => rx.close()).not.toThrow();
  });

  it("try_recv_after_completion", () => {
    const [tx, rx] = oneshot<number>();
    tx.send(17);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 17 });
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    rx.close();
  });

  it("try_recv_after_completion_await", async () => {
    const [tx, rx] = oneshot<number>();
    tx.send(17);
    expect(await rx.recv()).toBe(17);
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    rx.close();
  });

  it("drops_tasks", async () => {
    // Rust counts waker references; the JS equivalent is that closing both
    // halves settles every pending wait and leaves nothing on their signals.
    const [tx, rx] = oneshot<number>();
    const ac = new AbortController();
    const closed = track(tx.closed({ signal: ac.signal }));
    const got = track(rx.recv({ signal: ac.signal }));
    expect(abortListeners(ac.signal)).toBe(1); // one shared listener for both waits
    tx.close();
    rx.close();
    await flush();
    expect(closed.state).toBe("fulfilled");
    expect(got.state).toBe("rejected");
    expect(abortListeners(ac.signal)).toBe(0);
  });

  it("receiver_changes_task", async () => {
    // Rust replaces the waker of the previous poll. JS promises cannot be
    // replaced: both waits stay pending, the first gets the value, and the
    // other rejects (a oneshot value is delivered once).
    const [tx, rx] = oneshot<number>();
    const first = track(rx.recv());
    const second = track(rx.recv());
    await flush();
    expect(first.state).toBe("pending");
    expect(second.state).toBe("pending");
    expect(tx.send(1)).toBe(true);
    await flush();
    expect(first).toMatchObject({ state: "fulfilled", value: 1 });
    expect(second.state).toBe("rejected");
    expect(second.error).toBeInstanceOf(ChannelClosedError);
  });

  it("sender_changes_task", async () => {
    // Rust: only the latest closed() poller is woken. JS: any number of
    // closed() promises may wait and all resolve.
    const [tx, rx] = oneshot<number>();
    const first = track(tx.closed());
    const second = track(tx.closed());
    await flush();
    expect([first.state, second.state]).toEqual(["pending", "pending"]);
    rx.close();
    await flush();
    expect([first.state, second.state]).toEqual(["fulfilled", "fulfilled"]);
  });

  it("receiver_is_terminated_send", async () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isTerminated).toBe(false);
    tx.send(17);
    expect(rx.isTerminated).toBe(false);
    expect(await rx.recv()).toBe(17);
    expect(rx.isTerminated).toBe(true);
  });

  it("receiver_is_terminated_try_recv", () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isTerminated).toBe(false);
    tx.send(17);
    expect(rx.isTerminated).toBe(false);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 17 });
    expect(rx.isTerminated).toBe(true);
  });

  it("receiver_is_terminated_drop", async () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isTerminated).toBe(false);
    tx.close();
    expect(rx.isTerminated).toBe(false);
    await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(rx.isTerminated).toBe(true);
  });

  it("receiver_is_terminated_rx_close", async () => {
    const [, rx] = oneshot<number>();
    expect(rx.isTerminated).toBe(false);
    rx.close();
    expect(rx.isTerminated).toBe(false);
    await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(rx.isTerminated).toBe(true);
  });

  it("receiver_is_empty_send", async () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isEmpty).toBe(true);
    tx.send(17);
    expect(rx.isEmpty).toBe(false);
    expect(await rx.recv()).toBe(17);
    expect(rx.isEmpty).toBe(true);
  });

  it("receiver_is_empty_try_recv", () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isEmpty).toBe(true);
    tx.send(17);
    expect(rx.isEmpty).toBe(false);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 17 });
    expect(rx.isEmpty).toBe(true);
  });

  it("receiver_is_empty_drop", async () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.isEmpty).toBe(true);
    tx.close();
    expect(rx.isEmpty).toBe(true);
    await expect(rx.recv()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(rx.isEmpty).toBe(true);
  });

  it("receiver_is_empty_rx_close", () => {
    const [, rx] = oneshot<number>();
    expect(rx.isEmpty).toBe(true);
    rx.close();
    expect(rx.isEmpty).toBe(true);
  });
});

describe("oneshot()", () => {
  // -- Sending --

  it("send() throws ChannelClosedError carrying the value on a second send", () => {
    const [tx, rx] = oneshot<number>();
    expect(tx.send(1)).toBe(true);
    let error: unknown;
    try {
      tx.send(2);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ChannelClosedError);
    expect(error).toMatchObject({ code: "CANCELKIT_ERR_CHANNEL_CLOSED", value: 2 });
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
  });

  it("send() throws ChannelClosedError after tx.close(), even a failed send counts as used", () => {
    const [tx] = oneshot<number>();
    tx.close();
    expect(() => tx.send(1)).toThrow(ChannelClosedError);
    const [tx2, rx2] = oneshot<number>();
    rx2.close();
    expect(tx2.send(1)).toBe(false);
    expect(() => tx2.send(2)).toThrow(ChannelClosedError);
  });

  it("send() misuse errors name the call and carry the refused value", () => {
    const [tx] = oneshot<string>();
    tx.send("first");
    expect(() => tx.send("second")).toThrow(
      expect.objectContaining({ message: "Cannot call tx.send(): this oneshot sender already sent a value", value: "second" }),
    );
    const [closed] = oneshot<string>();
    closed.close();
    expect(() => closed.send("late")).toThrow(
      expect.objectContaining({ message: "Cannot call tx.send(): this oneshot sender is closed", value: "late" }),
    );
  });

  it("tx.close() after a send keeps the value receivable", async () => {
    const [tx, rx] = oneshot<string>();
    tx.send("kept");
    tx.close();
    expect(await rx.recv()).toBe("kept");
  });

  it("tryRecv() returns empty without changing anything", () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.tryRecv()).toEqual({ state: "empty" });
    expect(rx.isTerminated).toBe(false);
    tx.send(3);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 3 });
  });

  it("recv() returns a fresh promise per call", () => {
    const [, rx] = oneshot<number>();
    const a = rx.recv();
    const b = rx.recv();
    expect(a).not.toBe(b);
    rx.close();
    return Promise.allSettled([a, b]);
  });

  it("using closes both halves at scope exit", async () => {
    const [outerTx, outerRx] = oneshot<number>();
    let closed: Promise<void>;
    {
      using tx = outerTx;
      using rx = outerRx;
      closed = tx.closed();
      expect(rx.isTerminated).toBe(false);
    }
    await closed;
    expect(outerTx.isClosed).toBe(true);
    expect(() => outerTx.send(1)).toThrow(ChannelClosedError);
  });

  it("a value that is itself a thenable is adopted by recv(), like any promise resolution", async () => {
    const [tx, rx] = oneshot<Promise<number>>();
    tx.send(Promise.resolve(5));
    expect(await rx.recv()).toBe(5);
  });

  // -- Not a thenable --

  it("OneshotReceiver is not a thenable: returning it from an async function does not wait", async () => {
    const [tx, rx] = oneshot<number>();
    expect(await resolvesToItself(rx)).toBe(true);
    expect(rx.isEmpty).toBe(true);
    tx.send(1);
    expect(await resolvesToItself(rx)).toBe(true);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 }); // nothing consumed it
  });

  it("the handles are instances of the exported classes", () => {
    const [tx, rx] = oneshot();
    expect(tx).toBeInstanceOf(OneshotSender);
    expect(rx).toBeInstanceOf(OneshotReceiver);
  });

  // -- Abort positions --

  it("recv() rejects with the reason unchanged when the signal is already aborted, consuming nothing", async () => {
    const [tx, rx] = oneshot<number>();
    tx.send(1);
    const reason = new Error("stop");
    await expect(rx.recv({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(rx.recv({ signal: CancellationToken.alreadyCancelled(reason) })).rejects.toBe(reason);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
  });

  it("recv() rejects with the reason when aborted while waiting, and a later value stays receivable", async () => {
    const [tx, rx] = oneshot<number>();
    const ac = new AbortController();
    const got = track(rx.recv({ signal: ac.signal }));
    await flush();
    expect(got.state).toBe("pending");
    expect(abortListeners(ac.signal)).toBe(1);
    ac.abort("gone");
    await flush();
    expect(got).toMatchObject({ state: "rejected", error: "gone" });
    expect(abortListeners(ac.signal)).toBe(0);
    expect(tx.send(9)).toBe(true);
    expect(await rx.recv()).toBe(9);
  });

  it("recv() is not affected by an abort that comes after the value", async () => {
    const [tx, rx] = oneshot<number>();
    const ac = new AbortController();
    const got = track(rx.recv({ signal: ac.signal }));
    tx.send(1);
    ac.abort("late");
    await flush();
    expect(got).toMatchObject({ state: "fulfilled", value: 1 });
    // A value already here when recv() is called wins too.
    const [tx2, rx2] = oneshot<number>();
    tx2.send(2);
    const token = new CancellationToken();
    const got2 = track(rx2.recv({ signal: token }));
    token.cancel("late");
    await flush();
    expect(got2).toMatchObject({ state: "fulfilled", value: 2 });
  });

  it("recv() with a CancellationToken rejects with its reason and leaves no registration", async () => {
    const { token, live } = countingToken();
    const [tx, rx] = oneshot<number>();
    const got = track(rx.recv({ signal: token }));
    expect(live()).toBe(1);
    token.cancel("cancelled");
    await flush();
    expect(got).toMatchObject({ state: "rejected", error: "cancelled" });
    expect(live()).toBe(0);
    tx.send(1);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
  });

  it("recv() leaves no listener on the signal after any settle path", async () => {
    const ac = new AbortController();
    const { token, live } = countingToken();
    for (const signal of [ac.signal, token]) {
      // value
      const [tx1, rx1] = oneshot<number>();
      const p1 = rx1.recv({ signal });
      tx1.send(1);
      await p1;
      // sender closed
      const [tx2, rx2] = oneshot<number>();
      const p2 = rx2.recv({ signal });
      tx2.close();
      await p2.catch(() => {});
      // receiver closed
      const [, rx3] = oneshot<number>();
      const p3 = rx3.recv({ signal });
      rx3.close();
      await p3.catch(() => {});
      // another recv() took the value
      const [tx4, rx4] = oneshot<number>();
      const p4a = rx4.recv();
      const p4b = rx4.recv({ signal });
      tx4.send(1);
      await Promise.allSettled([p4a, p4b]);
      // tx.closed() resolved
      const [tx5, rx5] = oneshot<number>();
      const p5 = tx5.closed({ signal });
      rx5.close();
      await p5;
    }
    expect(abortListeners(ac.signal)).toBe(0);
    expect(live()).toBe(0);
  });

  it("tx.closed() rejects with the reason when aborted, already or while waiting", async () => {
    const [tx, rx] = oneshot<number>();
    const reason = { why: "timeout" };
    await expect(tx.closed({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const ac = new AbortController();
    const waiting = track(tx.closed({ signal: ac.signal }));
    await flush();
    expect(waiting.state).toBe("pending");
    ac.abort(reason);
    await flush();
    expect(waiting).toMatchObject({ state: "rejected", error: reason });
    expect(abortListeners(ac.signal)).toBe(0);
    rx.close();
    await expect(tx.closed()).resolves.toBeUndefined();
  });

  // -- Bad input --

  it("recv() and closed() throw TypeError synchronously on a bad signal or options, before any state change", () => {
    const [tx, rx] = oneshot<number>();
    tx.send(1);
    expect(() => rx.recv({ signal: 5 as never })).toThrow(
      new TypeError("Cannot call rx.recv(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 5"),
    );
    expect(() => rx.recv("x" as never)).toThrow(TypeError);
    expect(() => rx.recv(null as never)).toThrow(/received null/);
    expect(() => tx.closed({ signal: {} as never })).toThrow(/Cannot call tx.closed\(\): 'signal'/);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 }); // nothing consumed
  });

  // -- select branch --

  it("[selectable]() polls without consuming, and commit() takes the value once", () => {
    const [tx, rx] = oneshot<number>();
    const branch = rx[selectable]();
    expect(branch.poll()).toBe(false);
    let woken = 0;
    const unsubscribe = branch.subscribe(() => woken++);
    tx.send(7);
    expect(woken).toBe(1);
    expect(branch.poll()).toBe(true);
    expect(branch.poll()).toBe(true); // polling twice consumes nothing
    expect(rx.isEmpty).toBe(false);
    expect(branch.commit()).toBe(7);
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    unsubscribe();
    unsubscribe(); // idempotent
  });

  it("[selectable]() losing branch leaves the value for recv()", async () => {
    const [tx, rx] = oneshot<string>();
    const branch = rx[selectable]();
    const unsubscribe = branch.subscribe(() => {});
    tx.send("kept");
    expect(branch.poll()).toBe(true);
    unsubscribe(); // lost the select: no commit
    expect(await rx.recv()).toBe("kept");
  });

  it("[selectable]() commit() throws ChannelClosedError when the sender closed without sending", () => {
    const [tx, rx] = oneshot<number>();
    const branch = rx[selectable]();
    let woken = 0;
    const unsubscribe = branch.subscribe(() => woken++);
    tx.close();
    expect(woken).toBe(1);
    expect(branch.poll()).toBe(true);
    expect(() => branch.commit()).toThrow(ChannelClosedError);
    unsubscribe();
  });

  it("[selectable]() subscribe() stops waking after unsubscribe and wakes on rx.close()", () => {
    const [tx, rx] = oneshot<number>();
    let a = 0;
    let b = 0;
    let c = 0;
    // B is woken before A; B unsubscribes A from inside its wake-up, so A is not woken.
    const offB = rx[selectable]().subscribe(() => {
      b++;
      offA();
    });
    const offA = rx[selectable]().subscribe(() => a++);
    const offC = rx[selectable]().subscribe(() => c++);
    offC();
    rx.close();
    expect([a, b, c]).toEqual([0, 1, 0]);
    offB();
    expect(tx.send(1)).toBe(false);
    expect([a, b, c]).toEqual([0, 1, 0]);
  });

  it("[selectable]() a recv() pending when the value is sent takes it; a select waiting on the receiver rejects", async () => {
    // recv() is served synchronously inside send(); a select only commits in a
    // later microtask, so it finds the value gone, as any later receive would.
    const [tx, rx] = oneshot<number>();
    const raced = track(select({ rx }));
    await flush();
    const received = track(rx.recv());
    expect(tx.send(1)).toBe(true);
    await flush();
    expect(received).toMatchObject({ state: "fulfilled", value: 1 });
    expect(raced.state).toBe("rejected");
    expect(raced.error).toBeInstanceOf(ChannelClosedError);
    // With no recv() pending the select gets it, and a later recv() rejects.
    const [tx2, rx2] = oneshot<number>();
    const won = track(select({ rx2 }));
    await flush();
    tx2.send(2);
    await flush();
    expect(won).toMatchObject({ state: "fulfilled", value: { key: "rx2", value: 2 } });
    await expect(rx2.recv()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("[selectable]() a select waiting on a receiver that is closed before any value rejects with ChannelClosedError", async () => {
    const [tx, rx] = oneshot<number>();
    const raced = track(select({ rx }));
    await flush();
    rx.close();
    await flush();
    expect(raced.state).toBe("rejected");
    expect(raced.error).toBeInstanceOf(ChannelClosedError);
    expect(tx.send(1)).toBe(false);
  });
});

// The rules a mutation run found untested: options without a signal, which
// error each misuse gets, who is served first, and when the receiver is
// terminated.
describe("oneshot() errors, options and order", () => {
  const TAKEN = "Cannot receive from oneshot: the value was already received";
  const RX_CLOSED = "Cannot receive from oneshot: the receiver is closed";
  const TX_CLOSED = "Cannot receive from oneshot: the sender closed without sending a value";

  /** The rejection of `promise`, which must reject. */
  async function rejection(promise: Promise<unknown>): Promise<unknown> {
    return promise.then(
      (value) => {
        throw new Error(`expected a rejection, got ${String(value)}`);
      },
      (error: unknown) => error,
    );
  }

  /** What `run` throws synchronously; it must throw. */
  function thrown(run: () => unknown): unknown {
    try {
      run();
    } catch (error) {
      return error;
    }
    throw new Error("expected a throw");
  }

  /** A receive error: a ChannelClosedError with this message, its code and name, and no value. */
  function expectRecvError(error: unknown, message: string): void {
    expect(error).toBeInstanceOf(ChannelClosedError);
    expect(error).toMatchObject({ message, code: "CANCELKIT_ERR_CHANNEL_CLOSED", name: "ChannelClosedError", value: undefined });
  }

  it("recv() with an options object but no signal waits like recv()", async () => {
    for (const options of [{}, { signal: undefined }]) {
      const [tx, rx] = oneshot<number>();
      const got = track(rx.recv(options));
      await flush();
      expect(got.state).toBe("pending");
      expect(tx.send(4)).toBe(true);
      await flush();
      expect(got).toMatchObject({ state: "fulfilled", value: 4 });
      expect(rx.isTerminated).toBe(true);
    }
  });

  it("recv() with an options object but no signal takes a value already here, or rejects when none will come", async () => {
    const [tx, rx] = oneshot<number>();
    tx.send(5);
    expect(await rx.recv({})).toBe(5);
    expectRecvError(await rejection(rx.recv({ signal: undefined })), TAKEN);
    const [tx2, rx2] = oneshot<number>();
    const waiting = track(rx2.recv({ signal: undefined }));
    tx2.close();
    await flush();
    expectRecvError(waiting.error, TX_CLOSED);
  });

  it("tx.closed() with an options object but no signal waits like tx.closed()", async () => {
    for (const options of [{}, { signal: undefined }]) {
      const [tx, rx] = oneshot<number>();
      const closed = track(tx.closed(options));
      await flush();
      expect(closed.state).toBe("pending");
      rx.close();
      await flush();
      expect(closed.state).toBe("fulfilled");
      await expect(tx.closed(options)).resolves.toBeUndefined();
    }
  });

  it("recv() after the value was received rejects with ChannelClosedError 'the value was already received'", async () => {
    const [tx, rx] = oneshot<number>();
    tx.send(1);
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
    expectRecvError(await rejection(rx.recv()), TAKEN);
    // Also after a recv() took it, and after the receiver closed: the value was still received.
    const [tx2, rx2] = oneshot<number>();
    tx2.send(2);
    expect(await rx2.recv()).toBe(2);
    rx2.close();
    tx2.close();
    expectRecvError(await rejection(rx2.recv()), TAKEN);
  });

  it("recv() on a receiver closed before any value rejects with ChannelClosedError 'the receiver is closed'", async () => {
    const [tx, rx] = oneshot<number>();
    const pending = track(rx.recv());
    const pendingWithSignal = track(rx.recv({ signal: new AbortController().signal }));
    rx.close();
    await flush();
    expectRecvError(pending.error, RX_CLOSED);
    expectRecvError(pendingWithSignal.error, RX_CLOSED);
    expectRecvError(await rejection(rx.recv()), RX_CLOSED);
    // A sender closing afterwards does not change the reason.
    tx.close();
    expectRecvError(await rejection(rx.recv()), RX_CLOSED);
  });

  it("recv() after the sender closed without sending rejects with ChannelClosedError 'the sender closed without sending a value'", async () => {
    const [tx, rx] = oneshot<number>();
    const pending = track(rx.recv());
    const pendingWithSignal = track(rx.recv({ signal: new AbortController().signal }));
    tx.close();
    await flush();
    expectRecvError(pending.error, TX_CLOSED);
    expectRecvError(pendingWithSignal.error, TX_CLOSED);
    expectRecvError(await rejection(rx.recv()), TX_CLOSED);
    // The receiver closing afterwards does not change the reason.
    rx.close();
    expectRecvError(await rejection(rx.recv()), TX_CLOSED);
  });

  it("recv() pending beside the one that got the value rejects with ChannelClosedError 'the value was already received'", async () => {
    const [tx, rx] = oneshot<number>();
    const first = track(rx.recv());
    const second = track(rx.recv({ signal: new AbortController().signal }));
    const third = track(rx.recv());
    tx.send(1);
    await flush();
    expect(first).toMatchObject({ state: "fulfilled", value: 1 });
    expectRecvError(second.error, TAKEN);
    expectRecvError(third.error, TAKEN);
  });

  it("recv() calls are served in call order, whether or not the earlier one has a signal", async () => {
    const [tx, rx] = oneshot<number>();
    const withSignal = track(rx.recv({ signal: new AbortController().signal }));
    const plain = track(rx.recv());
    tx.send(1);
    await flush();
    expect(withSignal).toMatchObject({ state: "fulfilled", value: 1 });
    expectRecvError(plain.error, TAKEN);
    // The earliest waiter aborted: the next one in line gets the value.
    const [tx2, rx2] = oneshot<number>();
    const ac = new AbortController();
    const aborted = track(rx2.recv({ signal: ac.signal }));
    const second = track(rx2.recv({ signal: new AbortController().signal }));
    const third = track(rx2.recv());
    ac.abort("left");
    tx2.send(2);
    await flush();
    expect(aborted).toMatchObject({ state: "rejected", error: "left" });
    expect(second).toMatchObject({ state: "fulfilled", value: 2 });
    expectRecvError(third.error, TAKEN);
  });

  it("[selectable]() commit() throws the same ChannelClosedError a recv() would get", () => {
    const [tx, rx] = oneshot<number>();
    const branch = rx[selectable]();
    tx.close();
    expectRecvError(thrown(() => branch.commit()), TX_CLOSED);
    const [, rx2] = oneshot<number>();
    const branch2 = rx2[selectable]();
    rx2.close();
    expect(branch2.poll()).toBe(true);
    expectRecvError(thrown(() => branch2.commit()), RX_CLOSED);
    const [tx3, rx3] = oneshot<number>();
    const branch3 = rx3[selectable]();
    tx3.send(3);
    expect(branch3.commit()).toBe(3);
    expectRecvError(thrown(() => branch3.commit()), TAKEN);
    expect(rx3.isTerminated).toBe(true);
  });

  it("send() after a send and tx.close() still throws 'already sent a value': a used sender stays used", () => {
    const [tx, rx] = oneshot<number>();
    tx.send(1);
    tx.close();
    const error = thrown(() => tx.send(2));
    expect(error).toBeInstanceOf(ChannelClosedError);
    expect(error).toMatchObject({
      message: "Cannot call tx.send(): this oneshot sender already sent a value",
      code: "CANCELKIT_ERR_CHANNEL_CLOSED",
      name: "ChannelClosedError",
      value: 2,
    });
    expect(rx.tryRecv()).toEqual({ state: "value", value: 1 });
  });

  it("send() after a send refused by a closed receiver throws 'already sent a value'", () => {
    const [tx, rx] = oneshot<number>();
    rx.close();
    expect(tx.send(1)).toBe(false);
    tx.close();
    expect(thrown(() => tx.send(2))).toMatchObject({ message: "Cannot call tx.send(): this oneshot sender already sent a value", value: 2 });
  });

  it("send() after tx.close() throws 'this oneshot sender is closed', whatever the receiver did", () => {
    const [tx, rx] = oneshot<number>();
    tx.close();
    rx.close();
    tx.close();
    const error = thrown(() => tx.send(1));
    expect(error).toBeInstanceOf(ChannelClosedError);
    expect(error).toMatchObject({ message: "Cannot call tx.send(): this oneshot sender is closed", code: "CANCELKIT_ERR_CHANNEL_CLOSED", value: 1 });
  });

  it("isTerminated is true once a pending recv() was served by send() or rejected by a close", async () => {
    const [tx, rx] = oneshot<number>();
    const got = rx.recv();
    tx.send(1);
    expect(rx.isTerminated).toBe(true);
    expect(rx.isEmpty).toBe(true);
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    expect(await got).toBe(1);
    const [tx2, rx2] = oneshot<number>();
    const failed = rx2.recv({ signal: new AbortController().signal });
    tx2.close();
    expect(rx2.isTerminated).toBe(true);
    await failed.catch(() => {});
  });

  it("tryRecv() that reports closed terminates the receiver; one that reports empty does not", () => {
    const [tx, rx] = oneshot<number>();
    expect(rx.tryRecv()).toEqual({ state: "empty" });
    expect(rx.isTerminated).toBe(false);
    tx.close();
    expect(rx.isTerminated).toBe(false);
    expect(rx.tryRecv()).toEqual({ state: "closed" });
    expect(rx.isTerminated).toBe(true);
  });

  it("rx.close() twice resolves tx.closed() once and changes nothing more", async () => {
    const [tx, rx] = oneshot<number>();
    const closed = track(tx.closed());
    rx.close();
    rx.close();
    await flush();
    expect(closed.state).toBe("fulfilled");
    expect(tx.send(1)).toBe(false);
    expectRecvError(await rejection(rx.recv()), RX_CLOSED);
  });

  it("recv() and tx.closed() name the call in an unknown-option or non-object TypeError", () => {
    const [tx, rx] = oneshot<number>();
    expect(() => rx.recv({ sginal: undefined } as never)).toThrow(
      new TypeError("Cannot call rx.recv(): unknown option 'sginal' (did you mean 'signal'?)"),
    );
    expect(() => rx.recv("x" as never)).toThrow(new TypeError("Cannot call rx.recv(): 'options' must be an object or undefined, received string \"x\""));
    expect(() => tx.closed({ sginal: undefined } as never)).toThrow(
      new TypeError("Cannot call tx.closed(): unknown option 'sginal' (did you mean 'signal'?)"),
    );
    expect(() => tx.closed({ signal: 1 } as never)).toThrow(
      new TypeError("Cannot call tx.closed(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 1"),
    );
    expect(rx.tryRecv()).toEqual({ state: "empty" });
  });
});

describe("oneshot() memory", () => {
  // Each case keeps both handles and drops its own references: only the
  // channel could keep the value (or the settled promise) alive.
  type Case = (tx: OneshotSender<object>, rx: OneshotReceiver<object>) => Promise<WeakRef<object>>;

  async function keptByChannel(run: Case): Promise<boolean> {
    const [tx, rx] = oneshot<object>();
    const ref = await run(tx, rx);
    await collectGarbage();
    const kept = ref.deref() !== undefined;
    // The handles stay reachable up to here.
    expect(rx).toBeInstanceOf(OneshotReceiver);
    expect(tx).toBeInstanceOf(OneshotSender);
    return kept;
  }

  it("oneshot() keeps no received value alive, whichever receive took it", async () => {
    const cases: Record<string, Case> = {
      "tryRecv()": async (tx, rx) => {
        const value = {};
        tx.send(value);
        expect(rx.tryRecv()).toEqual({ state: "value", value });
        return new WeakRef(value);
      },
      "recv() of a value already here": async (tx, rx) => {
        const value = {};
        tx.send(value);
        expect(await rx.recv()).toBe(value);
        return new WeakRef(value);
      },
      "a pending recv()": async (tx, rx) => {
        const value = {};
        const got = rx.recv();
        tx.send(value);
        expect(await got).toBe(value);
        return new WeakRef(value);
      },
      "a pending recv() with a signal": async (tx, rx) => {
        const value = {};
        const got = rx.recv({ signal: new AbortController().signal });
        tx.send(value);
        expect(await got).toBe(value);
        return new WeakRef(value);
      },
      "a select branch": async (tx, rx) => {
        const value = {};
        tx.send(value);
        expect(rx[selectable]().commit()).toBe(value);
        return new WeakRef(value);
      },
    };
    for (const [name, run] of Object.entries(cases)) {
      expect({ name, kept: await keptByChannel(run) }).toEqual({ name, kept: false });
    }
  });

  it("oneshot() keeps no pending recv() promise alive once a close rejected it", async () => {
    const cases: Record<string, Case> = {
      "tx.close()": async (tx, rx) => {
        const got = rx.recv();
        tx.close();
        await got.catch(() => {});
        return new WeakRef(got);
      },
      "rx.close()": async (_tx, rx) => {
        const got = rx.recv();
        rx.close();
        await got.catch(() => {});
        return new WeakRef(got);
      },
    };
    for (const [name, run] of Object.entries(cases)) {
      expect({ name, kept: await keptByChannel(run) }).toEqual({ name, kept: false });
    }
  });

  it("recv() without a signal, when nothing else waits, waits in the channel itself: it costs less heap than a second concurrent recv()", async () => {
    // The second recv() waits in a list node; the first in the channel's own slot.
    const N = 20_000;
    const heapPerChannel = async (pending: 0 | 1 | 2): Promise<number> => {
      const keep: unknown[] = [];
      await collectGarbage();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < N; i++) {
        const [tx, rx] = oneshot<number>();
        keep.push(tx, rx, pending > 0 ? rx.recv() : null, pending > 1 ? rx.recv() : null);
      }
      await collectGarbage();
      const bytes = (process.memoryUsage().heapUsed - before) / N;
      expect(keep).toHaveLength(4 * N);
      return bytes;
    };
    const none = await heapPerChannel(0);
    const one = await heapPerChannel(1);
    const two = await heapPerChannel(2);
    expect(one - none).toBeLessThan(0.8 * (two - one));
  });
});
