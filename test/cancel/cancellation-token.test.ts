import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CancelGuard, CancellationToken, type CancelRegistration } from "../../src/cancel/index.js";
import { oneshot, select, selectable, sleep } from "../../src/index.js";
import { shutdown } from "../../src/signals/index.js";
import { captureUncaught, collectGarbage, deferred, flush, heapUsed, stateOf } from "./helpers.js";

const abortListeners = (signal: AbortSignal): number => getEventListeners(signal, "abort").length;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------
// Port of tokio-util/tests/sync_cancellation_token.rs (tokio-rs/tokio @ ea91b33),
// one `it` per upstream test. Upstream counts waker invocations of *polled*
// `cancelled()` futures; here a "wake" is an `onCancel` callback, and a polled
// future is a `cancelled()` promise whose state we read after a flush.
// Dropping a Rust handle is `[Symbol.dispose]()`.

describe("tokio-util sync_cancellation_token.rs", () => {
  it("cancel_token", async () => {
    let wakes = 0;
    const token = new CancellationToken();
    expect(token.isCancelled).toBe(false);
    const waitFut = token.cancelled();
    token.onCancel(() => wakes++);
    expect(await stateOf(waitFut)).toBe("pending");
    expect(wakes).toBe(0);
    // Created but not awaited before the cancel: still completes.
    const waitFut2 = token.cancelled();
    token.cancel();
    expect(wakes).toBe(1);
    expect(token.isCancelled).toBe(true);
    expect(await stateOf(waitFut)).toBe("fulfilled");
    expect(await stateOf(waitFut2)).toBe("fulfilled");
  });

  it("cancel_token_owned", async () => {
    // `clone().cancelled_owned()`: a clone is the same token in JS, so the
    // owned variant is `cancelled()` reached through another reference.
    let wakes = 0;
    const token = new CancellationToken();
    const clone = token;
    const waitFut = clone.cancelled();
    clone.onCancel(() => wakes++);
    expect(await stateOf(waitFut)).toBe("pending");
    const waitFut2 = clone.cancelled();
    token.cancel();
    expect(wakes).toBe(1);
    expect(token.isCancelled).toBe(true);
    expect(await stateOf(waitFut)).toBe("fulfilled");
    expect(await stateOf(waitFut2)).toBe("fulfilled");
  });

  it("cancel_token_owned_drop_test", async () => {
    // Dropping a pending pinned future has no JS equivalent; the nearest is
    // abandoning a pending cancelled() promise and an unregistered callback:
    // nothing runs, and a later cancel is still fine.
    let wakes = 0;
    const token = new CancellationToken();
    const future = token.cancelled();
    token.onCancel(() => wakes++).unregister();
    expect(await stateOf(future)).toBe("pending");
    expect(wakes).toBe(0);
    token.cancel();
    expect(wakes).toBe(0);
  });

  it("cancel_child_token_through_parent", async () => {
    let wakes = 0;
    const token = new CancellationToken();
    const childToken = token.child();
    expect(childToken.isCancelled).toBe(false);
    const childFut = childToken.cancelled();
    const parentFut = token.cancelled();
    childToken.onCancel(() => wakes++);
    token.onCancel(() => wakes++);
    expect(await stateOf(childFut)).toBe("pending");
    expect(await stateOf(parentFut)).toBe("pending");
    expect(wakes).toBe(0);
    token.cancel();
    expect(wakes).toBe(2);
    expect(token.isCancelled).toBe(true);
    expect(childToken.isCancelled).toBe(true);
    expect(await stateOf(childFut)).toBe("fulfilled");
    expect(await stateOf(parentFut)).toBe("fulfilled");
  });

  it("cancel_grandchild_token_through_parent_if_child_was_dropped", async () => {
    let wakes = 0;
    const token = new CancellationToken();
    const intermediateToken = token.child();
    const childToken = intermediateToken.child();
    intermediateToken[Symbol.dispose]();
    expect(childToken.isCancelled).toBe(false);
    const childFut = childToken.cancelled();
    const parentFut = token.cancelled();
    childToken.onCancel(() => wakes++);
    token.onCancel(() => wakes++);
    expect(await stateOf(childFut)).toBe("pending");
    expect(await stateOf(parentFut)).toBe("pending");
    expect(wakes).toBe(0);
    token.cancel();
    expect(wakes).toBe(2);
    expect(token.isCancelled).toBe(true);
    expect(childToken.isCancelled).toBe(true);
    expect(intermediateToken.isCancelled).toBe(false); // disposing detached it
    expect(await stateOf(childFut)).toBe("fulfilled");
    expect(await stateOf(parentFut)).toBe("fulfilled");
  });

  it("cancel_child_token_without_parent", async () => {
    let wakes = 0;
    const token = new CancellationToken();
    const childToken1 = token.child();
    const childFut = childToken1.cancelled();
    const parentFut = token.cancelled();
    childToken1.onCancel(() => wakes++);
    token.onCancel(() => wakes++);
    expect(await stateOf(childFut)).toBe("pending");
    expect(await stateOf(parentFut)).toBe("pending");
    childToken1.cancel();
    expect(wakes).toBe(1);
    expect(token.isCancelled).toBe(false);
    expect(childToken1.isCancelled).toBe(true);
    expect(await stateOf(childFut)).toBe("fulfilled");
    expect(await stateOf(parentFut)).toBe("pending");
    const childToken2 = token.child();
    const childFut2 = childToken2.cancelled();
    childToken2.onCancel(() => wakes++);
    expect(await stateOf(childFut2)).toBe("pending");
    expect(await stateOf(parentFut)).toBe("pending");
    token.cancel();
    expect(wakes).toBe(3);
    expect(token.isCancelled).toBe(true);
    expect(childToken2.isCancelled).toBe(true);
    expect(await stateOf(childFut2)).toBe("fulfilled");
    expect(await stateOf(parentFut)).toBe("fulfilled");
  });

  it("create_child_token_after_parent_was_cancelled", async () => {
    for (const disposeChildFirst of [true, false]) {
      let wakes = 0;
      const token = new CancellationToken();
      token.cancel();
      const childToken = token.child();
      expect(childToken.isCancelled).toBe(true);
      const childFut = childToken.cancelled();
      const parentFut = token.cancelled();
      expect(await stateOf(childFut)).toBe("fulfilled");
      expect(await stateOf(parentFut)).toBe("fulfilled");
      expect(wakes).toBe(0);
      // Callbacks on already-cancelled tokens run at once (a Ready first poll, not a wake).
      childToken.onCancel(() => wakes++);
      expect(wakes).toBe(1);
      if (disposeChildFirst) {
        childToken[Symbol.dispose]();
        token[Symbol.dispose]();
      } else {
        token[Symbol.dispose]();
        childToken[Symbol.dispose]();
      }
      expect(childToken.isCancelled && token.isCancelled).toBe(true);
    }
  });

  it("drop_multiple_child_tokens", () => {
    for (const disposeFirstChildFirst of [true, false]) {
      const token = new CancellationToken();
      const childTokens = [token.child(), token.child(), token.child()];
      expect(token.isCancelled).toBe(false);
      expect(childTokens[0]!.isCancelled).toBe(false);
      for (let i = 0; i < childTokens.length; i++) {
        const index = disposeFirstChildFirst ? i : childTokens.length - 1 - i;
        childTokens[index]![Symbol.dispose]();
        expect(token.isCancelled).toBe(false);
      }
      token[Symbol.dispose]();
      expect(token.isCancelled).toBe(false);
    }
  });

  it("cancel_only_all_descendants", async () => {
    let wakes = 0;
    const parentToken = new CancellationToken();
    const token = parentToken.child();
    const siblingToken = parentToken.child();
    const child1Token = token.child();
    const child2Token = token.child();
    const grandchildToken = child1Token.child();
    const grandchild2Token = child1Token.child();
    const greatGrandchildToken = grandchildToken.child();
    const all = [parentToken, token, siblingToken, child1Token, child2Token, grandchildToken, grandchild2Token, greatGrandchildToken];
    for (const t of all) expect(t.isCancelled).toBe(false);
    const futures = all.map((t) => t.cancelled());
    for (const t of all) t.onCancel(() => wakes++);
    for (const f of futures) expect(await stateOf(f)).toBe("pending");
    expect(wakes).toBe(0);

    token.cancel();

    expect(wakes).toBe(6);
    expect(parentToken.isCancelled).toBe(false);
    expect(token.isCancelled).toBe(true);
    expect(siblingToken.isCancelled).toBe(false);
    expect(child1Token.isCancelled).toBe(true);
    expect(child2Token.isCancelled).toBe(true);
    expect(grandchildToken.isCancelled).toBe(true);
    expect(grandchild2Token.isCancelled).toBe(true);
    expect(greatGrandchildToken.isCancelled).toBe(true);
    const states = await Promise.all(futures.map(stateOf));
    expect(states).toEqual(["pending", "fulfilled", "pending", "fulfilled", "fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    expect(wakes).toBe(6);
  });

  it("drop_parent_before_child_tokens", () => {
    const token = new CancellationToken();
    const child1 = token.child();
    const child2 = token.child();
    token[Symbol.dispose]();
    expect(child1.isCancelled).toBe(false);
    child1[Symbol.dispose]();
    child2[Symbol.dispose]();
    // JS extra: a disposed root's children became roots, so the old root's
    // cancel no longer reaches them (tokio: a handle-less node cannot cancel).
    token.cancel();
    expect(child2.isCancelled).toBe(false);
  });

  it("derives_send_sync", () => {
    // Send/Sync are compile-time thread-safety markers: no JS meaning (one
    // thread). The nearest runtime property: the token can be used from any
    // async context and its state is visible synchronously everywhere.
    const token = new CancellationToken();
    queueMicrotask(() => token.cancel("from a microtask"));
    return Promise.resolve().then(() => {
      expect(token.reason).toBe("from a microtask");
    });
  });

  it("run_until_cancelled_test", async () => {
    {
      // (a) pending work, then cancel: rejects with the reason (tokio's None).
      const token = new CancellationToken();
      const fut = token.runUntilCancelled(new Promise<never>(() => {}));
      expect(await stateOf(fut)).toBe("pending");
      token.cancel("stop");
      await expect(fut).rejects.toBe("stop");
    }
    {
      // (b) the work completes: resolves with its value (tokio's Some(42)).
      const { promise: rx, resolve: send } = deferred<void>();
      const token = new CancellationToken();
      const fut = token.runUntilCancelled(
        (async () => {
          await rx;
          return 42;
        })(),
      );
      expect(await stateOf(fut)).toBe("pending");
      send();
      await expect(fut).resolves.toBe(42);
    }
    {
      // (c) cancelled before it starts: rejects and the work is never called.
      // (tokio checks at the first poll; JS is eager, so "before" is "before the call".)
      const token = new CancellationToken();
      token.cancel("early");
      const work = vi.fn(async () => {
        throw new Error("work called after cancellation");
      });
      await expect(token.runUntilCancelled(work)).rejects.toBe("early");
      expect(work).not.toHaveBeenCalled();
    }
  });

  it("run_until_cancelled_owned_test", async () => {
    // The owned variant moves the token into the future; in JS the call
    // through a function that took the token is the same call.
    const takesOwnership = <T>(token: CancellationToken, work: Promise<T>): Promise<T> => token.runUntilCancelled(work);
    {
      const token = new CancellationToken();
      const toCancel = token;
      const fut = takesOwnership(token, new Promise<never>(() => {}));
      expect(await stateOf(fut)).toBe("pending");
      toCancel.cancel("stop");
      await expect(fut).rejects.toBe("stop");
    }
    {
      const { promise: rx, resolve: send } = deferred<void>();
      const fut = takesOwnership(new CancellationToken(), rx.then(() => 42));
      expect(await stateOf(fut)).toBe("pending");
      send();
      await expect(fut).resolves.toBe(42);
    }
  });

  it("cloned_cancellation_tokens_are_considered_equal", () => {
    // A clone is another reference to the same object: identity equality.
    const token = new CancellationToken();
    const tokenClone = token;
    expect(tokenClone).toBe(token);
    tokenClone.cancel();
    expect(token.isCancelled).toBe(true);
  });

  it("child_cancellation_tokens_are_not_considered_equal", () => {
    const token = new CancellationToken();
    expect(token.child()).not.toBe(token);
  });

  it("independent_cancellation_tokens_are_not_considered_equal", () => {
    expect(new CancellationToken()).not.toBe(new CancellationToken());
  });

  it("cloned_cancellation_tokens_have_same_hash", () => {
    // Hash by identity: the same token is the same Map/Set key.
    const token1 = new CancellationToken();
    const token2 = token1;
    const set = new Set([token1]);
    expect(set.has(token2)).toBe(true);
  });

  it("different_cancellation_tokens_have_different_hash", () => {
    const set = new Set([new CancellationToken(), new CancellationToken()]);
    expect(set.size).toBe(2);
  });
});

// ---------------------------------------------------------------------------
// Design §1, rule by rule.

describe("cancel()", () => {
  it("cancel() marks the whole subtree cancelled, with the reason, before any callback runs", () => {
    const root = new CancellationToken();
    const a = root.child();
    const a1 = a.child();
    const a1x = a1.child();
    const b = root.child();
    const all = [root, a, a1, a1x, b];
    const seen: boolean[][] = [];
    const reasons: unknown[][] = [];
    for (const t of all) {
      t.onCancel(() => {
        seen.push(all.map((x) => x.isCancelled));
        reasons.push(all.map((x) => x.reason));
      });
    }
    root.cancel("why");
    expect(seen).toHaveLength(5);
    for (const row of seen) expect(row).toEqual([true, true, true, true, true]);
    for (const row of reasons) expect(row).toEqual(["why", "why", "why", "why", "why"]);
  });

  it("cancel() runs own callbacks in registration order, then descendants pre-order, children in creation order", () => {
    const log: string[] = [];
    const root = new CancellationToken();
    const a = root.child();
    const b = root.child();
    const a1 = a.child();
    const a2 = a.child();
    const a1x = a1.child();
    const b1 = b.child();
    // Register in a scrambled order to show the order is the tree's, not registration's across tokens.
    b1.onCancel(() => log.push("b1"));
    a2.onCancel(() => log.push("a2"));
    root.onCancel(() => log.push("root#1"));
    a1x.onCancel(() => log.push("a1x"));
    a.onCancel(() => log.push("a#1"));
    b.onCancel(() => log.push("b"));
    a1.onCancel(() => log.push("a1"));
    root.onCancel(() => log.push("root#2"));
    a.onCancel(() => log.push("a#2"));
    root.cancel();
    // tokio wakes descendants first and children LIFO; we document pre-order (docs/semantics.md).
    expect(log).toEqual(["root#1", "root#2", "a#1", "a#2", "a1", "a1x", "a2", "b", "b1"]);
  });

  it("cancel() fires each token's native signal right after that token's callbacks", () => {
    const log: string[] = [];
    const root = new CancellationToken();
    const child = root.child();
    root.signal.addEventListener("abort", () => log.push("root signal"));
    child.signal.addEventListener("abort", () => log.push("child signal"));
    root.onCancel(() => {
      log.push(`root cb, root signal aborted=${root.signal.aborted}`);
    });
    child.onCancel(() => log.push("child cb"));
    root.cancel("r");
    expect(log).toEqual(["root cb, root signal aborted=false", "root signal", "child cb", "child signal"]);
    expect(child.signal.reason).toBe("r");
  });

  it("cancel() keeps running callbacks when one throws, never throws itself, and reports the error as uncaught on a microtask", async () => {
    const log: string[] = [];
    const boom1 = new Error("boom1");
    const boom2 = new Error("boom2");
    const root = new CancellationToken();
    const child = root.child();
    root.onCancel(() => log.push("1"));
    root.onCancel(() => {
      throw boom1;
    });
    root.onCancel(() => log.push("3"));
    child.onCancel(() => {
      throw boom2;
    });
    child.onCancel(() => log.push("child"));
    let reportedSynchronously = false;
    let reportedByMicrotasks = 0;
    const errors = await captureUncaught(async (errorsSoFar) => {
      expect(() => root.cancel()).not.toThrow();
      reportedSynchronously = errorsSoFar.length > 0;
      await flush(); // microtasks only: no timer or I/O turn
      reportedByMicrotasks = errorsSoFar.length;
    });
    // Errors were not reported synchronously inside cancel(), but on microtasks...
    expect(reportedSynchronously).toBe(false);
    expect(reportedByMicrotasks).toBe(2);
    // ...but each one was reported afterwards, in order, unchanged.
    expect(errors).toEqual([boom1, boom2]);
    expect(log).toEqual(["1", "3", "child"]);
  });

  it("cancel() is idempotent and the first reason wins", () => {
    const token = new CancellationToken();
    const calls: unknown[] = [];
    token.onCancel((r) => calls.push(r));
    token.cancel("first");
    token.cancel("second");
    token.cancel();
    expect(token.reason).toBe("first");
    expect(calls).toEqual(["first"]);
  });

  it("cancel() on a child never cancels the parent or siblings", () => {
    const parent = new CancellationToken();
    const a = parent.child();
    const b = parent.child();
    a.cancel();
    expect(parent.isCancelled).toBe(false);
    expect(b.isCancelled).toBe(false);
    parent.cancel("later");
    expect(b.reason).toBe("later");
    expect(a.reason).toBeInstanceOf(DOMException);
  });

  it("cancel() of a 1,000,000-deep chain does not overflow the stack", () => {
    const root = new CancellationToken();
    let leaf = root;
    const middle: CancellationToken[] = [];
    for (let i = 0; i < 1_000_000; i++) {
      leaf = leaf.child();
      if (i === 500_000) middle.push(leaf);
    }
    let fired = 0;
    leaf.onCancel((reason) => {
      expect(reason).toBe("deep");
      fired++;
    });
    // Disposing a token in the middle re-parents its single child: still O(1) and iterative.
    middle[0]![Symbol.dispose]();
    expect(() => root.cancel("deep")).not.toThrow();
    expect(fired).toBe(1);
    expect(leaf.isCancelled).toBe(true);
    expect(middle[0]!.isCancelled).toBe(false);
  });

  it("cancel() lets callbacks create, cancel and dispose tokens of the tree being cancelled", () => {
    const root = new CancellationToken();
    const a = root.child();
    const b = root.child();
    const log: string[] = [];
    let late: CancellationToken | undefined;
    root.onCancel(() => {
      late = a.child(); // child of a cancelled token: born cancelled
      b[Symbol.dispose](); // disposing a cancelled token is a no-op
      a.cancel("ignored"); // already cancelled
    });
    a.onCancel((r) => log.push(`a:${String(r)}`));
    b.onCancel((r) => log.push(`b:${String(r)}`));
    root.cancel("r");
    expect(late!.isCancelled).toBe(true);
    expect(late!.reason).toBe("r");
    expect(log).toEqual(["a:r", "b:r"]);
  });
});

describe("default reason", () => {
  it("reason is a DOMException named AbortError, shared by the whole cancelled tree", () => {
    const root = new CancellationToken();
    const child = root.child();
    const grandchild = child.child();
    root.cancel();
    const reason = root.reason;
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe("AbortError");
    expect(child.reason).toBe(reason);
    expect(grandchild.reason).toBe(reason);
    expect(root.child().reason).toBe(reason); // born cancelled, same reason
    expect(root.signal.reason).toBe(reason);
    expect(child.signal.reason).toBe(reason);
  });

  it("reason: the default AbortError is created lazily, on first read, once per cancelled tree", () => {
    const RealDOMException = globalThis.DOMException;
    let created = 0;
    const Counting = new Proxy(RealDOMException, {
      construct(target, args: ConstructorParameters<typeof DOMException>) {
        created++;
        return new target(...args);
      },
    });
    vi.stubGlobal("DOMException", Counting);
    try {
      const root = new CancellationToken();
      const children = [root.child(), root.child().child()];
      root.cancel();
      expect(created).toBe(0); // nobody asked for it yet
      const reason = children[1]!.reason;
      expect(created).toBe(1);
      expect(root.reason).toBe(reason);
      expect(children[0]!.reason).toBe(reason);
      expect(root.child().reason).toBe(reason);
      expect(created).toBe(1);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(globalThis.DOMException).toBe(RealDOMException);
  });

  it("reason is undefined while not cancelled, and cancel(undefined) means the default", () => {
    const token = new CancellationToken();
    expect(token.reason).toBeUndefined();
    token.cancel(undefined);
    expect((token.reason as DOMException).name).toBe("AbortError");
  });

  it("reason can be any value, including falsy ones", () => {
    for (const value of [null, 0, false, "", Symbol("s")]) {
      const token = new CancellationToken();
      token.cancel(value);
      expect(token.reason).toBe(value);
      expect(token.signal.reason).toBe(value);
    }
  });

  it("alreadyCancelled() is cancelled with the given reason or the default AbortError", () => {
    expect(CancellationToken.alreadyCancelled("x").reason).toBe("x");
    const token = CancellationToken.alreadyCancelled();
    expect(token.isCancelled).toBe(true);
    expect((token.reason as DOMException).name).toBe("AbortError");
    expect(token.signal.aborted).toBe(true);
    expect(token.child().reason).toBe(token.reason);
  });
});

describe("child()", () => {
  it("child() of a cancelled token is born cancelled with the parent's reason", () => {
    const parent = new CancellationToken();
    parent.cancel("gone");
    const child = parent.child();
    expect(child.isCancelled).toBe(true);
    expect(child.reason).toBe("gone");
    let ran = false;
    child.onCancel(() => (ran = true));
    expect(ran).toBe(true);
  });

  it("child() is cancelled with the parent, and cancelling or disposing it leaves the parent alone", () => {
    const parent = new CancellationToken();
    const a = parent.child();
    const b = parent.child();
    a[Symbol.dispose]();
    b.cancel("b");
    expect(parent.isCancelled).toBe(false);
    const c = parent.child();
    parent.cancel("p");
    expect(c.reason).toBe("p");
    expect(a.isCancelled).toBe(false); // disposed: detached
    expect(b.reason).toBe("b");
  });
});

describe("onCancel()", () => {
  it("onCancel() on a cancelled token runs the callback synchronously, before it returns", () => {
    const token = CancellationToken.alreadyCancelled("r");
    const log: string[] = [];
    const registration = token.onCancel((reason) => log.push(`cb ${String(reason)}`));
    log.push("returned");
    expect(log).toEqual(["cb r", "returned"]);
    expect(() => registration.unregister()).not.toThrow();
    expect(() => registration[Symbol.dispose]()).not.toThrow();
  });

  it("onCancel() on a cancelled token reports a throwing callback instead of throwing", async () => {
    const error = new Error("late");
    const errors = await captureUncaught(() => {
      expect(() =>
        CancellationToken.alreadyCancelled().onCancel(() => {
          throw error;
        }),
      ).not.toThrow();
    });
    expect(errors).toEqual([error]);
  });

  it("onCancel() runs a callback once even if cancel is called again", () => {
    const token = new CancellationToken();
    const cb = vi.fn();
    token.onCancel(cb);
    token.cancel("a");
    token.cancel("b");
    expect(cb).toHaveBeenCalledTimes(1);
    expect(cb).toHaveBeenCalledWith("a");
  });

  it("unregister() removes only that callback, is idempotent, and [Symbol.dispose] does the same", () => {
    const token = new CancellationToken();
    const log: number[] = [];
    const regs = [0, 1, 2, 3, 4].map((i) => token.onCancel(() => log.push(i)));
    regs[0]!.unregister();
    regs[2]![Symbol.dispose]();
    regs[4]!.unregister();
    regs[2]!.unregister(); // idempotent
    regs[0]![Symbol.dispose]();
    token.cancel();
    expect(log).toEqual([1, 3]);
    regs[1]!.unregister(); // after it ran: no-op
  });

  it("unregister() of a later callback from inside an earlier one skips it and keeps the rest", () => {
    const token = new CancellationToken();
    const log: string[] = [];
    // eslint-disable-next-line prefer-const
    let second: { unregister(): void };
    token.onCancel(() => {
      log.push("first");
      second.unregister();
    });
    second = token.onCancel(() => log.push("second"));
    token.onCancel(() => log.push("third"));
    token.onCancel(() => log.push("fourth"));
    token.cancel();
    expect(log).toEqual(["first", "third", "fourth"]);
  });

  it("unregister() of a descendant's callback from a callback earlier in the cancel skips only that one", () => {
    const root = new CancellationToken();
    const child = root.child();
    const log: string[] = [];
    let target: { unregister(): void } | undefined;
    root.onCancel(() => target!.unregister());
    child.onCancel(() => log.push("c1"));
    target = child.onCancel(() => log.push("c2"));
    child.onCancel(() => log.push("c3"));
    root.cancel();
    expect(log).toEqual(["c1", "c3"]);
  });

  it("unregister() costs O(1): 100,000 registrations removed in any order leave nothing to run", () => {
    const token = new CancellationToken();
    let ran = 0;
    const cb = (): void => void ran++;
    const regs = Array.from({ length: 100_000 }, () => token.onCancel(cb));
    // Remove from the middle outwards, then the rest: every order must work.
    for (let i = 50_000; i < 100_000; i++) regs[i]!.unregister();
    for (let i = 0; i < 50_000; i += 2) regs[i]!.unregister();
    token.cancel();
    expect(ran).toBe(25_000);
  });

  it("onCancel() and unregister in a loop on a long-lived token holds no memory", async () => {
    const token = new CancellationToken();
    const keep = token.onCancel(() => {}); // a permanent one, as a server would have
    const before = await heapUsed();
    for (let i = 0; i < 200_000; i++) {
      const payload = new Array(8).fill(i);
      token.onCancel(() => void payload.length).unregister();
    }
    const after = await heapUsed();
    expect(after - before).toBeLessThan(1 << 20);
    keep.unregister();
    expect(token.isCancelled).toBe(false);
  });

  it("onCancel() after a register-then-unregister lets go of the unregistered one, whatever else the token holds", async () => {
    const plain = new CancellationToken();
    const token = new CancellationToken();
    void token.signal; // a token with more than callbacks (its native signal)
    const keep = new CancellationToken();
    void keep.signal;
    keep.onCancel(() => {}); // and one that keeps a permanent callback too
    const refs = ((): Array<WeakRef<CancelRegistration>> => {
      const refs: Array<WeakRef<CancelRegistration>> = [];
      for (const t of [plain, token, keep]) {
        for (let i = 0; i < 100; i++) {
          const registration = t.onCancel(() => {});
          registration.unregister();
          refs.push(new WeakRef(registration));
        }
      }
      return refs;
    })();
    await collectGarbage();
    // Only the last one of each token may still sit in its slot.
    expect(refs.filter((ref) => ref.deref() !== undefined).length).toBeLessThanOrEqual(3);
    let ran = 0;
    for (const t of [plain, token, keep]) {
      t.onCancel(() => ran++);
      t.cancel();
    }
    expect(ran).toBe(3);
  });

  it("onCancel() on a long-lived token lets go of registrations unregistered out of order, not only the last one", async () => {
    const token = new CancellationToken();
    const keep = token.onCancel(() => {}); // a permanent one, as a server would have
    let ran = 0;
    // Two overlapping requests at a time: each unregisters after the next one
    // registered, so the unregistered one is never the last in the list.
    const refs = ((): Array<WeakRef<CancelRegistration>> => {
      const refs: Array<WeakRef<CancelRegistration>> = [];
      let previous = token.onCancel(() => ran++);
      for (let i = 0; i < 1000; i++) {
        const next = token.onCancel(() => ran++);
        previous.unregister();
        refs.push(new WeakRef(previous));
        previous = next;
      }
      return refs;
    })();
    await collectGarbage();
    // A few unregistered ones may wait for the next sweep; not the thousand.
    expect(refs.filter((ref) => ref.deref() !== undefined).length).toBeLessThan(16);
    keep.unregister();
    token.cancel();
    expect(ran).toBe(1); // the one still registered
  });
});

describe("cancelled()", () => {
  it("cancelled() returns one cached promise that resolves with the reason", async () => {
    const token = new CancellationToken();
    const p = token.cancelled();
    expect(token.cancelled()).toBe(p);
    token.cancel("why");
    await expect(p).resolves.toBe("why");
    expect(token.cancelled()).toBe(p);
  });

  it("cancelled() on an already-cancelled token resolves (never rejects) with the reason, even an Error", async () => {
    const error = new Error("reason");
    const token = CancellationToken.alreadyCancelled(error);
    const p = token.cancelled();
    expect(token.cancelled()).toBe(p);
    await expect(p).resolves.toBe(error);
  });
});

describe("throwIfCancelled()", () => {
  it("throwIfCancelled() throws the reason itself once cancelled, and nothing before", () => {
    const token = new CancellationToken();
    expect(() => token.throwIfCancelled()).not.toThrow();
    const reason = { why: "stop" };
    token.cancel(reason);
    let thrown: unknown;
    try {
      token.throwIfCancelled();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBe(reason);
  });

  it("throwIfCancelled() throws the default AbortError DOMException", () => {
    const token = new CancellationToken();
    token.cancel();
    expect(() => token.throwIfCancelled()).toThrow(DOMException);
    try {
      token.throwIfCancelled();
    } catch (error) {
      expect(error).toBe(token.reason);
    }
  });
});

describe("signal", () => {
  it("signal is a real AbortSignal, created once, aborted with the token's reason", () => {
    const token = new CancellationToken();
    const signal = token.signal;
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(token.signal).toBe(signal);
    expect(signal.aborted).toBe(false);
    token.cancel("r");
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe("r");
    expect(() => signal.throwIfAborted()).toThrow();
  });

  it("signal of a cancelled token is already aborted", () => {
    const token = new CancellationToken();
    token.cancel("r");
    expect(token.signal.aborted).toBe(true);
    expect(token.signal.reason).toBe("r");
  });
});

describe("guard()", () => {
  it("guard() cancels the token at scope exit", () => {
    const token = new CancellationToken();
    {
      const guard = token.guard();
      expect(guard).toBeInstanceOf(CancelGuard);
      expect(guard.token).toBe(token);
      guard[Symbol.dispose]();
    }
    expect(token.isCancelled).toBe(true);
    expect((token.reason as DOMException).name).toBe("AbortError");
  });

  it("guard() with `using` cancels when the block throws", () => {
    const token = new CancellationToken();
    expect(() => {
      using _guard = token.guard();
      throw new Error("scope failed");
    }).toThrow("scope failed");
    expect(token.isCancelled).toBe(true);
  });

  it("disarm() returns the token and stops the guard from cancelling; other guards still cancel", () => {
    const token = new CancellationToken();
    const g1 = token.guard();
    const g2 = token.guard();
    expect(g1.disarm()).toBe(token);
    expect(g1.token).toBeNull();
    g1[Symbol.dispose]();
    expect(token.isCancelled).toBe(false);
    expect(() => g1.disarm()).toThrow(new TypeError("Cannot disarm CancelGuard: it was already disarmed or disposed"));
    g2[Symbol.dispose]();
    expect(token.isCancelled).toBe(true);
    g2[Symbol.dispose](); // idempotent
  });

  it("CancelGuard constructor rejects a non-token with a TypeError naming the call and value", () => {
    expect(() => new CancelGuard({} as CancellationToken)).toThrow(
      new TypeError("Cannot create CancelGuard: 'token' must be a CancellationToken, received an object"),
    );
  });
});

describe("[Symbol.dispose]()", () => {
  it("dispose re-parents children in place, so an ancestor's cancel still reaches them in pre-order", () => {
    const root = new CancellationToken();
    const a = root.child();
    const mid = root.child();
    const m1 = mid.child();
    const m2 = mid.child();
    const b = root.child();
    const log: string[] = [];
    for (const [name, t] of [["a", a], ["m1", m1], ["m2", m2], ["b", b]] as const) t.onCancel(() => log.push(name));
    mid.onCancel(() => log.push("mid"));
    mid[Symbol.dispose]();
    root.cancel();
    expect(log).toEqual(["a", "m1", "m2", "b"]);
    expect(mid.isCancelled).toBe(false);
  });

  it("dispose of the first, last and only child keeps the sibling list intact", () => {
    for (const position of ["first", "last", "only"] as const) {
      const root = new CancellationToken();
      const before = position === "first" || position === "only" ? [] : [root.child()];
      const mid = root.child();
      const kids = [mid.child(), mid.child()];
      const after = position === "last" || position === "only" ? [] : [root.child()];
      mid[Symbol.dispose]();
      const extra = root.child();
      const log: CancellationToken[] = [];
      for (const t of [...before, ...kids, ...after, extra]) t.onCancel(() => log.push(t));
      root.cancel();
      expect(log).toEqual([...before, ...kids, ...after, extra]);
    }
  });

  it("cancel() of a parent reaches exactly its live children, in order, after siblings in any positions were cancelled or disposed", () => {
    // Each removal may hit the first, a middle or the last child (or the only
    // one), may be a cancel or a dispose, of a leaf or of a token with
    // children (which a dispose splices in where it was). A second removal
    // and children added in between walk the links the first one rewrote.
    type Removal = "cancel" | "cancel-tree" | "dispose" | "dispose-tree";
    const removals: Removal[] = ["cancel", "cancel-tree", "dispose", "dispose-tree"];
    let cases = 0;
    for (let n = 1; n <= 4; n++) {
      for (const first of removals) {
        for (let i = 0; i < n; i++) {
          for (const second of removals) {
            // The second removal's position, in the list as it is by then.
            for (let j = 0; j < n + 3; j++) {
              const root = new CancellationToken();
              const log: string[] = [];
              const names = new Map<CancellationToken, string>();
              const add = (parent: CancellationToken, name: string): CancellationToken => {
                const token = parent.child();
                names.set(token, name);
                token.onCancel(() => log.push(name));
                return token;
              };
              let live = Array.from({ length: n }, (_, k) => add(root, `c${k}`));
              const gone = new Set<CancellationToken>();
              const remove = (at: number, how: Removal, tag: string): void => {
                const target = live[at]!;
                const kids = how.endsWith("-tree") ? [add(target, `${tag}.k0`), add(target, `${tag}.k1`)] : [];
                if (how.startsWith("cancel")) {
                  target.cancel();
                  live.splice(at, 1);
                } else {
                  target[Symbol.dispose]();
                  gone.add(target);
                  live.splice(at, 1, ...kids);
                }
              };
              remove(i, first, "a");
              live.push(add(root, "x"));
              if (j < live.length) remove(j, second, "b");
              live.push(add(root, "y"));
              log.length = 0;
              root.cancel();
              const where = `n=${n} ${first}@${i} ${second}@${j}`;
              expect(log, where).toEqual(live.map((t) => names.get(t)));
              for (const t of gone) expect(t.isCancelled, where).toBe(false);
              cases++;
            }
          }
        }
      }
    }
    expect(cases).toBe(16 * (1 * 4 + 2 * 5 + 3 * 6 + 4 * 7));
  });

  it("dispose of a root makes its children roots", () => {
    const root = new CancellationToken();
    const c1 = root.child();
    const c2 = root.child();
    root[Symbol.dispose]();
    root.cancel();
    expect(c1.isCancelled || c2.isCancelled).toBe(false);
    c1.cancel();
    expect(c2.isCancelled).toBe(false);
  });

  it("dispose never cancels and is idempotent", () => {
    const parent = new CancellationToken();
    const child = parent.child();
    const cb = vi.fn();
    child.onCancel(cb);
    child[Symbol.dispose]();
    child[Symbol.dispose]();
    expect(child.isCancelled).toBe(false);
    parent.cancel();
    expect(cb).not.toHaveBeenCalled();
    // A disposed token can still be cancelled directly.
    child.cancel("direct");
    expect(cb).toHaveBeenCalledWith("direct");
  });

  it("a long-lived root that had 1,000,000 children created and disposed holds none of them", async () => {
    const root = new CancellationToken();
    const cb = (): void => {};
    const refs: WeakRef<CancellationToken>[] = [];
    // Warm up, so one-time allocations are not counted.
    for (let i = 0; i < 10_000; i++) {
      const c = root.child();
      c.onCancel(cb);
      c[Symbol.dispose]();
    }
    const before = await heapUsed();
    for (let i = 0; i < 1_000_000; i++) {
      const c = root.child();
      const registration = c.onCancel(cb);
      if (i % 100_000 === 0) refs.push(new WeakRef(c));
      if (i % 2 === 0) registration.unregister();
      c[Symbol.dispose]();
    }
    const after = await heapUsed();
    expect(refs.every((r) => r.deref() === undefined)).toBe(true);
    expect(after - before).toBeLessThan(1 << 20);
    // The root still works.
    const last = root.child();
    root.cancel();
    expect(last.isCancelled).toBe(true);
  });

  it("a cancelled child is not held by its parent", async () => {
    const root = new CancellationToken();
    let ref: WeakRef<CancellationToken>;
    (() => {
      const child = root.child();
      child.onCancel(() => {});
      child.child().child();
      child.cancel();
      ref = new WeakRef(child);
    })();
    await collectGarbage();
    expect(ref!.deref()).toBeUndefined();
    expect(root.isCancelled).toBe(false);
  });
});

describe("CancellationToken.from()", () => {
  it("from(signal) follows the signal's abort, with its reason, and removes its listener", () => {
    const controller = new AbortController();
    const token = CancellationToken.from(controller.signal);
    expect(abortListeners(controller.signal)).toBe(1);
    const cb = vi.fn();
    token.onCancel(cb);
    controller.abort("client left");
    expect(token.reason).toBe("client left");
    expect(cb).toHaveBeenCalledWith("client left");
    expect(abortListeners(controller.signal)).toBe(0);
  });

  it("from(signal) removes its listener when the token is cancelled", () => {
    const controller = new AbortController();
    const token = CancellationToken.from(controller.signal);
    token.cancel("mine");
    expect(abortListeners(controller.signal)).toBe(0);
    controller.abort("theirs");
    expect(token.reason).toBe("mine");
  });

  it("from(signal) removes its listener when the token is disposed", () => {
    const controller = new AbortController();
    const token = CancellationToken.from(controller.signal);
    token[Symbol.dispose]();
    expect(abortListeners(controller.signal)).toBe(0);
    controller.abort();
    expect(token.isCancelled).toBe(false);
  });

  it("from(signal) removes its listener when the token is cancelled through an ancestor", () => {
    // A token from(signal) is a root, but a child of it being cancelled with it must release too.
    const controller = new AbortController();
    const token = CancellationToken.from(controller.signal);
    const child = token.child();
    token.cancel();
    expect(child.isCancelled).toBe(true);
    expect(abortListeners(controller.signal)).toBe(0);
  });

  it("from(signal) by many tokens adds one listener to the signal; the last to go removes it", () => {
    const controller = new AbortController();
    const spyAdd = vi.spyOn(controller.signal, "addEventListener");
    const tokens = Array.from({ length: 1000 }, () => CancellationToken.from(controller.signal));
    expect(abortListeners(controller.signal)).toBe(1);
    expect(spyAdd).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 999; i++) {
      if (i % 2) tokens[i]![Symbol.dispose]();
      else tokens[i]!.cancel();
    }
    expect(abortListeners(controller.signal)).toBe(1);
    tokens[999]![Symbol.dispose]();
    expect(abortListeners(controller.signal)).toBe(0);
    // A new follower after that re-subscribes, once.
    const again = CancellationToken.from(controller.signal);
    expect(abortListeners(controller.signal)).toBe(1);
    controller.abort("x");
    expect(again.reason).toBe("x");
    expect(abortListeners(controller.signal)).toBe(0);
    expect(tokens[998]!.isCancelled).toBe(true);
    expect(tokens[997]!.isCancelled).toBe(false);
  });

  it("from(signal) keeps following the signal after another subscriber's unsubscribe of it was called twice", () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const token = CancellationToken.from(controller.signal);
    // A sleep's select branch follows the same signal through the same
    // shared listener; the Selectable protocol makes its unsubscribe idempotent.
    const unsubscribe = sleep(60_000, { signal: controller.signal })[selectable]().subscribe(() => {});
    unsubscribe();
    unsubscribe();
    expect(abortListeners(controller.signal)).toBe(1);
    controller.abort("gone");
    expect(token.reason).toBe("gone");
    expect(abortListeners(controller.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("from(signal) on an aborted signal gives a cancelled token with its reason and adds no listener", () => {
    const signal = AbortSignal.abort("already");
    const spyAdd = vi.spyOn(signal, "addEventListener");
    const token = CancellationToken.from(signal);
    expect(token.isCancelled).toBe(true);
    expect(token.reason).toBe("already");
    expect(spyAdd).not.toHaveBeenCalled();
  });

  it("from(token) and from(token.signal) give a child, with no native listener", () => {
    const parent = new CancellationToken();
    const signal = parent.signal;
    const a = CancellationToken.from(parent);
    const b = CancellationToken.from(signal);
    expect(abortListeners(signal)).toBe(0);
    b.cancel();
    expect(parent.isCancelled).toBe(false);
    parent.cancel("p");
    expect(a.reason).toBe("p");
  });

  it("from() rejects anything but a signal or token, with a TypeError naming the call and the value", () => {
    expect(() => CancellationToken.from({} as AbortSignal)).toThrow(TypeError);
    expect(() => CancellationToken.from({} as AbortSignal)).toThrow(
      "Cannot create CancellationToken.from(): 'source' must be an AbortSignal or a CancellationToken, received an object",
    );
    expect(() => CancellationToken.from(undefined as unknown as AbortSignal)).toThrow(/received undefined/);
    // Duck-typed signals are not accepted.
    expect(() => CancellationToken.from({ aborted: false, addEventListener() {} } as unknown as AbortSignal)).toThrow(TypeError);
  });
});

describe("CancellationToken.any()", () => {
  it("any() is cancelled by the first source, with its reason, and unsubscribes from all sources", () => {
    const a = new AbortController();
    const b = new AbortController();
    const t = new CancellationToken();
    const token = CancellationToken.any([a.signal, t, b.signal]);
    expect(abortListeners(a.signal)).toBe(1);
    expect(abortListeners(b.signal)).toBe(1);
    b.abort("b");
    expect(token.reason).toBe("b");
    expect(abortListeners(a.signal)).toBe(0);
    expect(abortListeners(b.signal)).toBe(0);
    a.abort("a");
    t.cancel("t");
    expect(token.reason).toBe("b");
  });

  it("any() follows tokens and unsubscribes from them when disposed", () => {
    const a = new CancellationToken();
    const b = new CancellationToken();
    const token = CancellationToken.any([a, b]);
    const c = new AbortController();
    const token2 = CancellationToken.any([a, c.signal]);
    token[Symbol.dispose]();
    token2[Symbol.dispose]();
    expect(abortListeners(c.signal)).toBe(0);
    a.cancel("a");
    expect(token.isCancelled).toBe(false);
    expect(token2.isCancelled).toBe(false);
    const token3 = CancellationToken.any([b]);
    b.cancel("b");
    expect(token3.reason).toBe("b");
  });

  it("any() with an already-cancelled source takes the first cancelled one's reason and subscribes to nothing", () => {
    const live = new AbortController();
    const token = CancellationToken.any([live.signal, CancellationToken.alreadyCancelled("t"), AbortSignal.abort("s")]);
    expect(token.reason).toBe("t");
    expect(abortListeners(live.signal)).toBe(0);
  });

  it("any([]) is never cancelled by a source", () => {
    const token = CancellationToken.any([]);
    expect(token.isCancelled).toBe(false);
    token.cancel("own");
    expect(token.reason).toBe("own");
  });

  it("any() accepts any iterable", () => {
    const a = new CancellationToken();
    const token = CancellationToken.any(new Set([a]));
    a.cancel("x");
    expect(token.reason).toBe("x");
  });

  it("any() shares one listener per foreign signal with from() and other any() tokens", () => {
    const c = new AbortController();
    const tokens = [CancellationToken.from(c.signal), CancellationToken.any([c.signal]), CancellationToken.any([c.signal, new CancellationToken()])];
    expect(abortListeners(c.signal)).toBe(1);
    for (const t of tokens) t[Symbol.dispose]();
    expect(abortListeners(c.signal)).toBe(0);
  });

  it("any() rejects a non-iterable or a bad element with a TypeError naming it, and subscribes to nothing", () => {
    const c = new AbortController();
    expect(() => CancellationToken.any(5 as unknown as AbortSignal[])).toThrow(
      "Cannot create CancellationToken.any(): 'sources' must be an iterable of AbortSignals and CancellationTokens, received number 5",
    );
    expect(() => CancellationToken.any(null as unknown as AbortSignal[])).toThrow(
      "Cannot create CancellationToken.any(): 'sources' must be an iterable of AbortSignals and CancellationTokens, received null",
    );
    expect(() => CancellationToken.any(undefined as unknown as AbortSignal[])).toThrow(
      "Cannot create CancellationToken.any(): 'sources' must be an iterable of AbortSignals and CancellationTokens, received undefined",
    );
    expect(() => CancellationToken.any([c.signal, 1 as unknown as AbortSignal])).toThrow(
      "Cannot create CancellationToken.any(): 'sources[1]' must be an AbortSignal or a CancellationToken, received number 1",
    );
    expect(abortListeners(c.signal)).toBe(0);
  });
});

describe("timeout() and withTimeout()", () => {
  it("timeout() cancels after ms with a TimeoutError DOMException, and not before", () => {
    vi.useFakeTimers();
    const token = CancellationToken.timeout(1000);
    vi.advanceTimersByTime(999);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(token.isCancelled).toBe(true);
    expect(token.reason).toBeInstanceOf(DOMException);
    expect(token.reason).toMatchObject({ name: "TimeoutError", message: "The operation was aborted due to timeout" });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("timeout(0) cancels on the next timer turn, not synchronously", () => {
    vi.useFakeTimers();
    const token = CancellationToken.timeout(0);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(token.isCancelled).toBe(true);
  });

  it("timeout() clears its timer when cancelled or disposed first", () => {
    vi.useFakeTimers();
    const a = CancellationToken.timeout(1000);
    const b = CancellationToken.timeout(1000);
    expect(vi.getTimerCount()).toBe(2);
    a.cancel("early");
    b[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5000);
    expect(a.reason).toBe("early");
    expect(b.isCancelled).toBe(false);
  });

  it("timeout() chains delays longer than 2^31-1 ms instead of firing at once", () => {
    vi.useFakeTimers();
    const max = 2 ** 31 - 1;
    const token = CancellationToken.timeout(max + 5000);
    vi.advanceTimersByTime(1);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(max - 1);
    expect(token.isCancelled).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(4999);
    expect(token.isCancelled).toBe(false);
    vi.advanceTimersByTime(1);
    expect((token.reason as DOMException).name).toBe("TimeoutError");
  });

  it("timeout() of several periods of 2^31-1 ms chains every period, and dispose clears the current link", () => {
    vi.useFakeTimers();
    const max = 2 ** 31 - 1;
    const token = CancellationToken.timeout(3 * max);
    vi.advanceTimersByTime(2 * max);
    expect(token.isCancelled).toBe(false);
    token[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(2 * max);
    expect(token.isCancelled).toBe(false);
  });

  it("timeout() unrefs its timer unless keepAlive is set", () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const a = CancellationToken.timeout(60_000);
    const b = CancellationToken.timeout(60_000, { keepAlive: true });
    const c = new CancellationToken().withTimeout(60_000);
    const d = new CancellationToken().withTimeout(60_000, { keepAlive: false });
    const timers = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
    expect(timers.map((t) => t.hasRef())).toEqual([false, true, false, false]);
    for (const t of [a, b, c, d]) t[Symbol.dispose]();
    // Disposed: the timers are cleared (a cleared Node timer can no longer be refreshed into firing).
    expect(a.isCancelled || b.isCancelled || c.isCancelled || d.isCancelled).toBe(false);
  });

  it("withTimeout() keeps the process alive only with keepAlive: true", () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const parent = new CancellationToken();
    const kept = parent.withTimeout(60_000, { keepAlive: true });
    const unrefed = parent.withTimeout(60_000);
    expect(spy.mock.results.map((r) => (r.value as NodeJS.Timeout).hasRef())).toEqual([true, false]);
    kept[Symbol.dispose]();
    unrefed[Symbol.dispose]();
    expect(kept.isCancelled || unrefed.isCancelled).toBe(false);
  });

  it("withTimeout() gives a child cancelled by the timer or by the parent, whichever is first", () => {
    vi.useFakeTimers();
    const parent = new CancellationToken();
    const viaTimer = parent.withTimeout(100);
    const viaParent = parent.withTimeout(10_000);
    vi.advanceTimersByTime(100);
    expect((viaTimer.reason as DOMException).name).toBe("TimeoutError");
    expect(parent.isCancelled).toBe(false);
    parent.cancel("parent");
    expect(viaParent.reason).toBe("parent");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("withTimeout() on a cancelled token is born cancelled and arms no timer", () => {
    vi.useFakeTimers();
    const parent = CancellationToken.alreadyCancelled("p");
    const child = parent.withTimeout(100);
    expect(child.reason).toBe("p");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("withTimeout() child disposed clears its timer and detaches it", () => {
    vi.useFakeTimers();
    const parent = new CancellationToken();
    const child = parent.withTimeout(100);
    child[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
    parent.cancel();
    expect(child.isCancelled).toBe(false);
  });

  it("timeout() and withTimeout() reject bad durations and options before arming anything", () => {
    vi.useFakeTimers();
    const parent = new CancellationToken();
    expect(() => CancellationToken.timeout(-1)).toThrow(RangeError);
    expect(() => CancellationToken.timeout(-1)).toThrow(
      "Cannot create CancellationToken.timeout(): 'ms' must be a finite number >= 0, received number -1",
    );
    expect(() => CancellationToken.timeout(Number.NaN)).toThrow(/received number NaN/);
    expect(() => CancellationToken.timeout(Number.NaN)).toThrow(RangeError);
    expect(() => CancellationToken.timeout(Infinity)).toThrow(RangeError);
    expect(() => CancellationToken.timeout("5" as unknown as number)).toThrow(TypeError);
    expect(() => CancellationToken.timeout("5" as unknown as number)).toThrow(/timeout\(\).*received string "5"/);
    expect(() => CancellationToken.timeout(5, 7 as never)).toThrow(TypeError);
    expect(() => parent.withTimeout(-5)).toThrow("Cannot create token.withTimeout(): 'ms' must be a finite number >= 0, received number -5");
    expect(() => parent.withTimeout(5, null as never)).toThrow(TypeError);
    expect(() => CancellationToken.timeout(5, { keepAlive: 1 } as never)).toThrow(
      "Cannot create CancellationToken.timeout(): 'options.keepAlive' must be a boolean or undefined, received number 1",
    );
    expect(() => parent.withTimeout(5, { keepAlive: "yes" } as never)).toThrow(
      "Cannot create token.withTimeout(): 'options.keepAlive' must be a boolean or undefined, received string \"yes\"",
    );
    expect(vi.getTimerCount()).toBe(0);
    // No child was linked by the failed calls: cancelling the parent runs nothing extra.
    let ran = 0;
    parent.onCancel(() => ran++);
    parent.cancel();
    expect(ran).toBe(1);
  });
});

describe("runUntilCancelled()", () => {
  it("runUntilCancelled() of work whose promise has a throwing then rejects with that error and leaves its child unlinked", async () => {
    const token = new CancellationToken();
    const error = new Error("then threw");
    let child: CancellationToken | undefined;
    const hostile = new Promise<number>(() => {});
    Object.defineProperty(hostile, "then", {
      value: () => {
        throw error;
      },
    });
    const result = token.runUntilCancelled((c) => ((child = c), hostile));
    await expect(result).rejects.toBe(error);
    // Disposed, not cancelled: cancelling the parent no longer reaches it.
    token.cancel("later");
    expect(child!.isCancelled).toBe(false);
  });

  it("runUntilCancelled() resolves with the value when both are ready: the value wins", async () => {
    const token = new CancellationToken();
    const p = token.runUntilCancelled(Promise.resolve(7));
    token.cancel("too late");
    await expect(p).resolves.toBe(7);

    const token2 = new CancellationToken();
    const d = deferred<number>();
    const p2 = token2.runUntilCancelled(d.promise);
    d.resolve(8);
    token2.cancel("too late");
    await expect(p2).resolves.toBe(8);

    const token3 = new CancellationToken();
    const p3 = token3.runUntilCancelled(async () => 9);
    token3.cancel("too late");
    await expect(p3).resolves.toBe(9);
  });

  it("runUntilCancelled() rejects with the work's error", async () => {
    const token = new CancellationToken();
    const error = new Error("work failed");
    await expect(token.runUntilCancelled(Promise.reject(error))).rejects.toBe(error);
    await expect(
      token.runUntilCancelled(() => {
        throw error;
      }),
    ).rejects.toBe(error);
    expect(token.isCancelled).toBe(false);
  });

  it("runUntilCancelled(fn) gives fn a child that is cancelled with the token and disposed when fn settles", async () => {
    const token = new CancellationToken();
    let inner: CancellationToken | undefined;
    const p = token.runUntilCancelled((child) => {
      inner = child;
      return new Promise<never>(() => {});
    });
    expect(inner!.isCancelled).toBe(false);
    token.cancel("stop");
    expect(inner!.reason).toBe("stop");
    await expect(p).rejects.toBe("stop");

    const token2 = new CancellationToken();
    let inner2: CancellationToken | undefined;
    await token2.runUntilCancelled(async (child) => {
      inner2 = child;
      return 1;
    });
    token2.cancel();
    expect(inner2!.isCancelled).toBe(false); // disposed when the work settled, so detached
  });

  it("runUntilCancelled() leaves no callback on the token however it settles", async () => {
    const token = new CancellationToken();
    const refs: WeakRef<object>[] = [];
    const run = async (outcome: "value" | "error" | "throw"): Promise<void> => {
      const marker = {};
      refs.push(new WeakRef(marker));
      await token
        .runUntilCancelled((child) => {
          refs.push(new WeakRef(child));
          if (outcome === "throw") throw marker;
          return outcome === "value" ? Promise.resolve(marker) : Promise.reject(marker);
        })
        .catch(() => {});
    };
    await run("value");
    await run("error");
    await run("throw");
    const cancelledToken = new CancellationToken();
    const pending = cancelledToken.runUntilCancelled(new Promise(() => {}));
    cancelledToken.cancel();
    await pending.catch(() => {});
    await collectGarbage();
    expect(refs.map((r) => r.deref())).toEqual(refs.map(() => undefined));
    // And with many runs on one long-lived token, memory stays flat.
    const before = await heapUsed();
    for (let i = 0; i < 20_000; i++) await token.runUntilCancelled(Promise.resolve(new Array(16)));
    const after = await heapUsed();
    expect(after - before).toBeLessThan(1 << 20);
  });

  it("runUntilCancelled() rejects bad work with a TypeError and registers nothing", () => {
    const token = new CancellationToken();
    expect(() => token.runUntilCancelled(5 as never)).toThrow(
      "Cannot call token.runUntilCancelled(): 'work' must be a promise or a function, received number 5",
    );
    expect(() => token.runUntilCancelled({} as never)).toThrow(TypeError);
    expect(() => CancellationToken.alreadyCancelled().runUntilCancelled(null as never)).toThrow(TypeError);
    let ran = 0;
    token.onCancel(() => ran++);
    token.cancel();
    expect(ran).toBe(1);
  });
});

describe("bad input", () => {
  it("onCancel() rejects a non-function with a TypeError naming the call and value, and registers nothing", () => {
    const token = new CancellationToken();
    expect(() => token.onCancel(42 as never)).toThrow(TypeError);
    expect(() => token.onCancel(42 as never)).toThrow("Cannot register token.onCancel(): 'callback' must be a function, received number 42");
    const cancelled = CancellationToken.alreadyCancelled();
    expect(() => cancelled.onCancel("x" as never)).toThrow(/received string "x"/);
    // Nothing was registered: cancelling reports no error from a non-function.
    return captureUncaught(() => token.cancel()).then((errors) => expect(errors).toEqual([]));
  });
});

// ---------------------------------------------------------------------------
// Inside a cancel callback the whole subtree is already marked cancelled, but
// the native signals of tokens whose callbacks have not run yet have not
// fired. Every factory must see those tokens as cancelled: a token born
// cancelled holds no links (design §1).

describe("factories inside a cancel callback", () => {
  /** Runs `inside(x)` in a callback of `x`'s parent, before `x`'s own signal fires. */
  function duringCancel<T>(inside: (x: CancellationToken) => T): { result: T; x: CancellationToken } {
    const root = new CancellationToken();
    const x = root.child();
    const signal = x.signal; // created before the cancel: it fires after x's callbacks
    let result: T | undefined;
    root.onCancel(() => {
      expect(x.isCancelled).toBe(true);
      expect(signal.aborted).toBe(false);
      result = inside(x);
    });
    root.cancel("stop");
    return { result: result as T, x };
  }

  it.each([
    ["[x.signal, foreign]", (x: CancellationToken, foreign: AbortSignal) => [x.signal, foreign]],
    ["[foreign, x.signal]", (x: CancellationToken, foreign: AbortSignal) => [foreign, x.signal]],
  ])("any(%s) of a cancelling token's signal is born cancelled with its reason and keeps no listener on the foreign signal", (_, sources) => {
    const foreign = new AbortController();
    const { result } = duringCancel((x) => {
      const token = CancellationToken.any(sources(x, foreign.signal));
      expect(token.isCancelled).toBe(true);
      expect(abortListeners(foreign.signal)).toBe(0);
      return token;
    });
    expect(result.reason).toBe("stop");
    expect(abortListeners(foreign.signal)).toBe(0);
    foreign.abort("late");
    expect(result.reason).toBe("stop");
  });

  it("a wait or a select given a cancelling token's signal sees the token cancelled, with its reason", async () => {
    const [, rx] = oneshot<number>();
    const { result } = duringCancel((x) => ({
      recv: rx.recv({ signal: x.signal }),
      select: select({ x: x.signal, never: new CancellationToken() }),
      shutdown: shutdown({ parent: x.signal, signals: [] }),
    }));
    await expect(result.recv).rejects.toBe("stop");
    await expect(result.select).resolves.toEqual({ key: "x", value: "stop" });
    expect(result.shutdown.reason).toBe("stop");
    result.shutdown[Symbol.dispose]();
  });

  it("from() of a cancelling token's signal is born cancelled with its reason", () => {
    const { result } = duringCancel((x) => CancellationToken.from(x.signal));
    expect(result.isCancelled).toBe(true);
    expect(result.reason).toBe("stop");
  });

  it("child() of a cancelling token is born cancelled with its reason and never linked", () => {
    const { result } = duringCancel((x) => x.child());
    expect(result.isCancelled).toBe(true);
    expect(result.reason).toBe("stop");
    // Never linked: disposing it is a no-op that cannot touch the (cancelled) parent.
    result[Symbol.dispose]();
    expect(result.isCancelled).toBe(true);
  });

  it("withTimeout() of a cancelling token is born cancelled and arms no timer", () => {
    vi.useFakeTimers();
    const { result } = duringCancel((x) => x.withTimeout(1_000, { keepAlive: true }));
    expect(result.isCancelled).toBe(true);
    expect(result.reason).toBe("stop");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("timeout() inside a cancel callback is an independent root: live, with its timer until disposed", () => {
    vi.useFakeTimers();
    const { result } = duringCancel(() => CancellationToken.timeout(1_000));
    expect(result.isCancelled).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    result[Symbol.dispose]();
    expect(vi.getTimerCount()).toBe(0);
  });
});
