/*
 * Readiness as a load balancer sees it: HAProxy's health check takes the
 * server out of rotation during `beforeCloseMs`, before the listener closes;
 * and a readiness check that never settles does not keep the process alive.
 * Each service is a child process running the built package.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

const fixture = fileURLToPath(new URL("./fixtures/health-app.mjs", import.meta.url));
let dist: string;
const children: ChildProcess[] = [];
const dirs: string[] = [];

beforeAll(() => {
  const built = process.env["CANCELKIT_DIST"];
  if (built === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  dist = built;
});

afterEach(async () => {
  await Promise.all(
    children.splice(0).map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function hasHaproxy(): boolean {
  try {
    execFileSync("haproxy", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const haproxy = hasHaproxy();
// Skipped only where it cannot be installed: as root (.ci/run) a missing haproxy fails the test.
const root = process.getuid?.() === 0;
if (!haproxy && !root) {
  console.warn("\n*** health-process.test.ts: haproxy is not installed and we are not root: the HAProxy health-check test is SKIPPED ***\n");
}

interface Service {
  child: ChildProcess;
  port: number;
  /** Every line printed so far, parsed. */
  lines: Array<Record<string, unknown>>;
  /** Resolves with the first line (already printed or later) that `test` accepts. */
  line(test: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startService(env: Record<string, string>): Promise<Service> {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env, CANCELKIT_DIST: dist }, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ test: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }> = [];
  let buffer = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    let index;
    while ((index = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, index)) as Record<string, unknown>;
      buffer = buffer.slice(index + 1);
      lines.push(line);
      for (const waiter of waiters.splice(0)) (waiter.test(line) ? waiter.resolve(line) : waiters.push(waiter));
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const line = (test: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const found = lines.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      waiters.push({ test, resolve });
      void exited.then(() => reject(new Error(`exited; printed ${JSON.stringify(lines)}`)));
    });
  };
  const { port } = (await line((l) => "port" in l)) as { port: number };
  return { child, port, lines, line, exited };
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
      .on("error", reject);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Polls `probe` (bounded) until it returns true. */
async function until(what: string, probe: () => Promise<boolean>, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.runIf(haproxy || root)("readinessHandler() behind HAProxy", () => {
  it("readinessHandler() takes the server out of HAProxy's rotation during beforeCloseMs, before the listener closes", async () => {
    expect(haproxy, "haproxy is not installed (.ci/run installs it)").toBe(true);
    const service = await startService({ CANCELKIT_BEFORE_CLOSE_MS: "3000" });
    const front = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "cancelkit-haproxy-"));
    dirs.push(dir);
    const config = join(dir, "haproxy.cfg");
    writeFileSync(
      config,
      [
        "global",
        "  log stderr format raw local0 err",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 5s",
        "  timeout server 5s",
        "frontend fe",
        `  bind 127.0.0.1:${front}`,
        "  default_backend be",
        "backend be",
        "  option httpchk GET /ready",
        "  http-check expect status 200",
        `  server app 127.0.0.1:${service.port} check inter 100 fall 1 rise 1`,
        "",
      ].join("\n"),
    );
    const proxy = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    children.push(proxy);
    // In rotation: the app answers through HAProxy.
    await until("the app to answer through HAProxy", async () => (await get(front, "/").catch(() => ({ body: "" }))).body === "hello");

    service.child.kill("SIGTERM");
    await service.line((l) => l["phase"] === "stopping");
    // Out of rotation: HAProxy itself answers 503 (no server available)...
    await until("HAProxy to take the server out", async () => {
      const answer = await get(front, "/");
      return answer.status === 503 && answer.body !== "hello";
    });
    // ...while the app still serves (its listener is open, draining has not started).
    expect(service.lines.some((l) => l["phase"] === "draining")).toBe(false);
    expect((await get(service.port, "/")).body).toBe("hello");
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(service.lines.map((l) => l["phase"]).filter(Boolean)).toEqual(["stopping", "draining", "closed"]);
  });
});

describe("readinessHandler() in a process", () => {
  it("readinessHandler() with a check that never settles does not keep the process alive", async () => {
    const service = await startService({ CANCELKIT_HANG_CHECK: "1" });
    const answer = await get(service.port, "/ready");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({ status: "unavailable", checks: { hang: "TimeoutError: The check did not answer within 200 ms" } });
    expect((await get(service.port, "/live")).status).toBe(200);
    service.child.kill("SIGTERM");
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(service.lines.some((l) => "report" in l)).toBe(true);
  });
});
