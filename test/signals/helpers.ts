/*
 * Test helpers shared by the signals suites (not a test file: vitest only
 * collects *.test.ts). Orderings are scripted with microtask flushes, never
 * with wall-clock sleeps; child processes are always killed in afterEach.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { selectable, type SelectBranch, type Selectable } from "../../src/index.js";
import { flush } from "../support.js";

export const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const fixtures = join(root, "test/signals/fixtures");

export { deferred, flush, stateOf, type PromiseState } from "../support.js";

/** What a promise settled with, after a flush; `pending` when it did not settle. */
export async function outcome<T>(promise: PromiseLike<T>): Promise<{ state: "fulfilled"; value: T } | { state: "rejected"; error: unknown } | { state: "pending" }> {
  let result: { state: "fulfilled"; value: T } | { state: "rejected"; error: unknown } | { state: "pending" } = { state: "pending" };
  promise.then(
    (value) => (result = { state: "fulfilled", value }),
    (error: unknown) => (result = { state: "rejected", error }),
  );
  await flush();
  return result;
}

/**
 * A hand-written `Selectable`: a slot that holds at most one value, counts
 * live subscriptions, polls and commits, and can misbehave on demand.
 */
export class Cell<T> implements Selectable<T> {
  #full = false;
  #value: T | undefined = undefined;
  readonly #wakers = new Set<() => void>();
  /** Subscriptions currently alive. */
  subscriptions = 0;
  /** Every commit ever made (only a winner may commit). */
  commits = 0;
  /** The error `commit()` throws instead of taking the value, if set. */
  failWith: unknown = undefined;

  constructor(...initial: [] | [T]) {
    if (initial.length > 0) this.put(initial[0] as T);
  }

  get isFull(): boolean {
    return this.#full;
  }

  get value(): T | undefined {
    return this.#value;
  }

  /** Stores a value and wakes every subscriber. */
  put(value: T): void {
    this.#full = true;
    this.#value = value;
    this.wakeAll();
  }

  /** Takes the value out from under any select (a competing consumer). */
  steal(): T | undefined {
    const value = this.#value;
    this.#full = false;
    this.#value = undefined;
    return value;
  }

  /** Wakes subscribers without changing anything (a spurious wake). */
  wakeAll(): void {
    for (const wake of Array.from(this.#wakers)) wake();
  }

  [selectable](): SelectBranch<T> {
    return {
      poll: () => this.#full,
      commit: () => {
        this.commits++;
        if (this.failWith !== undefined) throw this.failWith;
        this.#full = false;
        const value = this.#value as T;
        this.#value = undefined;
        return value;
      },
      subscribe: (wake) => {
        const entry = (): void => wake();
        this.#wakers.add(entry);
        this.subscriptions++;
        return () => {
          if (this.#wakers.delete(entry)) this.subscriptions--;
        };
      },
    };
  }
}

export { countedToken } from "../support.js";

// ---------------------------------------------------------------------------
// Child processes

/**
 * The built package the fixtures import: test/global-setup.ts compiles it
 * once per run into a private directory (`CANCELKIT_DIST`).
 */
export function buildPackage(): string {
  const dir = process.env["CANCELKIT_DIST"];
  if (dir === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  distDir = dir;
  return dir;
}

let distDir: string | undefined;

/** Forgets the build (the global setup removes it). */
export function removeBuilds(): void {
  distDir = undefined;
}

/** A running fixture with its output collected line by line. */
export interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  /** Resolves when a line matching `pattern` has been printed (already or later). */
  line(pattern: RegExp | string): Promise<string>;
  /** Resolves with the exit code and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const running = new Set<ChildProcess>();

/** Starts `fixtures/<name>` under the current Node with `args`. Always pair with {@link killChildren}. */
export function startFixture(name: string, args: string[] = []): Child {
  if (distDir === undefined) throw new Error("call buildPackage() in beforeAll first");
  const child = spawn(process.execPath, [join(fixtures, name), ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CANCELKIT_DIST: distDir },
  });
  running.add(child);
  const lines: string[] = [];
  const watchers: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  let buffer = "";
  let errors = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    let index: number;
    while ((index = buffer.indexOf("\n")) >= 0) {
      const text = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      lines.push(text);
      for (const watcher of watchers.splice(0)) {
        if (watcher.test(text)) watcher.resolve(text);
        else watchers.push(watcher);
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (errors += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    process: child,
    lines,
    exited,
    stderr: () => errors,
    line(pattern) {
      const test = (text: string): boolean => (typeof pattern === "string" ? text === pattern : pattern.test(text));
      const found = lines.find(test);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        watchers.push({ test, resolve });
        void exited.then(() => reject(new Error(`exited before printing ${String(pattern)}; printed ${JSON.stringify(lines)}; stderr ${errors}`)));
      });
    },
  };
}

/** Kills every fixture still running and waits for them to exit. */
export async function killChildren(): Promise<void> {
  const waits: Array<Promise<unknown>> = [];
  for (const child of running) {
    waits.push(new Promise((resolve) => child.once("exit", resolve)));
    child.kill("SIGKILL");
  }
  await Promise.all(waits);
  running.clear();
}
