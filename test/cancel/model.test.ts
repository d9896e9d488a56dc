import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CancellationToken, type CancelRegistration } from "../../src/cancel/index.js";
import { collectGarbage, deferred } from "./helpers.js";

// ---------------------------------------------------------------------------
// A tiny reference model of the token tree: plain nodes with parent pointers
// and ordered child lists, written from design §1, not from the implementation.

interface ModelNode {
  parent: number | null;
  children: number[];
  cancelled: boolean;
  /** The reason's key: a string, or "default" for the shared AbortError. */
  reason: string | undefined;
  /** Which cancel() call marked it, to check that a subtree shares one default reason. */
  cancelId: number;
  /** Live callback ids, in registration order. */
  callbacks: number[];
}

interface Model {
  nodes: ModelNode[];
  /** Callback id -> owning node, for callbacks that can still fire. */
  live: Map<number, number>;
  registrations: number;
  cancels: number;
  /** Callback id -> raw target: it unregisters registration `raw % count` (count at that moment) when it runs. */
  targets: Map<number, number>;
}

interface Real {
  tokens: CancellationToken[];
  registrations: CancelRegistration[];
  /** Callback ids in the order they fired, with the reason they got. */
  log: Array<[number, unknown]>;
}

const pick = (n: number, length: number): number => n % length;

function preorder(model: Model, id: number, out: number[] = []): number[] {
  // Iterative, like the real thing, so deep random chains are fine.
  const stack = [id];
  while (stack.length > 0) {
    const node = stack.pop()!;
    out.push(node);
    const children = model.nodes[node]!.children;
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}

function unlink(model: Model, id: number): void {
  const node = model.nodes[id]!;
  if (node.parent !== null) {
    const siblings = model.nodes[node.parent]!.children;
    siblings.splice(siblings.indexOf(id), 1);
    node.parent = null;
  }
}

/** Removes a callback that has not fired yet from its token. */
function forget(model: Model, cb: number): void {
  const owner = model.live.get(cb);
  if (owner === undefined) return;
  const callbacks = model.nodes[owner]!.callbacks;
  callbacks.splice(callbacks.indexOf(cb), 1);
  model.live.delete(cb);
}

/** The model's side of a callback running: it is spent, and it may unregister its target. */
function fire(model: Model, cb: number, count = model.registrations): void {
  model.live.delete(cb);
  const raw = model.targets.get(cb);
  if (raw !== undefined && count > 0) forget(model, pick(raw, count));
}

function checkAll(model: Model, real: Real): void {
  const firstReason = new Map<number, unknown>();
  model.nodes.forEach((node, i) => {
    const token = real.tokens[i]!;
    expect(token.isCancelled).toBe(node.cancelled);
    if (!node.cancelled) {
      expect(token.reason).toBeUndefined();
      return;
    }
    if (node.reason === "default") {
      expect(token.reason).toBeInstanceOf(DOMException);
      expect((token.reason as DOMException).name).toBe("AbortError");
      // One default reason per cancel() call, shared by the subtree it reached.
      if (!firstReason.has(node.cancelId)) firstReason.set(node.cancelId, token.reason);
      expect(token.reason).toBe(firstReason.get(node.cancelId));
    } else expect(token.reason).toBe(node.reason);
  });
}

class ChildCommand implements fc.Command<Model, Real> {
  constructor(readonly of: number) {}
  check = (): boolean => true;
  run(model: Model, real: Real): void {
    const parentId = pick(this.of, model.nodes.length);
    const parent = model.nodes[parentId]!;
    const id = model.nodes.length;
    real.tokens.push(real.tokens[parentId]!.child());
    model.nodes.push({
      parent: parent.cancelled ? null : parentId,
      children: [],
      cancelled: parent.cancelled,
      reason: parent.reason,
      cancelId: parent.cancelId,
      callbacks: [],
    });
    if (!parent.cancelled) parent.children.push(id);
    checkAll(model, real);
  }
  toString = (): string => `child(${this.of})`;
}

class CancelCommand implements fc.Command<Model, Real> {
  constructor(
    readonly of: number,
    readonly reason: string | undefined,
  ) {}
  check = (): boolean => true;
  run(model: Model, real: Real): void {
    const id = pick(this.of, model.nodes.length);
    const expected: Array<[number, string | undefined]> = [];
    if (!model.nodes[id]!.cancelled) {
      const cancelId = ++model.cancels;
      unlink(model, id);
      const subtree = preorder(model, id);
      for (const member of subtree) {
        const node = model.nodes[member]!;
        node.cancelled = true;
        node.reason = this.reason ?? "default";
        node.cancelId = cancelId;
        node.parent = null;
      }
      for (const member of subtree) {
        const node = model.nodes[member]!;
        for (const cb of [...node.callbacks]) {
          // A callback unregistered by an earlier one in this cancel is skipped.
          if (model.live.get(cb) !== member) continue;
          expected.push([cb, this.reason]);
          fire(model, cb);
        }
        node.callbacks = [];
        node.children = [];
      }
    }
    real.log.length = 0;
    real.tokens[id]!.cancel(this.reason);
    expect(real.log.map(([cb]) => cb)).toEqual(expected.map(([cb]) => cb));
    for (const [, reason] of real.log) {
      if (this.reason === undefined) expect(reason).toBeInstanceOf(DOMException);
      else expect(reason).toBe(this.reason);
    }
    checkAll(model, real);
  }
  toString = (): string => `cancel(${this.of}, ${String(this.reason)})`;
}

class DisposeCommand implements fc.Command<Model, Real> {
  constructor(readonly of: number) {}
  check = (): boolean => true;
  run(model: Model, real: Real): void {
    const id = pick(this.of, model.nodes.length);
    const node = model.nodes[id]!;
    if (!node.cancelled) {
      const parentId = node.parent;
      if (parentId === null) {
        for (const child of node.children) model.nodes[child]!.parent = null;
      } else {
        // tokio moves them to the grandparent; we keep them in this token's place.
        const siblings = model.nodes[parentId]!.children;
        siblings.splice(siblings.indexOf(id), 1, ...node.children);
        for (const child of node.children) model.nodes[child]!.parent = parentId;
        node.parent = null;
      }
      node.children = [];
    }
    real.log.length = 0;
    real.tokens[id]![Symbol.dispose]();
    expect(real.log).toEqual([]); // disposing never cancels
    checkAll(model, real);
  }
  toString = (): string => `dispose(${this.of})`;
}

/** Registers a callback; with `target`, the callback unregisters an earlier registration when it runs. */
class OnCancelCommand implements fc.Command<Model, Real> {
  constructor(
    readonly of: number,
    readonly target: number | null = null,
  ) {}
  check = (): boolean => true;
  run(model: Model, real: Real): void {
    const id = pick(this.of, model.nodes.length);
    const node = model.nodes[id]!;
    const cb = model.registrations++;
    const raw = this.target;
    if (raw !== null) model.targets.set(cb, raw);
    real.log.length = 0;
    real.registrations.push(
      real.tokens[id]!.onCancel((reason) => {
        real.log.push([cb, reason]);
        // Any registration, earlier or later than this one, possibly on another token.
        const count = real.registrations.length;
        if (raw !== null && count > 0) real.registrations[pick(raw, count)]!.unregister();
      }),
    );
    if (node.cancelled) {
      // Runs synchronously, before onCancel returns (so before it is counted).
      expect(real.log.map(([c]) => c)).toEqual([cb]);
      fire(model, cb, cb);
    } else {
      expect(real.log).toEqual([]);
      node.callbacks.push(cb);
      model.live.set(cb, id);
    }
  }
  toString = (): string => `onCancel(${this.of}${this.target === null ? "" : `, unregisters ${this.target}`})`;
}

class UnregisterCommand implements fc.Command<Model, Real> {
  constructor(readonly which: number) {}
  check = (model: Model): boolean => model.registrations > 0;
  run(model: Model, real: Real): void {
    const cb = pick(this.which, model.registrations);
    forget(model, cb);
    real.log.length = 0;
    if (this.which % 2) real.registrations[cb]!.unregister();
    else real.registrations[cb]![Symbol.dispose]();
    expect(real.log).toEqual([]);
  }
  toString = (): string => `unregister(${this.which})`;
}

const commands = [
  fc.nat().map((n) => new ChildCommand(n)),
  fc.nat().map((n) => new ChildCommand(n)), // trees grow more than they shrink
  fc.tuple(fc.nat(), fc.option(fc.constantFrom("a", "b", "c"), { nil: undefined })).map(([n, r]) => new CancelCommand(n, r)),
  fc.nat().map((n) => new DisposeCommand(n)),
  fc.nat().map((n) => new OnCancelCommand(n)),
  fc.nat().map((n) => new OnCancelCommand(n)),
  fc.tuple(fc.nat(), fc.nat()).map(([n, t]) => new OnCancelCommand(n, t)),
  // Crowd a few tokens with callbacks that unregister each other mid-cancel.
  fc.tuple(fc.nat({ max: 2 }), fc.nat({ max: 8 })).map(([n, t]) => new OnCancelCommand(n, t)),
  fc.nat({ max: 2 }).map((n) => new OnCancelCommand(n)),
  fc.nat().map((n) => new UnregisterCommand(n)),
];

describe("CancellationToken model", () => {
  it("child / cancel / dispose / onCancel / unregister agree with the reference tree model", () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 80 }), (cmds) => {
        const setup = (): { model: Model; real: Real } => ({
          model: {
            nodes: [{ parent: null, children: [], cancelled: false, reason: undefined, cancelId: 0, callbacks: [] }],
            live: new Map(),
            registrations: 0,
            cancels: 0,
            targets: new Map(),
          },
          real: { tokens: [new CancellationToken()], registrations: [], log: [] },
        });
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------
// Races, explored with fc.scheduler(): every interleaving of the scheduled steps.

describe("CancellationToken races", () => {
  it("cancel() racing onCancel()/unregister() runs each callback at most once, exactly when it should", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }), fc.boolean(), fc.scheduler(), async (unregisters, viaParent, s) => {
        const parent = new CancellationToken();
        const token = parent.child();
        const events: string[] = [];
        const fired: Array<[number, unknown]> = [];
        const registrations: CancelRegistration[] = [];
        s.schedule(Promise.resolve("cancel")).then(() => {
          events.push("cancel");
          (viaParent ? parent : token).cancel("R");
        });
        unregisters.forEach((unregister, i) => {
          s.schedule(Promise.resolve(`register ${i}`)).then(() => {
            events.push(`register ${i}`);
            registrations[i] = token.onCancel((reason) => fired.push([i, reason]));
            if (unregister) {
              s.schedule(Promise.resolve(`unregister ${i}`)).then(() => {
                events.push(`unregister ${i}`);
                registrations[i]!.unregister();
              });
            }
          });
        });
        await s.waitIdle();

        const cancelAt = events.indexOf("cancel");
        const expected: number[] = [];
        // Registered before the cancel and still registered then: fired during cancel, in registration order.
        const before = events
          .map((e, at) => [e, at] as const)
          .filter(([e, at]) => e.startsWith("register") && at < cancelAt)
          .map(([e]) => Number(e.split(" ")[1]))
          .filter((i) => {
            const unregAt = events.indexOf(`unregister ${i}`);
            return unregAt === -1 || unregAt > cancelAt;
          });
        expected.push(...before);
        // Registered after: fired synchronously at registration, in that order.
        for (const e of events.slice(cancelAt + 1)) if (e.startsWith("register")) expected.push(Number(e.split(" ")[1]));
        expect(fired.map(([i]) => i)).toEqual(expected);
        for (const [, reason] of fired) expect(reason).toBe("R");
      }),
      { numRuns: 200 },
    );
  });

  it("runUntilCancelled() racing cancel() settles once: the value when the work finished first, else the reason; nothing is left registered", async () => {
    const tokens: CancellationToken[] = [];
    const children: WeakRef<CancellationToken>[] = [];
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.scheduler(), async (sameStep, s) => {
        const token = new CancellationToken();
        tokens.push(token); // kept alive: a leftover registration would keep its child alive too
        const work = deferred<number>();
        let calls = 0;
        const running = token.runUntilCancelled((child) => {
          calls++;
          children.push(new WeakRef(child));
          return work.promise;
        });
        let settlements = 0;
        const outcome = running.then(
          (value) => (settlements++, { value }),
          (reason: unknown) => (settlements++, { reason }),
        );
        const order: string[] = [];
        if (sameStep) {
          // Both ready in the same turn: the value wins.
          s.schedule(Promise.resolve("both")).then(() => {
            order.push("resolve", "cancel");
            work.resolve(1);
            token.cancel("R");
          });
        } else {
          s.schedule(Promise.resolve("resolve")).then(() => {
            order.push("resolve");
            work.resolve(1);
          });
          s.schedule(Promise.resolve("cancel")).then(() => {
            order.push("cancel");
            token.cancel("R");
          });
        }
        const result = await s.waitFor(outcome);
        await s.waitIdle();
        await Promise.resolve();
        expect(calls).toBe(1);
        expect(settlements).toBe(1);
        if (order[0] === "resolve") expect(result).toEqual({ value: 1 });
        else expect(result).toEqual({ reason: "R" });
      }),
      { numRuns: 200 },
    );
    await collectGarbage();
    expect(children.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    expect(tokens.length).toBeGreaterThan(0);
  });
});
