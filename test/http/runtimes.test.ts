/*
 * serve() on every runtime the README names for cancelkit/http's servers:
 * Node (this one), Deno and Bun, each running the same fixture against the
 * built package. Deno and Bun are devDependencies (their npm packages carry
 * the binaries), so `npm ci` installs them; a runtime whose binary is
 * missing is skipped with a printed note.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const fixture = join(import.meta.dirname, "fixtures", "runtime-drain.mjs");

function binary(name: "bun" | "deno"): string | null {
  const env = process.env[`CANCELKIT_${name.toUpperCase()}`];
  if (env !== undefined) return env;
  // Where `npm ci` puts the devDependencies.
  for (const dir of [join(root, "node_modules", ".bin")]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

const runtimes: Array<{ name: string; command: string | null; args: string[] }> = [
  { name: "node", command: process.execPath, args: [fixture] },
  { name: "deno", command: binary("deno"), args: ["run", "-A", fixture] },
  { name: "bun", command: binary("bun"), args: [fixture] },
];

interface Outcome {
  code: number | null;
  result: Record<string, unknown> | null;
  stderr: string;
}

function run(command: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // The process must exit on its own; this only bounds a failure.
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split("\n").findLast((l) => l.startsWith("{"));
      resolve({ code, result: line === undefined ? null : (JSON.parse(line) as Record<string, unknown>), stderr });
    });
  });
}

describe("serve() on each runtime", () => {
  for (const { name, command, args } of runtimes) {
    if (command === null) {
      it.skip(`${name}: binary not installed (a devDependency: npm ci installs it)`, () => {});
      console.warn(`runtimes.test.ts: ${name} not found in node_modules/.bin; its drain test is skipped`);
      continue;
    }
    it(`serve() on ${name} answers a request in flight with Connection: close, closes every connection and lets the process exit on its own`, async () => {
      const outcome = await run(command, args);
      expect({ code: outcome.code, stderr: outcome.code === 0 ? "" : outcome.stderr }).toEqual({ code: 0, stderr: "" });
      expect(outcome.result).toMatchObject({
        status: 200,
        connection: "close",
        body: "slow",
        state: "closed",
        listening: false,
        completed: 1,
        forced: 0,
        deadlineHit: false,
      });
      // The degraded mode says so, once, where it applies (docs/http.md, "Runtimes").
      expect((outcome.result!["warnings"] as string[]).filter((code) => code === "CANCELKIT_HTTP_DEGRADED")).toEqual(name === "bun" ? ["CANCELKIT_HTTP_DEGRADED"] : []);
    }, 30_000);
  }
});
