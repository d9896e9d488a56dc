/*
 * A fake clock that fakes timers but not `performance` cannot drive the
 * idle grace (idle time is read on performance.now()): serve() says so
 * with a warning instead of waiting silently (docs/testing.md).
 */
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { serve } from "../../src/http/index.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("serve() on a half-faked clock", () => {
  it("serve() warns once (CANCELKIT_FAKE_CLOCK) when its idle sweep runs on fake timers while performance.now() stays real", async () => {
    const server = http.createServer((_req, res) => res.end("ok"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as net.AddressInfo).port;
    const socket = net.connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await once(socket, "data");
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => void warnings.push(warning.code ?? warning.name);
    process.on("warning", onWarning);
    try {
      // Timers faked, performance left real: the mistake under test.
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
      const graceful = serve(server, { idleGraceMs: 100, drainTimeoutMs: 60_000 });
      const done = graceful.shutdown();
      vi.advanceTimersByTime(5_000); // 400 sweeps of 12 ms on the fake clock
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((code) => code === "CANCELKIT_FAKE_CLOCK")).toEqual(["CANCELKIT_FAKE_CLOCK"]);
      // The connection never became idle on the real clock's few milliseconds.
      expect(socket.readableEnded).toBe(false);
      vi.useRealTimers();
      socket.destroy();
      await graceful.force();
      await done;
    } finally {
      process.off("warning", onWarning);
      socket.destroy();
      server.close();
    }
  });
});
