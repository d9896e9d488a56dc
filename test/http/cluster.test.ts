import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { clusterPrimary, clusterWorker, type ClusterReport } from "../../src/http/index.js";
import { CancellationToken } from "../../src/index.js";
import { agentClient, emptyTally, runLoad } from "./load-clients.js";

/*
 * A real cluster under keep-alive load: a primary with 2 forked workers,
 * each serving with serve(), drained by each trigger. Every request the
 * workers accepted must be answered (0 lost), and every process must exit
 * on its own: nothing calls process.exit().
 */
const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, "fixtures", "cluster-app.mjs");
const SAFETY_MS = 20_000;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  children.clear();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runCluster(trigger: "primary" | "group" | "programmatic"): Promise<void> {
  const dist = process.env["CANCELKIT_DIST"];
  if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  // Its own process group, so the group SIGTERM reaches the cluster and nothing else.
  const child = spawn(process.execPath, [fixture, dist], { stdio: ["pipe", "pipe", "pipe"], detached: true });
  children.add(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    const safety = setTimeout(() => reject(new Error(`cluster (${trigger}) did not exit; stdout: ${out}; stderr: ${err}`)), SAFETY_MS);
    child.on("exit", (code) => {
      clearTimeout(safety);
      resolve(code);
    });
  });
  const ready = await new Promise<{ port: number; pids: number[] }>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready (\d+) ([\d,]+)/.exec(out);
      if (match) resolve({ port: Number(match[1]), pids: match[2]!.split(",").map(Number) });
    });
    void exited.then(() => reject(new Error(`cluster exited before ready: ${err}`)), reject);
  });

  const tally = emptyTally();
  const client = agentClient(ready.port, 16);
  let triggered = false;
  const load = runLoad(client, tally, {
    loops: 16,
    maxPerLoop: 3_000,
    onOk: (ok) => {
      if (ok < 100 || triggered) return;
      triggered = true;
      if (trigger === "primary") process.kill(child.pid!, "SIGTERM");
      else if (trigger === "group") process.kill(-child.pid!, "SIGTERM");
      else child.stdin!.write("drain\n");
    },
  });
  await load;
  await client.close();
  expect(await exited).toBe(0);
  children.delete(child);

  expect(triggered).toBe(true);
  expect({ lost: tally.lost, other: tally.other, non2xx: tally.non2xx, failures: tally.failures }).toEqual({
    lost: 0,
    other: 0,
    non2xx: 0,
    failures: [],
  });
  // Every loop ended at a refusal: the listeners closed, not the bound.
  expect(tally.exhausted).toBe(0);
  const line = /report (.*)/.exec(out);
  expect(line).not.toBeNull();
  const report = JSON.parse(line![1]!) as ClusterReport;
  expect(report.workers).toHaveLength(2);
  for (const worker of report.workers) {
    expect(worker).toMatchObject({ exitCode: 0, signal: null, killed: false });
    expect(worker.report).not.toBeNull();
    expect(worker.report!.connectionsForced).toBe(0);
  }
  expect(report.deadlineHit).toBe(false);
  for (const pid of ready.pids) expect(alive(pid)).toBe(false);
}

describe("clusterPrimary() and clusterWorker() under load", () => {
  it("a SIGTERM to the primary drains every worker with 0 lost, and every process exits on its own", async () => {
    await runCluster("primary");
  });

  it("a SIGTERM to the whole process group drains each worker once with 0 lost, and every process exits on its own", async () => {
    await runCluster("group");
  });

  it("primary.shutdown() drains every worker with 0 lost, and every process exits on its own", async () => {
    await runCluster("programmatic");
  });
});

describe("clusterPrimary() escalation", () => {
  it("a second SIGTERM to the primary forces every worker, and every process exits on its own", async () => {
    const dist = process.env["CANCELKIT_DIST"]!;
    const child = spawn(process.execPath, [fixture, dist], { stdio: ["pipe", "pipe", "pipe"], detached: true });
    children.add(child);
    let out = "";
    const printed = (pattern: RegExp): Promise<RegExpExecArray> =>
      new Promise((resolve, reject) => {
        const look = (): void => {
          const match = pattern.exec(out);
          if (match) resolve(match);
        };
        child.stdout!.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          look();
        });
        child.once("exit", () => reject(new Error(`exited before ${pattern}: ${out}`)));
        look();
      });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const ready = await printed(/ready (\d+) ([\d,]+)/);
    const pids = ready[2]!.split(",").map(Number);
    // A request no handler will ever answer holds its worker's drain open.
    const hung = fetch(`http://127.0.0.1:${ready[1]}/hang`).then(
      () => "answered",
      () => "cut",
    );
    await printed(/hanging/);
    process.kill(child.pid!, "SIGTERM");
    await printed(/draining/);
    process.kill(child.pid!, "SIGTERM");
    expect(await exited).toBe(0);
    children.delete(child);
    expect(await hung).toBe("cut");
    const report = JSON.parse(/report (.*)/.exec(out)![1]!) as ClusterReport;
    expect(report.deadlineHit).toBe(true);
    expect(report.connectionsForced).toBe(1);
    expect(report.workers.every((worker) => worker.exitCode === 0 && !worker.killed)).toBe(true);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});

describe("clusterPrimary() and clusterWorker() misuse", () => {
  it("clusterPrimary() refuses unknown options before forking anything", () => {
    expect(() => clusterPrimary({ signal: new CancellationToken(), worker: 2 } as never)).toThrow(
      "Cannot call clusterPrimary(): unknown option 'worker' (did you mean 'workers'?)",
    );
  });

  it("clusterPrimary() throws a TypeError without a signal", () => {
    expect(() => clusterPrimary({} as never)).toThrow(TypeError);
  });

  it("clusterPrimary() throws a RangeError for a negative or fractional worker count", () => {
    expect(() => clusterPrimary({ signal: new CancellationToken(), workers: -1 })).toThrow(RangeError);
    expect(() => clusterPrimary({ signal: new CancellationToken(), workers: 1.5 })).toThrow(RangeError);
  });

  it("clusterWorker() throws a TypeError outside a cluster worker", () => {
    const fake = { shutdown: () => Promise.resolve(), force: () => Promise.resolve() };
    expect(() => clusterWorker(fake as never)).toThrow("this process is not a cluster worker");
    expect(() => clusterWorker({} as never)).toThrow(TypeError);
  });
});
