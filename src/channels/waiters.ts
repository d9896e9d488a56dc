/*
 * Pending waits of a channel, shared by oneshot and watch (not exported).
 *
 * Invariants:
 * - A `Waiter` is one pending promise (or one `select` wake-up) linked into
 *   exactly one `WaitList` while it waits: `node.list !== null` iff linked.
 * - A promise waiter settles once, through `settle()`: unlink, drop the abort
 *   subscription, then resolve or reject. A settled waiter is inert, so a late
 *   abort, a late send or a second settle does nothing.
 * - Nothing in this file runs user code. Channels walk their lists and settle
 *   waiters without any callback in between, so a list never changes under a
 *   walk; `select` wake-ups (user code) are collected during the walk and
 *   called after it (`wakeAll`).
 * - The hot path allocates one node and one promise per wait, and no closure:
 *   the promise executor is one shared function.
 */
import { subscribeAbort, type AbortLike } from "../internal/abort.js";

/** Kinds of waiter. */
export const RECV = 0; // oneshot rx.recv()
export const CHANGED = 1; // watch rx.changed()
export const WAIT_FOR = 2; // watch rx.waitFor()
export const CLOSED_WAIT = 3; // tx.closed()
export const WAKER = 4; // a select branch subscription: persistent, calls `wake`

export class WaitList {
  head: Waiter | null = null;
  tail: Waiter | null = null;
}

export class Waiter {
  kind: number;
  /** The receiver a watch wait belongs to (its seen version is updated on delivery). */
  owner: object | null;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  prev: Waiter | null = null;
  next: Waiter | null = null;
  list: WaitList | null = null;
  unsubscribe: (() => void) | null = null;
  /** `waitFor`: the predicate, the version it last evaluated, and whether an evaluation is queued. */
  predicate: ((value: never) => boolean) | null = null;
  after = 0;
  scheduled = false;

  constructor(kind: number, owner: object | null, resolve: (value: unknown) => void, reject: (error: unknown) => void) {
    this.kind = kind;
    this.owner = owner;
    this.resolve = resolve;
    this.reject = reject;
  }
}

function noop(): void {}

export function link(list: WaitList, node: Waiter): void {
  node.list = list;
  const tail = list.tail;
  if (tail === null) list.head = node;
  else {
    tail.next = node;
    node.prev = tail;
  }
  list.tail = node;
}

export function unlink(node: Waiter): void {
  const list = node.list;
  if (list === null) return;
  const { prev, next } = node;
  if (prev === null) list.head = next;
  else prev.next = next;
  if (next === null) list.tail = prev;
  else next.prev = prev;
  node.prev = node.next = null;
  node.list = null;
}

/**
 * Unlinks `node` and drops its abort subscription. Both are no-ops the second
 * time (`unlink` checks, the subscription is dropped once), so a second settle
 * needs no guard: it calls resolve/reject of a settled promise, which does nothing.
 */
function detach(node: Waiter): void {
  unlink(node);
  const unsubscribe = node.unsubscribe;
  if (unsubscribe !== null) {
    node.unsubscribe = null;
    unsubscribe();
  }
}

/** Unlinks `node`, drops its abort subscription and resolves it. No-op once settled. */
export function settleResolve(node: Waiter, value: unknown): void {
  detach(node);
  node.resolve(value);
}

/** Unlinks `node`, drops its abort subscription and rejects it. No-op once settled. */
export function settleReject(node: Waiter, error: unknown): void {
  detach(node);
  node.reject(error);
}

// One shared executor instead of a closure per promise: it runs synchronously
// inside `new Promise`, so the captured functions are read right after (and
// cleared with `release()`, so they do not keep a settled promise alive).
export let capturedResolve: (value: unknown) => void = noop;
export let capturedReject: (error: unknown) => void = noop;
export function capture(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** Forgets the last captured settle functions. */
export function release(): void {
  capturedResolve = capturedReject = noop;
}

/**
 * Creates a pending promise and links its waiter into `list`; returns both.
 * The caller owns the node: it subscribes to an abort itself, if it has to
 * (watch's `waitFor()` does, with its own abort rule).
 */
export function wait<T>(list: WaitList, kind: number, owner: object | null): [Promise<T>, Waiter] {
  const promise = new Promise<unknown>(capture) as Promise<T>;
  const node = new Waiter(kind, owner, capturedResolve, capturedReject);
  capturedResolve = capturedReject = noop;
  link(list, node);
  return [promise, node];
}

/**
 * Creates a pending promise, links its waiter into `list` and, when `signal`
 * is given (and not aborted: the caller checked), subscribes to it so an
 * abort unlinks the waiter and rejects with the reason, unchanged.
 */
export function waitPromise<T>(list: WaitList, kind: number, owner: object | null, signal: AbortLike | undefined): Promise<T> {
  const promise = new Promise<unknown>(capture) as Promise<T>;
  const node = new Waiter(kind, owner, capturedResolve, capturedReject);
  capturedResolve = capturedReject = noop;
  link(list, node);
  if (signal !== undefined) node.unsubscribe = subscribeAbort(signal, (reason) => settleReject(node, reason));
  return promise;
}

/**
 * Links a persistent `select` wake-up into `list`; returns its idempotent
 * unsubscribe. `owner` restricts owner-specific wake-ups (watch `markChanged`).
 */
export function addWaker(list: WaitList, owner: object | null, wake: () => void): () => void {
  const node = new Waiter(WAKER, owner, wake as (value: unknown) => void, noop);
  link(list, node);
  return () => unlink(node);
}

/** Calls the wake-ups collected during a walk, skipping any unsubscribed meanwhile. */
export function wakeAll(wakers: Waiter[]): void {
  for (const node of wakers) {
    if (node.list === null) continue;
    (node.resolve as () => void)();
  }
}

/**
 * Calls the `select` wake-ups in `list`: those of `owner`, or all when
 * `owner` is null. They are collected before any is called, so a wake-up
 * that subscribes or unsubscribes does not disturb the walk. A single
 * subscriber (the common case) is called directly, without collecting.
 */
export function wakeList(list: WaitList | null, owner: object | null): void {
  if (list === null) return;
  const head = list.head;
  if (head === null) return;
  if (head.next === null) {
    if (owner === null || head.owner === owner) (head.resolve as () => void)();
    return;
  }
  const collected: Waiter[] = [];
  for (let node: Waiter | null = head; node !== null; node = node.next) {
    if (owner === null || node.owner === owner) collected.push(node);
  }
  wakeAll(collected);
}
