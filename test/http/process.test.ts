/*
 * S12: a child process that uses the built package's serve() receives
 * SIGTERM mid-request and exits on its own, before a grace budget.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as http from "node:http";
import * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

const fixture = fileURLToPath(new URL("./fixtures/sigterm-server.mjs", import.meta.url));
/** Past this the child is SIGKILLed and the test fails, like a kubelet would. */
const GRACE_BUDGET_MS = 15_000;
let dist: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  // test/global-setup.ts builds the package once per run into a private directory.
  const built = process.env["CANCELKIT_DIST"];
  if (built === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
  dist = built;
});

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

function lines(child: ChildProcess): AsyncGenerator<Record<string, unknown>> {
  let buffer = "";
  const queue: Array<Record<string, unknown>> = [];
  let wake: (() => void) | null = null;
  let ended = false;
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) !== -1) {
      queue.push(JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>);
      buffer = buffer.slice(newline + 1);
    }
    wake?.();
  });
  child.stdout!.on("end", () => {
    ended = true;
    wake?.();
  });
  return (async function* () {
    for (;;) {
      if (queue.length > 0) yield queue.shift()!;
      else if (ended) return;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  })();
}

describe.each([
  ["a CancellationToken + process.once('SIGTERM')", "0"],
  ["shutdown() from cancelkit/signals", "1"],
])("S12: a served child process using %s", (_name, useSignals) => {
  it("drains on SIGTERM and exits 0 on its own, before the grace budget", async () => {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, CANCELKIT_DIST: dist, CANCELKIT_USE_SIGNALS: useSignals },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    const budget = setTimeout(() => child.kill("SIGKILL"), GRACE_BUDGET_MS);
    try {
      const output = lines(child);
      const { port } = (await output.next()).value as { port: number };
      const agent = new http.Agent({ keepAlive: true });
      const idleAgent = new http.Agent({ keepAlive: true });
      // An idle keep-alive connection, then a slow request in flight at SIGTERM.
      await new Promise<void>((resolve, reject) => http.get({ port, host: "127.0.0.1", agent: idleAgent }, (res) => res.resume().on("end", resolve)).on("error", reject));
      const slow = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) =>
        http.get({ port, host: "127.0.0.1", path: "/slow", agent }, (res) => {
          res.resume().on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
        }).on("error", reject),
      );
      expect((await output.next()).value).toEqual({ arrived: "/slow" });
      child.kill("SIGTERM");
      expect(await slow).toEqual({ status: 200, connection: "close" });
      const { report } = (await output.next()).value as { report: Record<string, unknown> };
      expect(report).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
      expect(await exited).toEqual({ code: 0, signal: null });
      agent.destroy();
      idleAgent.destroy();
    } finally {
      clearTimeout(budget);
    }
  });
});

describe("S12 over HTTP/2: a served child process whose only session is idle", () => {
  it("finishes the drain (GOAWAY, session closed, report resolved) before exiting on its own", async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/h2-idle-server.mjs", import.meta.url))], {
      env: { ...process.env, CANCELKIT_DIST: dist },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const budget = setTimeout(() => child.kill("SIGKILL"), GRACE_BUDGET_MS);
    const session = { current: null as http2.ClientHttp2Session | null };
    try {
      const output = lines(child);
      const { port } = (await output.next()).value as { port: number };
      const client = http2.connect(`http://127.0.0.1:${port}`);
      session.current = client;
      client.on("error", () => {});
      const goaway = new Promise<void>((resolve) => client.once("goaway", () => resolve()));
      // One request, then the session stays open and idle.
      await new Promise<void>((resolve, reject) => {
        const stream = client.request({ ":path": "/" });
        stream.on("error", reject).resume().on("end", resolve);
        stream.end();
      });
      child.kill("SIGTERM");
      await goaway;
      const rest: Array<Record<string, unknown>> = [];
      for await (const line of output) rest.push(line);
      // Before the fix the process exited with the drain pending: no report,
      // state still "draining".
      expect(rest[0]).toMatchObject({ report: { sessionsSentGoaway: 1, connectionsForced: 0, deadlineHit: false } });
      expect(rest[1]).toEqual({ exit: 0, reported: true, state: "closed" });
    } finally {
      clearTimeout(budget);
      session.current?.destroy();
    }
  });
});

describe("what serve() loads", () => {
  /**
   * Node's built-in modules matching `pattern` that a child first loaded
   * after it imported node:http, while it ran `body` (process.moduleLoadList
   * is Node's own record of them; Node 22 and later load TLS and HTTP/2 at
   * startup already, so only what is new counts).
   */
  async function newlyLoaded(pattern: string, body: string): Promise<string[]> {
    const script = `
      import http from "node:http";
      const before = new Set(process.moduleLoadList);
      const { serve } = await import(${JSON.stringify(`${dist}/http/index.js`)});
      ${body}
      const pattern = new RegExp(${JSON.stringify(pattern)});
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => !before.has(m) && pattern.test(m))));
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => (out += chunk));
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    return JSON.parse(out) as string[];
  }

  it("serving plain HTTP loads none of Node's TLS, HTTPS or HTTP/2 modules", async () => {
    const tlsOrH2 = "\\b(tls|https|http2|_tls_wrap)\\b";
    expect(await newlyLoaded(tlsOrH2, "await serve(http.createServer()).shutdown();")).toEqual([]);
    // The check sees a module the child does load.
    expect(await newlyLoaded("\\bdgram\\b", "await serve(http.createServer()).shutdown(); await import('node:dgram');")).toContain("NativeModule dgram");
  });
});
