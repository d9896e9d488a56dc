import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

/*
 * A child process holding only a pending timeout token must exit on its own
 * (the timer is unref()ed, like AbortSignal.timeout); with keepAlive it must
 * not. The child imports the build test/global-setup.ts made.
 */
const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, "fixtures", "pending-timeout.mjs");
const SAFETY_MS = 20_000;

let entry: string;
const children = new Set<ChildProcess>();

beforeAll(() => {
  // test/global-setup.ts builds the package once per run into a private directory.
  const dist = process.env["CANCELKIT_DIST"];
  if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  entry = pathToFileURL(join(dist, "cancel", "index.js")).href;
});

afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

interface Run {
  child: ChildProcess;
  stdout: () => string;
  /** Resolves with the exit code and signal; rejects after SAFETY_MS, killing the child. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stdout contains `text`. */
  printed: (text: string) => Promise<void>;
}

function run(mode: string): Run {
  const child = spawn(process.execPath, [fixture, entry, mode], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  let err = "";
  const watchers: Array<() => void> = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of watchers) w();
  });
  child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const safety = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child (${mode}) did not exit within ${SAFETY_MS} ms; stdout: ${out}; stderr: ${err}`));
    }, SAFETY_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(safety);
      children.delete(child);
      if (code !== 0 && signal === null) reject(new Error(`child (${mode}) failed with ${code}: ${err}`));
      else resolve({ code, signal });
    });
  });
  const printed = (text: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (out.includes(text)) resolve();
      };
      watchers.push(check);
      check();
      exited.then(() => (out.includes(text) ? resolve() : reject(new Error(`child exited without printing ${text}: ${out}`))), reject);
    });
  return { child, stdout: () => out, exited, printed };
}

describe("timeout timers are unref()ed", () => {
  it("a process holding only a pending CancellationToken.timeout(60_000) exits on its own with code 0", async () => {
    const r = run("timeout");
    await expect(r.exited).resolves.toEqual({ code: 0, signal: null });
    // It exited because the loop ran dry, not because the token fired or the probe ran.
    expect(r.stdout()).toBe("ready\nbeforeExit\n");
  });

  it("a process holding only a pending withTimeout(60_000) child exits on its own", async () => {
    const r = run("with-timeout");
    await expect(r.exited).resolves.toEqual({ code: 0, signal: null });
    expect(r.stdout()).toBe("ready\nbeforeExit\n");
  });

  it("a chained timeout longer than 2^31-1 ms is unref()ed too", async () => {
    const r = run("long-timeout");
    await expect(r.exited).resolves.toEqual({ code: 0, signal: null });
    expect(r.stdout()).toBe("ready\nbeforeExit\n");
  });

  it("timeout(60_000, { keepAlive: true }) keeps the process alive until it is killed", async () => {
    const r = run("timeout-keepalive");
    // The unref()ed probe only fires while something else holds the loop open: the token's timer.
    await r.printed("still alive");
    expect(r.child.exitCode).toBeNull();
    r.child.kill("SIGTERM");
    await expect(r.exited).resolves.toEqual({ code: null, signal: "SIGTERM" });
    expect(r.stdout()).toBe("ready\nstill alive\n");
  });
});
