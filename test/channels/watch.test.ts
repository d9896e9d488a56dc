import { describe, expect, it } from "vitest";
import { selectable } from "../../src/index.js";
import { ChannelClosedError, watch, WatchReceiver, WatchSender } from "../../src/channels/index.js";
import { CancellationToken } from "../../src/cancel/index.js";
import { select } from "../../src/signals/index.js";
import { abortListeners, collectGarbage, countingToken, flush, resolvesToItself, track } from "./helpers.js";

/** Records whether a macrotask (setImmediate) got to run since the call. */
function macrotaskRan(): { ran: boolean } {
  const state = { ran: false };
  setImmediate(() => (state.ran = true));
  return state;
}

// Port of tokio/tests/sync_watch.rs, one `it` per upstream test. "Drop the
// sender/receiver" is `close()`; "spawn(rx.changed()) + poll" is a tracked
// promise checked after a flush.
describe("tokio sync_watch.rs", () => {
  it("single_rx_recv", async () => {
    const [tx, rx] = watch("one");
    {
      const t = track(rx.changed());
      await flush();
      expect(t.state).toBe("pending"); // not initially notified
      // Rust drops this future; the JS equivalent is that it stays pending
      // and receives the next change below, which is checked there.
      tx.send("two");
      await flush();
      expect(t).toMatchObject({ state: "fulfilled", value: "two" });
    }
    expect(rx.borrow()).toBe("two");
    {
      const t = track(rx.changed());
      await flush();
      expect(t.state).toBe("pending");
      tx.close();
      await flush();
      expect(t.state).toBe("rejected");
      expect(t.error).toBeInstanceOf(ChannelClosedError);
    }
    expect(rx.borrow()).toBe("two");
  });

  it("rx_version_underflow", () => {
    const [, rx] = watch("one");
    rx.markChanged();
    rx.markChanged();
    expect(rx.hasChanged()).toBe(true);
  });

  it("rx_mark_changed", async () => {
    const [tx, rx] = watch("one");
    const rx2 = rx.clone();
    const rx3 = rx.clone();
    const rx4 = rx.clone();
    {
      rx.markChanged();
      expect(rx.hasChanged()).toBe(true);
      const t = track(rx.changed());
      await flush();
      expect(t).toMatchObject({ state: "fulfilled", value: "one" });
    }
    {
      expect(rx2.hasChanged()).toBe(false);
      const t = track(rx2.changed({ signal: AbortSignal.abort("drop") }));
      const pending = track(rx2.changed({ signal: new CancellationToken() }));
      await flush();
      expect(t.state).toBe("rejected");
      expect(pending.state).toBe("pending");
      rx2.close(); // the JS "drop": settles the pending wait
    }
    {
      rx3.markChanged();
      expect(rx3.borrow()).toBe("one");
      expect(rx3.hasChanged()).toBe(true);
      expect(rx3.borrowAndUpdate()).toBe("one");
      expect(rx3.hasChanged()).toBe(false);
      const ac = new AbortController();
      const t = track(rx3.changed({ signal: ac.signal }));
      await flush();
      expect(t.state).toBe("pending");
      ac.abort();
    }
    {
      tx.send("two");
      expect(rx4.hasChanged()).toBe(true);
      expect(rx4.borrowAndUpdate()).toBe("two");
      rx4.markChanged();
      expect(rx4.hasChanged()).toBe(true);
      expect(rx4.borrowAndUpdate()).toBe("two");
    }
    expect(rx.borrow()).toBe("two");
  });

  it("rx_mark_unchanged", async () => {
    const [tx, rx] = watch("one");
    const rx2 = rx.clone();
    {
      expect(rx.hasChanged()).toBe(false);
      rx.markChanged();
      expect(rx.hasChanged()).toBe(true);
      rx.markUnchanged();
      expect(rx.hasChanged()).toBe(false);
      const ac = new AbortController();
      const t = track(rx.changed({ signal: ac.signal }));
      await flush();
      expect(t.state).toBe("pending");
      ac.abort();
    }
    {
      expect(rx2.hasChanged()).toBe(false);
      tx.send("two");
      expect(rx2.hasChanged()).toBe(true);
      rx2.markUnchanged();
      expect(rx2.hasChanged()).toBe(false);
      expect(rx2.borrowAndUpdate()).toBe("two");
    }
    expect(rx.borrow()).toBe("two");
  });

  it("multi_rx", async () => {
    const [tx, rx1] = watch("one");
    const rx2 = rx1.clone();
    {
      const ac = new AbortController();
      const t1 = track(rx1.changed({ signal: ac.signal }));
      const t2 = track(rx2.changed({ signal: ac.signal }));
      await flush();
      expect([t1.state, t2.state]).toEqual(["pending", "pending"]);
      ac.abort(); // Rust drops both futures here
    }
    expect(rx1.borrow()).toBe("one");
    expect(rx2.borrow()).toBe("one");

    const t2 = track(rx2.changed());
    {
      const t1 = track(rx1.changed());
      await flush();
      expect([t1.state, t2.state]).toEqual(["pending", "pending"]);
      tx.send("two");
      await flush();
      // Both are woken; in JS, a woken changed() has completed.
      expect(t1).toMatchObject({ state: "fulfilled", value: "two" });
      expect(t2).toMatchObject({ state: "fulfilled", value: "two" });
    }
    expect(rx1.borrow()).toBe("two");
    {
      const t1 = track(rx1.changed());
      const t2b = track(rx2.changed());
      await flush();
      expect(t1.state).toBe("pending");
      tx.send("three");
      await flush();
      expect(t1).toMatchObject({ state: "fulfilled", value: "three" });
      expect(t2b).toMatchObject({ state: "fulfilled", value: "three" });
    }
    expect(rx1.borrow()).toBe("three");
    expect(rx2.borrow()).toBe("three");
    {
      const t1 = track(rx1.changed());
      const t2c = track(rx2.changed());
      await flush();
      expect([t1.state, t2c.state]).toEqual(["pending", "pending"]);
      tx.send("four");
      await flush();
      expect([t1.value, t2c.value]).toEqual(["four", "four"]);
    }
    expect(rx1.borrow()).toBe("four");
    expect(rx2.borrow()).toBe("four");
  });

  it("rx_observes_final_value", async () => {
    // Initial value
    {
      const [tx, rx] = watch("one");
      tx.close();
      await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
      expect(rx.borrow()).toBe("one");
    }
    // Sending a value
    const [tx, rx] = watch("one");
    tx.send("two");
    await expect(rx.changed()).resolves.toBe("two");
    expect(rx.borrow()).toBe("two");
    {
      const t = track(rx.changed());
      await flush();
      expect(t.state).toBe("pending");
      tx.send("three");
      tx.close();
      await flush();
      expect(t).toMatchObject({ state: "fulfilled", value: "three" });
    }
    expect(rx.borrow()).toBe("three");
    await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(rx.borrow()).toBe("three");
  });

  it("poll_close", async () => {
    const [tx, rx] = watch("one");
    {
      const t = track(tx.closed());
      await flush();
      expect(t.state).toBe("pending");
      rx.close();
      await flush();
      expect(t.state).toBe("fulfilled");
    }
    expect(tx.send("two")).toBe(false);
  });

  it("borrow_and_update", async () => {
    const [tx, rx] = watch("one");
    expect(rx.hasChanged()).toBe(false);
    tx.send("two");
    expect(rx.hasChanged()).toBe(true);
    await expect(rx.changed()).resolves.toBe("two");
    const ac = new AbortController();
    const pending = track(rx.changed({ signal: ac.signal }));
    await flush();
    expect(pending.state).toBe("pending");
    ac.abort();
    expect(rx.hasChanged()).toBe(false);

    tx.send("three");
    expect(rx.hasChanged()).toBe(true);
    expect(rx.borrowAndUpdate()).toBe("three");
    const ac2 = new AbortController();
    const pending2 = track(rx.changed({ signal: ac2.signal }));
    await flush();
    expect(pending2.state).toBe("pending");
    ac2.abort();
    expect(rx.hasChanged()).toBe(false);

    tx.close();
    expect(rx.borrowAndUpdate()).toBe("three");
    await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(() => rx.hasChanged()).toThrow(ChannelClosedError);
  });

  it("reopened_after_subscribe", () => {
    const [tx, rx] = watch("one");
    expect(tx.isClosed).toBe(false);
    rx.close();
    expect(tx.isClosed).toBe(true);
    const rx2 = tx.subscribe();
    expect(tx.isClosed).toBe(false);
    rx2.close();
    expect(tx.isClosed).toBe(true);
  });

  it("send_modify_panic", async () => {
    const [tx, rx] = watch({ text: "one" });
    tx.sendModify((old) => {
      old.text = "two";
    });
    expect(rx.borrowAndUpdate().text).toBe("two");
    const rx2 = rx.clone();
    expect(rx2.borrowAndUpdate().text).toBe("two");
    const t = track(rx2.changed());
    const boom = new Error("panic");
    expect(() =>
      tx.sendModify((old) => {
        old.text = "panicked";
        throw boom;
      }),
    ).toThrow(boom);
    await flush();
    expect(t.state).toBe("pending"); // nobody notified
    expect(rx.borrow().text).toBe("panicked"); // the partial change is visible
    tx.sendModify((old) => {
      old.text = "three";
    });
    await flush();
    expect(t.state).toBe("fulfilled");
    expect(rx.borrowAndUpdate().text).toBe("three");
  });

  it("multiple_sender", async () => {
    const [tx1, rx] = watch(0);
    const tx2 = tx1.clone();
    const task = (async () => {
      await rx.changed();
      const v1 = rx.borrowAndUpdate();
      await rx.changed();
      const v2 = rx.borrowAndUpdate();
      return [v1, v2];
    })();
    const t = track(task);
    tx1.send(1);
    await flush();
    expect(t.state).toBe("pending");
    tx2.send(2);
    await flush();
    expect(t).toMatchObject({ state: "fulfilled", value: [1, 2] });
  });

  it("receiver_is_notified_when_last_sender_is_dropped", async () => {
    const [tx1, rx] = watch(0);
    const tx2 = tx1.clone();
    const t = track(rx.changed());
    await flush();
    expect(t.state).toBe("pending");
    tx1.close();
    await flush();
    expect(t.state).toBe("pending");
    tx2.close();
    await flush();
    expect(t.state).toBe("rejected");
  });

  // The five "is_cooperative" tests check tokio's coop budget: an
  // always-ready loop must yield to the scheduler. JavaScript has no budget:
  // a loop over settled promises runs entirely on the microtask queue (the
  // starvation footgun, documented in docs/semantics.md). The JS equivalent
  // asserted here: every call settles correctly, the loop runs to completion
  // without a macrotask in between, and the event loop resumes right after.
  it("receiver_changed_is_cooperative", async () => {
    const [tx, rx] = watch(undefined);
    tx.close();
    const macro = macrotaskRan();
    for (let i = 0; i < 1000; i++) await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(macro.ran).toBe(false);
    await flush();
    expect(macro.ran).toBe(true);
  });

  it("receiver_changed_is_cooperative_ok", async () => {
    const [tx, rx] = watch(0);
    const macro = macrotaskRan();
    for (let i = 1; i <= 1000; i++) {
      expect(tx.send(i)).toBe(true);
      expect(await rx.changed()).toBe(i);
    }
    expect(macro.ran).toBe(false);
    await flush();
    expect(macro.ran).toBe(true);
  });

  it("receiver_wait_for_is_cooperative", async () => {
    const [tx, rx] = watch(0);
    tx.close();
    const macro = macrotaskRan();
    for (let i = 0; i < 1000; i++) await expect(rx.waitFor((v) => v === 1)).rejects.toBeInstanceOf(ChannelClosedError);
    expect(macro.ran).toBe(false);
    await flush();
    expect(macro.ran).toBe(true);
  });

  it("receiver_wait_for_is_cooperative_ok", async () => {
    const [tx, rx] = watch(0);
    const macro = macrotaskRan();
    for (let i = 0; i < 1000; i++) {
      expect(tx.send(1)).toBe(true);
      expect(await rx.waitFor((v) => v === 1)).toBe(1);
    }
    expect(macro.ran).toBe(false);
    await flush();
    expect(macro.ran).toBe(true);
  });

  it("sender_closed_is_cooperative", async () => {
    const [tx, rx] = watch(undefined);
    rx.close();
    const macro = macrotaskRan();
    for (let i = 0; i < 1000; i++) await tx.closed();
    expect(macro.ran).toBe(false);
    expect(tx.isClosed).toBe(true);
    await flush();
    expect(macro.ran).toBe(true);
  });

  it("changed_succeeds_on_closed_channel_with_unseen_value", async () => {
    const [tx, rx] = watch("A");
    tx.send("B");
    tx.close();
    await expect(rx.changed()).resolves.toBe("B");
  });

  it("changed_errors_on_closed_channel_with_seen_value", async () => {
    const [tx, rx] = watch("A");
    tx.close();
    await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("has_changed_errors_on_closed_channel_with_unseen_value", () => {
    const [tx, rx] = watch("A");
    tx.send("B");
    tx.close();
    expect(() => rx.hasChanged()).toThrow(ChannelClosedError);
  });

  it("has_changed_errors_on_closed_channel_with_seen_value", () => {
    const [tx, rx] = watch("A");
    tx.close();
    expect(() => rx.hasChanged()).toThrow(ChannelClosedError);
  });

  it("wait_for_errors_on_closed_channel_true_predicate", async () => {
    const [tx, rx] = watch("A");
    tx.send("B");
    tx.close();
    await expect(rx.waitFor(() => true)).resolves.toBe("B");
  });
});

describe("watch()", () => {
  // -- Versions --

  it("watch() with no argument is a channel of undefined", async () => {
    const [tx, rx] = watch();
    expect(rx.borrow()).toBeUndefined();
    const woken = track(rx.changed());
    tx.send(undefined);
    await flush();
    expect(woken.state).toBe("fulfilled");
  });

  it("send() returns false and stores nothing without receivers; sendReplace/sendModify/sendIfModified store", () => {
    const [tx, rx] = watch(1);
    rx.close();
    expect(tx.send(2)).toBe(false);
    expect(tx.borrow()).toBe(1);
    expect(tx.sendReplace(3)).toBe(1);
    expect(tx.borrow()).toBe(3);
    const box = watch({ n: 0 })[0];
    box.subscribe().close();
    box.sendModify((v) => void v.n++);
    expect(box.sendIfModified((v) => (v.n++, true))).toBe(true);
    expect(box.borrow().n).toBe(2);
  });

  it("sends coalesce: a receiver that looks after three sends sees one change with the newest value", async () => {
    const [tx, rx] = watch(0);
    tx.send(1);
    tx.send(2);
    tx.send(3);
    expect(await rx.changed()).toBe(3);
    expect(rx.hasChanged()).toBe(false);
  });

  it("values are never compared: sending the same value is a change", async () => {
    const [tx, rx] = watch("same");
    tx.send("same");
    expect(rx.hasChanged()).toBe(true);
    expect(await rx.changed()).toBe("same");
  });

  it("sendIfModified() returning false stores silently without notifying", async () => {
    const [tx, rx] = watch({ n: 0 });
    const t = track(rx.changed());
    expect(
      tx.sendIfModified((v) => {
        v.n = 5;
        return false;
      }),
    ).toBe(false);
    await flush();
    expect(t.state).toBe("pending");
    expect(rx.borrow().n).toBe(5);
    expect(rx.hasChanged()).toBe(false);
    expect(tx.sendIfModified(() => true)).toBe(true);
    await flush();
    expect(t.state).toBe("fulfilled");
  });

  it("subscribe() starts seen; clone() inherits the seen version", () => {
    const [tx, rx] = watch(0);
    tx.send(1);
    const fresh = tx.subscribe();
    const copy = rx.clone();
    expect(fresh.hasChanged()).toBe(false);
    expect(copy.hasChanged()).toBe(true);
    rx.borrowAndUpdate();
    rx.markChanged();
    expect(rx.clone().hasChanged()).toBe(true); // a markChanged state is inherited too
    expect(tx.receiverCount).toBe(4);
  });

  it("the channel closes for receivers only when every sender is closed", () => {
    const [tx, rx] = watch(0);
    const tx2 = tx.clone();
    expect(tx.senderCount).toBe(2);
    tx.close();
    tx.close(); // idempotent: does not close tx2's share
    expect(rx.hasChanged()).toBe(false);
    expect(tx2.send(1)).toBe(true);
    tx2.close();
    expect(() => rx.hasChanged()).toThrow(ChannelClosedError);
    expect(tx.senderCount).toBe(0);
  });

  it("a closed sender handle throws ChannelClosedError on send, subscribe and clone", () => {
    const [tx, rx] = watch(0);
    tx.close();
    expect(() => tx.send(1)).toThrow(expect.objectContaining({ value: 1, code: "CANCELKIT_ERR_CHANNEL_CLOSED" }));
    expect(() => tx.sendReplace(1)).toThrow(ChannelClosedError);
    expect(() => tx.sendModify(() => {})).toThrow(ChannelClosedError);
    expect(() => tx.sendIfModified(() => true)).toThrow(ChannelClosedError);
    expect(() => tx.subscribe()).toThrow(ChannelClosedError);
    expect(() => tx.clone()).toThrow(ChannelClosedError);
    expect(rx.borrow()).toBe(0);
  });

  it("ChannelClosedError from a closed handle names the call, and carries the refused value", async () => {
    const [tx, rx] = watch(0);
    const keep = tx.clone();
    tx.close();
    expect(() => tx.send(1)).toThrow(expect.objectContaining({ message: "Cannot call tx.send(): this sender is closed", value: 1 }));
    expect(() => tx.sendReplace(2)).toThrow(
      expect.objectContaining({ message: "Cannot call tx.sendReplace(): this sender is closed", value: 2 }),
    );
    expect(() => tx.sendModify(() => {})).toThrow("Cannot call tx.sendModify(): this sender is closed");
    expect(() => tx.sendIfModified(() => true)).toThrow("Cannot call tx.sendIfModified(): this sender is closed");
    expect(() => tx.subscribe()).toThrow("Cannot call tx.subscribe(): this sender is closed");
    expect(() => tx.clone()).toThrow("Cannot call tx.clone(): this sender is closed");
    const other = rx.clone();
    const changed = rx.changed();
    const waited = rx.waitFor(() => false);
    rx.close();
    await expect(changed).rejects.toThrow("Cannot call rx.changed(): this receiver is closed");
    await expect(waited).rejects.toThrow("Cannot call rx.waitFor(): this receiver is closed");
    expect(() => rx.clone()).toThrow("Cannot call rx.clone(): this receiver is closed");
    expect(() => rx.hasChanged()).toThrow("Cannot call rx.hasChanged(): this receiver is closed");
    await expect(rx.changed()).rejects.toThrow("Cannot call rx.changed(): this receiver is closed");
    await expect(rx.waitFor(() => true)).rejects.toThrow("Cannot call rx.waitFor(): this receiver is closed");
    keep.close();
    expect(() => other.hasChanged()).toThrow("Cannot call rx.hasChanged(): every sender is closed");
    await expect(other.changed()).rejects.toThrow("Cannot call rx.changed(): every sender is closed and the current value is seen");
    await expect(other.waitFor(() => false)).rejects.toThrow("Cannot call rx.waitFor(): every sender is closed and no value matched");
  });

  it("tx.closed() resolves when the last receiver closes, not before", async () => {
    const [tx, rx] = watch(0);
    const rx2 = rx.clone();
    const t = track(tx.closed());
    rx.close();
    await flush();
    expect(t.state).toBe("pending");
    rx2.close();
    await flush();
    expect(t.state).toBe("fulfilled");
  });

  it("rx.close() rejects that receiver's pending waits and leaves other receivers alone", async () => {
    const [tx, rx] = watch(0);
    const other = rx.clone();
    const a = track(rx.changed());
    const b = track(rx.waitFor((v) => v > 5));
    const c = track(other.changed());
    rx.close();
    rx.close();
    await flush();
    expect(a.state).toBe("rejected");
    expect(b.state).toBe("rejected");
    expect(a.error).toBeInstanceOf(ChannelClosedError);
    expect(c.state).toBe("pending");
    tx.send(1);
    await flush();
    expect(c).toMatchObject({ state: "fulfilled", value: 1 });
    await expect(rx.changed()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(() => rx.hasChanged()).toThrow(ChannelClosedError);
    expect(() => rx.clone()).toThrow(ChannelClosedError);
    expect(rx.borrow()).toBe(1);
  });

  it("markChanged() wakes this receiver's pending changed() with the current value", async () => {
    const [, rx] = watch("v");
    const other = rx.clone();
    const t = track(rx.changed());
    const o = track(other.changed());
    await flush();
    expect(t.state).toBe("pending");
    rx.markChanged();
    await flush();
    expect(t).toMatchObject({ state: "fulfilled", value: "v" });
    expect(o.state).toBe("pending");
    expect(rx.hasChanged()).toBe(false);
    other.close();
  });

  it("concurrent changed() on one receiver: each version is delivered to a receiver once", async () => {
    const [tx, rx] = watch(0);
    const first = track(rx.changed());
    const second = track(rx.changed());
    tx.send(1);
    await flush();
    expect(first).toMatchObject({ state: "fulfilled", value: 1 });
    expect(second.state).toBe("pending");
    tx.send(2);
    await flush();
    expect(second).toMatchObject({ state: "fulfilled", value: 2 });
  });

  it("changed() marks the delivered value seen during the send, so a later borrow may be newer", async () => {
    const [tx, rx] = watch(0);
    const t = rx.changed();
    tx.send(1);
    tx.send(2);
    expect(await t).toBe(1);
    expect(rx.hasChanged()).toBe(true);
    expect(await rx.changed()).toBe(2);
  });

  // -- waitFor --

  it("waitFor() checks the current value first, even if seen", async () => {
    const [, rx] = watch(10);
    expect(rx.hasChanged()).toBe(false);
    await expect(rx.waitFor((v) => v === 10)).resolves.toBe(10);
  });

  it("waitFor() runs the predicate on newer values outside the send, and marks the accepted one seen", async () => {
    const [tx, rx] = watch(0);
    const calls: number[] = [];
    const t = track(
      rx.waitFor((v) => {
        calls.push(v);
        return v >= 2;
      }),
    );
    tx.send(1);
    expect(calls).toEqual([0]); // not inside send()
    await flush();
    expect(calls).toEqual([0, 1]);
    expect(t.state).toBe("pending");
    tx.send(2);
    tx.send(3); // coalesces with 2: the predicate sees 3 only
    await flush();
    expect(calls).toEqual([0, 1, 3]);
    expect(t).toMatchObject({ state: "fulfilled", value: 3 });
    expect(rx.hasChanged()).toBe(false);
  });

  it("waitFor() rejects with the predicate's error", async () => {
    const [tx, rx] = watch(0);
    const boom = new Error("bad predicate");
    await expect(rx.waitFor(() => { throw boom; })).rejects.toBe(boom);
    const t = track(rx.waitFor((v) => { if (v === 1) throw boom; return false; }));
    tx.send(1);
    await flush();
    expect(t).toMatchObject({ state: "rejected", error: boom });
  });

  it("waitFor() after close checks the unseen last value once, then rejects", async () => {
    const [tx, rx] = watch(0);
    const calls: number[] = [];
    const t = track(rx.waitFor((v) => (calls.push(v), false)));
    tx.send(1);
    tx.close();
    await flush();
    expect(calls).toEqual([0, 1]);
    expect(t.state).toBe("rejected");
    expect(t.error).toBeInstanceOf(ChannelClosedError);
    // Closed with the current value seen: the current value is still checked first.
    await expect(rx.waitFor((v) => v === 1)).resolves.toBe(1);
    await expect(rx.waitFor((v) => v === 2)).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("waitFor() sees a send made by its own predicate", async () => {
    const [tx, rx] = watch(0);
    const t = track(rx.waitFor((v) => (v === 0 ? (tx.send(1), false) : v === 1)));
    await flush();
    expect(t).toMatchObject({ state: "fulfilled", value: 1 });
  });

  // -- Async iteration --

  it("for await yields the current value first, then every observed value, and ends after the last unseen one", async () => {
    const [tx, rx] = watch("a");
    tx.send("b"); // unseen when the loop starts: the loop yields the current value "b" once
    const seen: string[] = [];
    const loop = (async () => {
      for await (const value of rx) {
        seen.push(value);
        if (value === "b") queueMicrotask(() => tx.send("c"));
        if (value === "c") {
          tx.send("d");
          tx.close();
        }
      }
    })();
    await loop;
    expect(seen).toEqual(["b", "c", "d"]);
  });

  it("for await over a closed channel yields the current value once, then ends", async () => {
    const [tx, rx] = watch(1);
    tx.close();
    const seen: number[] = [];
    for await (const value of rx) seen.push(value);
    expect(seen).toEqual([1]);
  });

  it("break leaves the receiver usable", async () => {
    const [tx, rx] = watch(0);
    for await (const value of rx) {
      expect(value).toBe(0);
      break;
    }
    expect(tx.receiverCount).toBe(1);
    tx.send(1);
    expect(await rx.changed()).toBe(1);
    const again: number[] = [];
    queueMicrotask(() => tx.close());
    for await (const value of rx) again.push(value);
    expect(again).toEqual([1]);
  });

  it("iterator return() or throw() while a next() waits for a change settles both at once and consumes nothing", async () => {
    const [tx, rx] = watch(0);
    const iterator = rx[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ value: 0, done: false });
    const waiting = track(iterator.next());
    await flush();
    expect(waiting.state).toBe("pending");
    const returned = track(iterator.return(undefined));
    await flush();
    expect(waiting).toMatchObject({ state: "fulfilled", value: { value: undefined, done: true } });
    expect(returned).toMatchObject({ state: "fulfilled", value: { value: undefined, done: true } });
    tx.send(1); // the ended iteration left no wait behind to mark this seen
    expect(rx.hasChanged()).toBe(true);
    expect(await rx.changed()).toBe(1);
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
    // throw() ends a waiting next() the same way, then rejects with its error
    const other = rx[Symbol.asyncIterator]();
    await other.next();
    const parked = track(other.next());
    const boom = new Error("stop iterating");
    const thrown = track(other.throw(boom));
    await flush();
    expect(parked).toMatchObject({ state: "fulfilled", value: { value: undefined, done: true } });
    expect(thrown).toMatchObject({ state: "rejected", error: boom });
    tx.send(2);
    expect(rx.hasChanged()).toBe(true);
  });

  it("for await yields an unseen value without waiting, and ends on a closed channel once it is seen", async () => {
    const [tx, rx] = watch(0);
    const it = rx[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 0, done: false });
    tx.send(1);
    tx.close();
    expect(await it.next()).toEqual({ value: 1, done: false });
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(rx.borrow()).toBe(1);
  });

  it("for await ends when the receiver is closed while the loop waits", async () => {
    const [tx, rx] = watch(0);
    const seen: number[] = [];
    const loop = (async () => {
      for await (const value of rx) seen.push(value);
    })();
    await flush();
    expect(seen).toEqual([0]);
    rx.close();
    await loop;
    expect(seen).toEqual([0]);
    expect(tx.isClosed).toBe(true);
  });

  // -- Not a thenable --

  it("WatchReceiver and WatchSender are not thenables: returning them from an async function does not wait", async () => {
    const [tx, rx] = watch(0);
    expect(await resolvesToItself(rx)).toBe(true);
    expect(await resolvesToItself(tx)).toBe(true);
    expect(rx).toBeInstanceOf(WatchReceiver);
    expect(tx).toBeInstanceOf(WatchSender);
  });

  // -- Abort positions --

  it("changed() rejects with the reason unchanged when already aborted, marking nothing seen", async () => {
    const [tx, rx] = watch(0);
    tx.send(1);
    const reason = new Error("stop");
    await expect(rx.changed({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(rx.changed({ signal: CancellationToken.alreadyCancelled(reason) })).rejects.toBe(reason);
    await expect(rx.waitFor(() => true, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(rx.hasChanged()).toBe(true);
  });

  it("changed() aborted while waiting rejects with the reason and the next change is still reported", async () => {
    const [tx, rx] = watch(0);
    const ac = new AbortController();
    const t = track(rx.changed({ signal: ac.signal }));
    await flush();
    expect(t.state).toBe("pending");
    ac.abort("gone");
    await flush();
    expect(t).toMatchObject({ state: "rejected", error: "gone" });
    expect(abortListeners(ac.signal)).toBe(0);
    tx.send(1);
    expect(rx.hasChanged()).toBe(true);
    expect(await rx.changed()).toBe(1);
  });

  it("changed() is not affected by an abort after the change arrived", async () => {
    const [tx, rx] = watch(0);
    const { token, live } = countingToken();
    const t = track(rx.changed({ signal: token }));
    tx.send(1);
    token.cancel("late");
    await flush();
    expect(t).toMatchObject({ state: "fulfilled", value: 1 });
    expect(live()).toBe(0);
  });

  it("waitFor() aborted while waiting rejects with the reason and marks nothing seen", async () => {
    const [tx, rx] = watch(0);
    const ac = new AbortController();
    const t = track(rx.waitFor((v) => v === 5, { signal: ac.signal }));
    tx.send(1);
    await flush();
    expect(t.state).toBe("pending");
    ac.abort("gone");
    await flush();
    expect(t).toMatchObject({ state: "rejected", error: "gone" });
    expect(rx.hasChanged()).toBe(true);
    expect(abortListeners(ac.signal)).toBe(0);
  });

  it("waitFor() is not affected by an abort after its value was accepted", async () => {
    const [tx, rx] = watch(0);
    const { token, live } = countingToken();
    const t = track(rx.waitFor((v) => v === 1, { signal: token }));
    tx.send(1);
    await Promise.resolve(); // the predicate runs in a microtask and accepts 1
    await Promise.resolve();
    token.cancel("late");
    await flush();
    expect(t).toMatchObject({ state: "fulfilled", value: 1 });
    expect(rx.hasChanged()).toBe(false);
    expect(live()).toBe(0);
  });

  it("waitFor() accepts a value sent before an abort in the same turn", async () => {
    const ac = new AbortController();
    const { token, live } = countingToken();
    for (const [signal, abort] of [
      [ac.signal, (reason: string) => ac.abort(reason)],
      [token, (reason: string) => token.cancel(reason)],
    ] as const) {
      const [tx, rx] = watch(0);
      const t = track(rx.waitFor((v) => v === 1, { signal }));
      tx.send(1);
      abort("late"); // before the predicate's queued check ran: the value came first
      await flush();
      expect(t).toMatchObject({ state: "fulfilled", value: 1 });
      expect(rx.hasChanged()).toBe(false);
    }
    expect(abortListeners(ac.signal)).toBe(0);
    expect(live()).toBe(0);
  });

  it("waitFor() lets a same-turn abort through when the value sent before it is rejected, marking nothing seen", async () => {
    const [tx, rx] = watch(0);
    const ac = new AbortController();
    const checked: number[] = [];
    const t = track(rx.waitFor((v) => (checked.push(v), v === 5), { signal: ac.signal }));
    tx.send(1);
    ac.abort("gone");
    await flush();
    expect(t).toMatchObject({ state: "rejected", error: "gone" });
    expect(checked).toEqual([0, 1]); // evaluated once each, not again by the queued check
    expect(rx.hasChanged()).toBe(true);
    expect(abortListeners(ac.signal)).toBe(0);
  });

  it("tx.closed() rejects with the reason when aborted, already or while waiting", async () => {
    const [tx, rx] = watch(0);
    const reason = new Error("stop");
    await expect(tx.closed({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const ac = new AbortController();
    const t = track(tx.closed({ signal: ac.signal }));
    await flush();
    expect(t.state).toBe("pending");
    ac.abort(reason);
    await flush();
    expect(t).toMatchObject({ state: "rejected", error: reason });
    expect(abortListeners(ac.signal)).toBe(0);
    rx.close();
    await expect(tx.closed()).resolves.toBeUndefined();
  });

  it("waits leave no listener on the signal after any settle path", async () => {
    const ac = new AbortController();
    const { token, live } = countingToken();
    for (const signal of [ac.signal, token]) {
      const [tx, rx] = watch(0);
      const other = rx.clone();
      const waits = [
        rx.changed({ signal }), // resolved by a send
        rx.waitFor((v) => v === 2, { signal }), // resolved by a later send
        other.changed({ signal }), // rejected by other.close()
        other.waitFor(() => false, { signal }), // rejected by other.close()
        tx.closed({ signal }), // resolved when every receiver closed
      ];
      tx.send(1);
      await flush();
      tx.send(2);
      await flush();
      other.close();
      const closing = rx.changed({ signal }); // rejected when the senders close
      const predicate = rx.waitFor(() => false, { signal }); // rejected when the senders close
      tx.close();
      rx.close();
      await Promise.allSettled([...waits, closing, predicate]);
      // a predicate that throws
      const [, rx2] = watch(0);
      await rx2.waitFor(() => { throw new Error("x"); }, { signal }).catch(() => {});
    }
    expect(abortListeners(ac.signal)).toBe(0);
    expect(live()).toBe(0);
  });

  // -- Bad input --

  it("bad input throws TypeError synchronously, naming the call and value, before any state change", () => {
    const [tx, rx] = watch(0);
    tx.send(1);
    expect(() => rx.changed({ signal: 5 as never })).toThrow(
      new TypeError("Cannot call rx.changed(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 5"),
    );
    expect(() => rx.changed(7 as never)).toThrow(/Cannot call rx.changed\(\): 'options' must be an object or undefined, received number 7/);
    expect(() => tx.sendModify("x" as never)).toThrow(
      new TypeError('Cannot call tx.sendModify(): \'modify\' must be a function, received string "x"'),
    );
    expect(() => tx.sendIfModified(null as never)).toThrow(TypeError);
    expect(() => rx.waitFor(null as never)).toThrow(
      new TypeError("Cannot call rx.waitFor(): 'predicate' must be a function, received null"),
    );
    expect(() => rx.waitFor(() => true, { signal: "x" as never })).toThrow(TypeError);
    expect(() => tx.closed({ signal: 1 as never })).toThrow(TypeError);
    expect(rx.hasChanged()).toBe(true); // nothing marked seen
    expect(tx.borrow()).toBe(1);
  });

  // -- select branch --

  it("[selectable]() wins on a change, commit() marks it seen, and a losing branch marks nothing", () => {
    const [tx, rx] = watch("a");
    const branch = rx[selectable]();
    expect(branch.poll()).toBe(false);
    let woken = 0;
    const unsubscribe = branch.subscribe(() => woken++);
    tx.send("b");
    expect(woken).toBe(1);
    expect(branch.poll()).toBe(true);
    expect(rx.hasChanged()).toBe(true); // poll consumed nothing
    unsubscribe(); // this select lost
    unsubscribe();
    tx.send("c");
    expect(woken).toBe(1);
    const winner = rx[selectable]();
    expect(winner.poll()).toBe(true);
    expect(winner.commit()).toBe("c");
    expect(rx.hasChanged()).toBe(false);
    expect(winner.poll()).toBe(false);
  });

  it("[selectable]() commit() throws ChannelClosedError when closed and seen, and wakes on the last sender closing", () => {
    const [tx, rx] = watch(0);
    const branch = rx[selectable]();
    let woken = 0;
    const off = branch.subscribe(() => woken++);
    tx.send(1);
    tx.close();
    expect(woken).toBe(2);
    expect(branch.poll()).toBe(true);
    expect(branch.commit()).toBe(1); // the unseen final value first
    expect(branch.poll()).toBe(true);
    expect(() => branch.commit()).toThrow(ChannelClosedError);
    off();
  });

  it("[selectable]() wakes on markChanged() and close() of its own receiver only", () => {
    const [, rx] = watch(0);
    const other = rx.clone();
    let mine = 0;
    let theirs = 0;
    const offMine = rx[selectable]().subscribe(() => mine++);
    const offTheirs = other[selectable]().subscribe(() => theirs++);
    rx.markChanged();
    expect([mine, theirs]).toEqual([1, 0]);
    rx.close();
    expect([mine, theirs]).toEqual([2, 0]);
    offMine();
    offTheirs();
    other.close();
  });

  it("select() over a receiver that is closed while it waits rejects with ChannelClosedError; other receivers' selects keep waiting", async () => {
    const [tx, rx] = watch(0);
    const other = rx.clone();
    const mine = track(select({ rx }));
    const theirs = track(select({ other }));
    await flush();
    rx.close();
    await flush();
    expect(mine.state).toBe("rejected");
    expect(mine.error).toBeInstanceOf(ChannelClosedError);
    expect(theirs.state).toBe("pending");
    tx.send(1);
    await flush();
    expect(theirs).toMatchObject({ state: "fulfilled", value: { key: "other", value: 1 } });
    expect(other.hasChanged()).toBe(false);
  });
});

describe("waitFor() and markChanged()", () => {
  // Found by the watch model (seed 1656974531): waitFor, markChanged, a
  // silent sendIfModified, then the last sender closes.
  it("waitFor() checks the current value once more on close when markChanged() made it changed, and resolves with a match", async () => {
    const [tx, rx] = watch({ n: 57 });
    const wait = track(rx.waitFor((box) => box.n % 2 === 0));
    await flush();
    rx.markChanged();
    // Stored without notifying: only the close wakes the wait.
    expect(tx.sendIfModified((box) => ((box.n = 0), false))).toBe(false);
    await flush();
    expect(wait.state).toBe("pending");
    tx.close();
    await flush();
    expect(wait.state).toBe("fulfilled");
  });

  it("waitFor() still rejects on close when the value that markChanged() made changed does not match", async () => {
    const [tx, rx] = watch(57);
    const wait = track(rx.waitFor((n) => n % 2 === 0));
    await flush();
    rx.markChanged();
    tx.close();
    await flush();
    expect(wait.state).toBe("rejected");
    expect(wait.error).toBeInstanceOf(ChannelClosedError);
  });
});

// Rules a mutation run found untested.
describe("watch() options, errors and wake-ups", () => {
  it("changed(), waitFor() and tx.closed() with an options object but no signal wait like without options", async () => {
    for (const options of [{}, { signal: undefined }]) {
      const [tx, rx] = watch(0);
      const changed = track(rx.changed(options));
      const waited = track(rx.waitFor((v) => v === 1, options));
      const closed = track(tx.closed(options));
      await flush();
      expect([changed.state, waited.state, closed.state]).toEqual(["pending", "pending", "pending"]);
      tx.send(1);
      await flush();
      expect(changed).toMatchObject({ state: "fulfilled", value: 1 });
      expect(waited).toMatchObject({ state: "fulfilled", value: 1 });
      rx.close();
      await flush();
      expect(closed.state).toBe("fulfilled");
    }
  });

  it("[selectable]() commit() names the select in its ChannelClosedError", () => {
    const [tx, rx] = watch(0);
    const other = rx.clone();
    tx.close();
    expect(() => rx[selectable]().commit()).toThrow(
      expect.objectContaining({
        name: "ChannelClosedError",
        code: "CANCELKIT_ERR_CHANNEL_CLOSED",
        message: "Cannot select on a watch receiver: every sender is closed and the current value is seen",
      }),
    );
    other.close();
    expect(() => other[selectable]().commit()).toThrow(
      expect.objectContaining({ name: "ChannelClosedError", message: "Cannot select on a watch receiver: this receiver is closed" }),
    );
  });

  it("[selectable]() a lone branch is not woken by another receiver's markChanged() or close()", () => {
    const [tx, rx] = watch(0);
    const other = rx.clone();
    let woken = 0;
    const off = rx[selectable]().subscribe(() => woken++);
    other.markChanged();
    other.close();
    expect(woken).toBe(0);
    rx.markChanged();
    expect(woken).toBe(1);
    tx.send(1);
    expect(woken).toBe(2);
    off();
    rx.close();
  });

  it("waitFor() and tx.closed() name the call in an unknown-option TypeError", () => {
    const [tx, rx] = watch(0);
    expect(() => rx.waitFor(() => true, { sginal: undefined } as never)).toThrow(
      new TypeError("Cannot call rx.waitFor(): unknown option 'sginal' (did you mean 'signal'?)"),
    );
    expect(() => rx.waitFor(() => true, { signal: 3 } as never)).toThrow(
      new TypeError("Cannot call rx.waitFor(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 3"),
    );
    expect(() => rx.changed({ sginal: undefined } as never)).toThrow(
      new TypeError("Cannot call rx.changed(): unknown option 'sginal' (did you mean 'signal'?)"),
    );
    expect(() => tx.closed({ sginal: undefined } as never)).toThrow(
      new TypeError("Cannot call tx.closed(): unknown option 'sginal' (did you mean 'signal'?)"),
    );
    expect(() => tx.closed({ signal: 1 } as never)).toThrow(
      new TypeError("Cannot call tx.closed(): 'signal' must be an AbortSignal, a CancellationToken or undefined, received number 1"),
    );
    expect(() => tx.sendIfModified(null as never)).toThrow(
      new TypeError("Cannot call tx.sendIfModified(): 'modify' must be a function, received null"),
    );
  });
});

describe("watch() waitFor(), markChanged() and iteration rules", () => {
  it("waitFor() checks again on close when markChanged() is called on a receiver whose unseen value it already checked (tokio's wait_for)", async () => {
    const [tx, rx] = watch({ n: 1 });
    const wait = track(rx.waitFor((box) => box.n === 0));
    tx.send({ n: 3 });
    await flush(); // checked {n: 3}: no match; the receiver still has it unseen
    expect(rx.hasChanged()).toBe(true);
    expect(tx.sendIfModified((box) => ((box.n = 0), false))).toBe(false); // stored silently
    rx.markChanged();
    tx.close();
    await flush();
    expect(wait).toMatchObject({ state: "fulfilled", value: { n: 0 } });
  });

  it("waitFor() after markChanged() checks again only on the next notifying send or close, not by itself", async () => {
    const [tx, rx] = watch({ n: 1 });
    const calls: number[] = [];
    const wait = track(rx.waitFor((box) => (calls.push(box.n), box.n === 0)));
    tx.sendIfModified((box) => ((box.n = 0), false));
    rx.markChanged();
    await flush();
    expect(wait.state).toBe("pending");
    expect(calls).toEqual([1]);
    tx.send({ n: 0 });
    await flush();
    expect(wait).toMatchObject({ state: "fulfilled", value: { n: 0 } });
  });

  it("waitFor() aborted after markChanged() rejects with the reason: the abort runs no check without a send before it", async () => {
    const [tx, rx] = watch({ n: 1 });
    const ac = new AbortController();
    const calls: number[] = [];
    const wait = track(rx.waitFor((box) => (calls.push(box.n), box.n === 0), { signal: ac.signal }));
    tx.sendIfModified((box) => ((box.n = 0), false));
    rx.markChanged();
    ac.abort("stop");
    await flush();
    expect(wait).toMatchObject({ state: "rejected", error: "stop" });
    expect(calls).toEqual([1]);
    expect(abortListeners(ac.signal)).toBe(0);
  });

  it("waitFor() after markChanged() at a later version checks the current value on close", async () => {
    const [tx, rx] = watch({ n: 1 });
    tx.send({ n: 2 });
    const wait = track(rx.waitFor((box) => box.n === 0));
    await flush();
    tx.sendIfModified((box) => ((box.n = 0), false));
    rx.markChanged();
    tx.close();
    await flush();
    expect(wait).toMatchObject({ state: "fulfilled", value: { n: 0 } });
  });

  it("waitFor() does not check a value again on close when it was checked already", async () => {
    const [tx, rx] = watch(0);
    const calls: number[] = [];
    const wait = track(rx.waitFor((v) => (calls.push(v), false)));
    tx.send(1);
    await flush();
    expect(calls).toEqual([0, 1]);
    tx.close();
    await flush();
    expect(calls).toEqual([0, 1]);
    expect(wait.state).toBe("rejected");
    expect(wait.error).toMatchObject({
      name: "ChannelClosedError",
      message: "Cannot call rx.waitFor(): every sender is closed and no value matched",
    });
  });

  it("waitFor() whose check is queued runs no predicate once its receiver closed", async () => {
    const [tx, rx] = watch(0);
    const calls: number[] = [];
    const wait = track(rx.waitFor((v) => (calls.push(v), v === 1)));
    tx.send(1);
    rx.close(); // same turn: the queued check finds the wait settled
    await flush();
    expect(calls).toEqual([0]);
    expect(wait.error).toMatchObject({ message: "Cannot call rx.waitFor(): this receiver is closed" });
  });

  it("waitFor() whose predicate aborts its own signal rejects with the reason and marks nothing seen, whatever the predicate returns", async () => {
    for (const accept of [true, false]) {
      const [tx, rx] = watch(0);
      const ac = new AbortController();
      const wait = track(
        rx.waitFor(
          (v) => {
            if (v !== 1) return false;
            ac.abort("inside");
            return accept;
          },
          { signal: ac.signal },
        ),
      );
      tx.send(1);
      await flush();
      expect(wait).toMatchObject({ state: "rejected", error: "inside" });
      expect(rx.hasChanged()).toBe(true);
      expect(abortListeners(ac.signal)).toBe(0);
    }
    // Also when the first check, inside waitFor() itself, aborts and rejects.
    const [, rx] = watch(0);
    const ac = new AbortController();
    const calls: number[] = [];
    const wait = track(rx.waitFor((v) => (calls.push(v), ac.abort("first"), false), { signal: ac.signal }));
    await flush();
    expect(wait).toMatchObject({ state: "rejected", error: "first" });
    expect(calls).toEqual([0]);
    expect(abortListeners(ac.signal)).toBe(0);
  });

  it("waitFor() whose first check closes its own receiver rejects with 'this receiver is closed'", async () => {
    const [tx, rx] = watch(0);
    const wait = track(rx.waitFor(() => (rx.close(), false)));
    await flush();
    expect(wait.error).toMatchObject({ name: "ChannelClosedError", message: "Cannot call rx.waitFor(): this receiver is closed" });
    expect(tx.isClosed).toBe(true);
  });

  it("waitFor() whose first check sends and closes the channel checks the value it sent", async () => {
    const [tx, rx] = watch(0);
    const calls: number[] = [];
    const wait = track(rx.waitFor((v) => (calls.push(v), v === 0 ? (tx.send(1), tx.close(), false) : v === 1)));
    await flush();
    expect(wait).toMatchObject({ state: "fulfilled", value: 1 });
    expect(calls).toEqual([0, 1]);
  });

  it("waitFor() checks queued by one send run in one microtask; a check queued while it runs waits for a later one", async () => {
    const [tx, rx] = watch(0);
    const log: string[] = [];
    const a = track(rx.waitFor((v) => (log.push(`a${v}`), v === 1 ? (tx.send(2), false) : v === 2)));
    const b = track(rx.waitFor((v) => (log.push(`b${v}`), v === 2)));
    log.length = 0;
    tx.send(1);
    queueMicrotask(() => log.push("later"));
    await flush();
    // b checks 2 in the first batch (a's send came before b's turn); a's own
    // re-check is queued behind the microtask queued after the send.
    expect(log).toEqual(["a1", "b2", "later", "a2"]);
    expect(a).toMatchObject({ state: "fulfilled", value: 2 });
    expect(b).toMatchObject({ state: "fulfilled", value: 2 });
  });

  it("waitFor() queued by several sends in one turn is checked once in that batch; a send by its own predicate is checked in a later microtask", async () => {
    const [tx, rx] = watch(0);
    const log: string[] = [];
    const wait = track(rx.waitFor((v) => (log.push(`a${v}`), v === 2 ? (tx.send(3), false) : v === 3)));
    log.length = 0;
    tx.send(1);
    tx.send(2);
    queueMicrotask(() => log.push("later"));
    await flush();
    expect(log).toEqual(["a2", "later", "a3"]);
    expect(wait).toMatchObject({ state: "fulfilled", value: 3 });
  });

  it("waitFor() keeps no predicate alive once the wait settled", async () => {
    const [tx, rx] = watch(0);
    const refs: WeakRef<object>[] = [];
    const start = (): Promise<number> => {
      const predicate = (v: number): boolean => v === 1;
      refs.push(new WeakRef(predicate));
      return rx.waitFor(predicate);
    };
    const waiting = start();
    tx.send(1);
    expect(await waiting).toBe(1);
    // Another batch runs, so both of the alternating queues have been used.
    const next = rx.waitFor((v) => v === 2);
    tx.send(2);
    await next;
    await collectGarbage();
    expect(refs[0]!.deref()).toBeUndefined();
    expect(tx.receiverCount).toBe(1);
  });

  it("markChanged() resolves this receiver's first pending changed() only, even behind another receiver's wait", async () => {
    const [, rx] = watch("v");
    const other = rx.clone();
    const theirs = track(other.changed());
    const first = track(rx.changed());
    const second = track(rx.changed());
    rx.markChanged();
    await flush();
    expect(theirs.state).toBe("pending");
    expect(first).toMatchObject({ state: "fulfilled", value: "v" });
    expect(second.state).toBe("pending");
    expect(rx.hasChanged()).toBe(false);
    other.close();
    rx.close();
  });

  it("markChanged() makes only this receiver's pending waitFor() check again on close", async () => {
    const [tx, rx] = watch({ n: 1 });
    const other = rx.clone();
    const calls: string[] = [];
    const theirs = track(other.waitFor((box) => (calls.push(`other${box.n}`), box.n === 0)));
    const mine = track(rx.waitFor((box) => (calls.push(`mine${box.n}`), box.n === 0)));
    tx.sendIfModified((box) => ((box.n = 0), false));
    rx.markChanged();
    tx.close();
    await flush();
    expect(mine).toMatchObject({ state: "fulfilled", value: { n: 0 } });
    expect(theirs.state).toBe("rejected");
    expect(calls).toEqual(["other1", "mine1", "mine0"]);
  });

  it("WatchSender and WatchReceiver [Symbol.dispose]() close them, so using closes at scope exit", async () => {
    const [outerTx, outerRx] = watch(0);
    const keep = outerRx.clone();
    {
      using tx = outerTx;
      using rx = outerRx;
      expect(tx.senderCount).toBe(1);
      expect(rx.borrow()).toBe(0);
    }
    expect(() => outerTx.send(1)).toThrow(ChannelClosedError);
    expect(() => outerRx.clone()).toThrow(ChannelClosedError);
    expect(outerTx.receiverCount).toBe(1);
    await expect(keep.changed()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("for await over a closed receiver yields nothing", async () => {
    const [tx, rx] = watch(1);
    tx.send(2);
    rx.close();
    const seen: number[] = [];
    for await (const value of rx) seen.push(value);
    expect(seen).toEqual([]);
  });

  it("for await ends when its loop body closes the receiver, even with an unseen value", async () => {
    const [tx, rx] = watch(0);
    const other = rx.clone();
    const seen: number[] = [];
    for await (const value of rx) {
      seen.push(value);
      if (seen.length > 1) break; // only reached if the loop went on after close()
      tx.send(1);
      rx.close();
    }
    expect(seen).toEqual([0]);
    other.close();
  });
});
