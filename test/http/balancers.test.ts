/*
 * Rolling restarts behind real load balancers (issue 17, part 3): three
 * instances draining with serve() are restarted one after another under
 * continuous keep-alive POST load through nginx (upstream keep-alive) and
 * HAProxy (an HTTP check of /healthz, keep-alive to the instances; once more
 * with beforeCloseMs longer than two check intervals). Not one request may
 * fail, and every instance must exit on its own with code 0.
 *
 * nginx and HAProxy are Debian packages that .ci/run installs; without a
 * binary the setup is skipped with a printed note. The same scenario for the
 * peers is bench/http-balancers.bench.mjs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module of the bench harness, shared with the bench
import { haveBalancer, rollingRestart, SETUPS } from "../../bench/http/balancer.mjs";

const fixture = join(import.meta.dirname, "fixtures", "lb-instance.mjs");

function startInstance(port: number, beforeCloseMs: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, String(port), JSON.stringify({ beforeCloseMs })], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      if (chunk.includes("ready")) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`instance on ${port} exited with ${code} before it was ready`)));
  });
}

type Setup = { balancer: "nginx" | "haproxy"; beforeCloseMs: number };

describe("serve() behind a load balancer", () => {
  for (const [name, setup] of Object.entries(SETUPS as Record<string, Setup>)) {
    if (!haveBalancer(setup.balancer)) {
      console.warn(`balancers.test.ts: ${setup.balancer} is not installed (Debian: apt-get install ${setup.balancer}); "${name}" is skipped`);
      it.skip(`${name}: ${setup.balancer} not installed`, () => {});
      continue;
    }
    it(`serve() loses no request when 3 instances restart in turn behind ${name}, and each exits on its own`, async () => {
      const result = await rollingRestart({ balancer: setup.balancer, start: (port: number) => startInstance(port, setup.beforeCloseMs) });
      expect(result.ok).toBeGreaterThan(100);
      expect({ failed: result.failed, statuses: result.statuses, exits: result.exits }).toEqual({ failed: 0, statuses: {}, exits: [0, 0, 0] });
    }, 60_000);
  }
});
