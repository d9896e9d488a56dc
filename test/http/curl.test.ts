/*
 * S1 with curl as the client, per protocol (skipped where curl is missing).
 */
import { execFileSync, spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { serve } from "../../src/http/index.js";
import { createServer, latch, listen, type Protocol, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

function hasCurl(): boolean {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const flags: Record<Protocol, string[]> = {
  http: ["--http1.1"],
  https: ["--http1.1", "-k"],
  h2c: ["--http2-prior-knowledge"],
  h2: ["--http2", "-k"],
};

describe.runIf(hasCurl()).each(["http", "https", "h2c", "h2"] as const)("serve() with curl over %s", (protocol) => {
  it("S1: curl's request in flight at shutdown completes", async () => {
    const gate = latch();
    const arrived = latch();
    const server = cleanup.add(
      createServer(protocol, (_req, res) => {
        arrived.release();
        void gate.promise.then(() => res.end("slow"));
      }),
    );
    const graceful = serve(server, { drainTimeoutMs: 10_000 });
    const port = await listen(server);
    const scheme = protocol === "https" || protocol === "h2" ? "https" : "http";
    const curl = spawn("curl", [...flags[protocol], "-s", "-i", "--max-time", "20", `${scheme}://127.0.0.1:${port}/slow`], { stdio: ["ignore", "pipe", "inherit"] });
    cleanup.defer(() => {
      if (curl.exitCode === null) curl.kill("SIGKILL");
    });
    let output = "";
    curl.stdout.setEncoding("utf8");
    curl.stdout.on("data", (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => curl.once("close", (code) => resolve(code)));
    await arrived.promise;
    const done = graceful.shutdown();
    gate.release();
    expect(await exited).toBe(0);
    expect(output).toMatch(protocol.startsWith("h2") ? /^HTTP\/2 200/ : /^HTTP\/1\.1 200/);
    if (!protocol.startsWith("h2")) expect(output.toLowerCase()).toContain("connection: close");
    expect(output.endsWith("slow")).toBe(true);
    expect(await done).toMatchObject({ requestsCompletedWhileDraining: 1, connectionsForced: 0, deadlineHit: false });
  });
});
