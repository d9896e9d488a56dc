/*
 * processSignal: OS signals as a select source and an async iterable.
 *
 * Invariants:
 * 1. A source has `process` listeners installed exactly while it is *held*:
 *    by a select that waits on it, a pending `recv()`, or an async iterator
 *    that has started and not returned. Holding is counted; the last release
 *    removes the listeners, so Node's default action (exit with
 *    128 + signal number for SIGINT / SIGTERM) comes back.
 * 2. Arrivals are queued per source, one entry per signal name (a burst of
 *    the same signal coalesces into one, as in tokio), and consumed only by a
 *    commit: a select that loses leaves the arrival for the next wait.
 * 3. Names are validated before any side effect.
 */
import { constants } from "node:os";
import type { CancellationToken } from "../cancel/cancellation-token.js";
import { abortable, checkSignal } from "../internal/abort.js";
import { assertOptions, describe, rangeError, typeError } from "../internal/errors.js";
import { selectable, type SelectBranch, type Selectable } from "./selectable.js";

/**
 * A signal name a process can listen for: every `NodeJS.Signals` name except
 * `SIGKILL` and `SIGSTOP` (they cannot be caught) and `SIGBUS`, `SIGFPE`,
 * `SIGILL`, `SIGSEGV` (Node cannot run JavaScript safely after a real one).
 */
export type ProcessSignalName = Exclude<NodeJS.Signals, "SIGKILL" | "SIGSTOP" | "SIGBUS" | "SIGFPE" | "SIGILL" | "SIGSEGV">;

/** Options of {@link ProcessSignal.recv}. */
export interface ProcessSignalRecvOptions {
  /** Aborts the wait: it rejects with the reason, unchanged, and consumes nothing. */
  signal?: AbortSignal | CancellationToken;
}

const UNCATCHABLE = new Set(["SIGKILL", "SIGSTOP"]);
const UNSAFE = new Set(["SIGBUS", "SIGFPE", "SIGILL", "SIGSEGV"]);

/**
 * Validates one signal name: a non-string is a `TypeError`; a string that is
 * not a signal this process can listen for is a `RangeError`. Node's
 * `process.kill(pid, "SIGFOO")` throws a `TypeError` instead; we follow
 * ECMAScript's "right type, value outside the set" rule on purpose, since
 * which names exist depends on the platform (docs/errors.md, "Which of the two").
 * @internal
 */
export function checkSignalName(action: string, name: string, value: unknown): asserts value is ProcessSignalName {
  if (typeof value !== "string") throw typeError(action, name, "a signal name such as \"SIGTERM\"", value);
  if (UNCATCHABLE.has(value)) throw rangeError(action, name, "a signal that can be caught (not SIGKILL or SIGSTOP)", value);
  if (UNSAFE.has(value)) {
    throw rangeError(action, name, "a signal JavaScript can handle (not SIGBUS, SIGFPE, SIGILL or SIGSEGV)", value);
  }
  if (!Object.hasOwn(constants.signals, value)) throw rangeError(action, name, "a signal name known to this platform", value);
}

/**
 * Validates a name or a non-empty list of names; returns them without duplicates.
 * @internal
 */
export function checkSignalNames(action: string, name: string, value: unknown): ProcessSignalName[] {
  if (typeof value === "string") {
    checkSignalName(action, name, value);
    return [value];
  }
  if (!Array.isArray(value)) throw typeError(action, name, "a signal name or an array of signal names", value);
  // An index loop, not forEach: forEach skips holes, which the Set below would
  // turn into `undefined` names and `process.on(undefined)` calls.
  for (let i = 0; i < value.length; i++) checkSignalName(action, `${name}[${i}]`, value[i]);
  return [...new Set(value as ProcessSignalName[])];
}

/**
 * The number of a signal on this platform, for exit codes (128 + number).
 * @internal
 */
export function signalNumber(name: ProcessSignalName): number {
  return constants.signals[name];
}

/** What {@link ProcessSignal.tryRecv} returns. */
export type ProcessSignalTryRecvResult<S extends string> =
  | {
      /** A signal arrived and was taken from the queue. */
      readonly state: "received";
      /** The signal that arrived. */
      readonly signal: S;
    }
  | {
      /** Nothing is queued. */
      readonly state: "empty";
    };

/**
 * A source of OS signal arrivals; made by {@link processSignal}.
 *
 * It listens only while someone waits on it: a select it takes part in, a
 * pending {@link recv}, or a `for await` loop over it (from the first
 * iteration until the loop ends). The rest of the time no listener is
 * installed, so Node's default behaviour applies (SIGINT and SIGTERM exit
 * the process with 128 + signal number).
 *
 * Arrivals while it listens are queued, one entry per signal name: several
 * SIGTERMs before anyone looks coalesce into one, as in tokio. An arrival is
 * consumed only by the wait that takes it, so a select that loses leaves it
 * for the next wait (cancel-safe). Two waits on one source compete for
 * arrivals; give independent consumers their own `processSignal(...)`.
 *
 * #### Windows
 * Node emulates only some signals there: SIGINT (Ctrl+C) and SIGBREAK
 * (Ctrl+Break) arrive from the console, SIGHUP when the console window
 * closes (Windows kills the process about 10 s later); SIGTERM can be
 * listened for but is never delivered, and `process.kill(pid, "SIGTERM")`
 * terminates the target without running listeners.
 *
 * @typeParam S - the signal names this source listens for.
 *
 * @example Reload on SIGHUP until shutdown
 * ```ts
 * import { processSignal } from "cancelkit/signals";
 * for await (const name of processSignal("SIGHUP")) {
 *   console.log(`${name}: reloading configuration`);
 *   await reload(); // another SIGHUP meanwhile is queued, not lost
 * }
 * ```
 */
export class ProcessSignal<S extends ProcessSignalName = ProcessSignalName> implements Selectable<S>, AsyncIterable<S> {
  readonly #names: readonly S[];
  /** Arrived, not yet consumed; at most one entry per name, in arrival order. */
  readonly #queue: S[] = [];
  #holds = 0;
  readonly #waiters = new Set<() => void>();
  readonly #handlers: ReadonlyArray<readonly [S, () => void]>;

  /** @internal Use {@link processSignal}. */
  constructor(names: readonly S[]) {
    this.#names = names;
    this.#handlers = names.map((name) => [name, () => this.#arrive(name)] as const);
  }

  /** The signal names this source listens for. */
  get names(): readonly S[] {
    return this.#names;
  }

  /** `true` while this source has its `process` listeners installed. */
  get isListening(): boolean {
    return this.#holds > 0;
  }

  /**
   * Takes an arrival that is already queued, without waiting:
   * `{ state: "received", signal }` or `{ state: "empty" }`.
   *
   * @example Nothing queued before anyone listened
   * ```ts
   * const hup = processSignal("SIGHUP");
   * console.assert(hup.tryRecv().state === "empty");
   * ```
   */
  tryRecv(): ProcessSignalTryRecvResult<S> {
    const signal = this.#queue.shift();
    return signal === undefined ? { state: "empty" } : { state: "received", signal };
  }

  /**
   * Waits for the next arrival (or takes a queued one) and resolves with its
   * signal name. Listens from the call until it settles.
   *
   * #### Cancellation
   * With `options.signal` aborted before or while waiting, rejects with the
   * reason, unchanged; nothing is consumed and the listener is removed if no
   * one else waits.
   *
   * @param options - see {@link ProcessSignalRecvOptions}.
   * @throws {TypeError} when an option has the wrong type.
   *
   * @example Wait for one signal
   * ```ts
   * const usr2 = processSignal("SIGUSR2");
   * const next = usr2.recv();
   * process.kill(process.pid, "SIGUSR2");
   * console.assert((await next) === "SIGUSR2");
   * ```
   */
  recv(options?: ProcessSignalRecvOptions): Promise<S> {
    assertOptions("call processSignal.recv()", options, ["signal"]);
    const signal = checkSignal("call processSignal.recv()", options?.signal);
    return abortable<S>(signal, (resolve) => {
      const queued = this.#queue.shift();
      if (queued !== undefined) {
        resolve(queued);
        return;
      }
      // Called only on an arrival, which cannot come before #hold returns.
      const release = this.#hold(() => {
        const arrived = this.#queue.shift();
        if (arrived === undefined) return;
        release();
        resolve(arrived);
      });
      return release;
    });
  }

  /**
   * The select branch of this source: ready when an arrival is queued;
   * committing takes it and yields its signal name. Listens while the select
   * waits.
   *
   * @example Stop on SIGTERM unless the work finishes first
   * ```ts
   * const r = await select({ term: processSignal("SIGTERM"), done: work() });
   * if (r.key === "term") console.log(`stopping on ${r.value}`);
   * ```
   */
  [selectable](): SelectBranch<S> {
    return {
      poll: () => this.#queue.length > 0,
      commit: () => this.#queue.shift()!,
      subscribe: (wake) => this.#hold(wake),
    };
  }

  /**
   * Iterates over arrivals, forever. Listening starts with the first
   * `next()` and lasts until the loop ends (`break`, `return`, a throw), so
   * signals arriving while the loop body runs are queued for the next
   * iteration instead of hitting Node's default action.
   *
   * #### Cancellation
   * End the loop (`break`) to stop listening; the pending `next()`, if any,
   * resolves `{ done: true }`.
   *
   * @example Handle signals until SIGUSR2
   * ```ts
   * for await (const name of processSignal(["SIGUSR1", "SIGUSR2"])) {
   *   if (name === "SIGUSR2") break;
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<S, undefined> {
    let release: (() => void) | null = null;
    let finished = false;
    const pending: Array<(result: IteratorResult<S, undefined>) => void> = [];
    const deliver = (): void => {
      while (pending.length > 0 && this.#queue.length > 0) pending.shift()!({ value: this.#queue.shift()!, done: false });
    };
    return {
      next: () => {
        if (finished) return Promise.resolve({ value: undefined, done: true });
        release ??= this.#hold(deliver);
        return new Promise((resolve) => {
          pending.push(resolve);
          deliver();
        });
      },
      return: () => {
        finished = true;
        // Idempotent: a second return() releases nothing more.
        release?.();
        for (const resolve of pending.splice(0)) resolve({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #arrive(name: S): void {
    if (!this.#queue.includes(name)) this.#queue.push(name);
    for (const waiter of Array.from(this.#waiters)) waiter();
  }

  /** Listens until the returned (idempotent) release is called; `wake` runs on every arrival. */
  #hold(wake: () => void): () => void {
    const entry = (): void => wake();
    this.#waiters.add(entry);
    if (this.#holds++ === 0) for (const [name, handler] of this.#handlers) process.on(name, handler);
    return () => {
      if (!this.#waiters.delete(entry)) return;
      if (--this.#holds === 0) for (const [name, handler] of this.#handlers) process.off(name, handler);
    };
  }
}

/**
 * Creates a source of OS signal arrivals to race in `select`, await with
 * `recv()`, or iterate with `for await`.
 *
 * Unlike tokio's `signal()`, which keeps its handler for the life of the
 * process, the source listens only while someone waits on it, so Node's
 * default action (exit) comes back as soon as nobody does. See
 * {@link ProcessSignal} for queueing and Windows notes.
 *
 * @param signals - a signal name, or a non-empty array of them.
 * @returns a new source; every call gives an independent one.
 * @throws {TypeError} when `signals` is not a string or an array of strings, or is empty.
 * @throws {RangeError} (not Node's `TypeError`: see docs/errors.md) for an
 *   unknown name (`"SIGFOO"`), one that cannot be
 *   caught (`"SIGKILL"`, `"SIGSTOP"`), or one JavaScript cannot safely handle
 *   (`"SIGSEGV"`, `"SIGBUS"`, `"SIGFPE"`, `"SIGILL"`).
 *
 * @example Ctrl+C or SIGTERM, whichever comes first
 * ```ts
 * import { processSignal, select } from "cancelkit/signals";
 * const r = await select({ stop: processSignal(["SIGINT", "SIGTERM"]), done: server.closed });
 * if (r.key === "stop") console.log(`received ${r.value}`);
 * ```
 */
export function processSignal<const S extends ProcessSignalName>(signals: S | readonly S[]): ProcessSignal<S> {
  const names = checkSignalNames("create processSignal()", "signals", signals) as S[];
  if (names.length === 0) {
    throw new TypeError(`Cannot create processSignal(): 'signals' must name at least one signal, received ${describe(signals)}`);
  }
  return new ProcessSignal(names);
}
