/*
 * The lifecycle events cancelkit publishes on node:diagnostics_channel:
 * cancelkit:serve:state, cancelkit:serve:report, cancelkit:shutdown (the
 * watchdog's cancelkit:watchdog is observed in a child process, in
 * test/signals/watchdog.test.ts).
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import * as http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { serve, type ShutdownReport } from "../../src/http/index.js";
import { shutdown, uncaughtErrors, SignalReceivedError } from "../../src/signals/index.js";
import { heldServer, listen, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();
const subscriptions: Array<[string, (message: unknown) => void]> = [];

function record<T>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown): void => void seen.push(message as T);
  subscribe(name, listener);
  subscriptions.push([name, listener]);
  return seen;
}

afterEach(() => {
  for (const [name, listener] of subscriptions.splice(0)) unsubscribe(name, listener);
});

type StateEvent = { servers: readonly http.Server[]; phase: string; state: string };

describe("cancelkit:serve:state", () => {
  it("serve() publishes each phase it enters, in order, with its servers", async () => {
    const events = record<StateEvent>("cancelkit:serve:state");
    const { server, arrived, respond } = heldServer(cleanup);
    const graceful = serve(server, { beforeCloseMs: 1 });
    const port = await listen(server);
    const request = new Promise<void>((resolve, reject) => http.get({ port, host: "127.0.0.1", agent: false }, (res) => res.resume().on("end", resolve)).on("error", reject));
    await arrived;
    const done = graceful.shutdown();
    expect(events.map((e) => e.phase)).toEqual(["stopping"]);
    await graceful.state.waitFor((s) => s === "draining");
    expect(events.map((e) => [e.phase, e.state])).toEqual([["stopping", "serving"], ["draining", "draining"]]);
    respond();
    await request;
    await done;
    expect(events.map((e) => [e.phase, e.state])).toEqual([["stopping", "serving"], ["draining", "draining"], ["closed", "closed"]]);
    expect(events.every((e) => e.servers.length === 1 && e.servers[0] === server)).toBe(true);
  });

  it("serve() publishes the forcing phase when the deadline is moved to now", async () => {
    const events = record<StateEvent>("cancelkit:serve:state");
    const { server, arrived, respond } = heldServer(cleanup);
    const graceful = serve(server, { forceAnswerMs: 0 });
    const port = await listen(server);
    http.get({ port, host: "127.0.0.1", agent: false }).on("error", () => {});
    await arrived;
    await graceful.force();
    respond();
    expect(events.map((e) => e.phase)).toEqual(["stopping", "draining", "forcing", "closed"]);
  });
});

describe("cancelkit:serve:report", () => {
  it("serve() publishes its report once, the object shutdown() resolves", async () => {
    const reports = record<{ servers: readonly unknown[]; report: ShutdownReport }>("cancelkit:serve:report");
    const server = cleanup.add(http.createServer((_req, res) => res.end()));
    const graceful = serve(server);
    await listen(server);
    const report = await graceful.shutdown();
    expect(reports).toHaveLength(1);
    expect(reports[0]!.report).toBe(report);
    expect(reports[0]!.servers).toEqual([server]);
  });
});

describe("cancelkit:shutdown", () => {
  it("shutdown() publishes its source and reason when a signal cancels it", () => {
    const events = record<{ source: string; token: unknown; reason: unknown }>("cancelkit:shutdown");
    const token = shutdown({ signals: ["SIGHUP"] });
    expect(events).toEqual([]);
    process.emit("SIGHUP", "SIGHUP");
    expect(events).toHaveLength(1);
    expect(events[0]!.source).toBe("shutdown");
    expect(events[0]!.token).toBe(token);
    expect(events[0]!.reason).toBeInstanceOf(SignalReceivedError);
    expect(process.listenerCount("SIGHUP")).toBe(0);
  });

  it("uncaughtErrors() publishes with source uncaughtErrors when cancelled", () => {
    const events = record<{ source: string; reason: unknown }>("cancelkit:shutdown");
    const token = uncaughtErrors();
    token.cancel("test");
    expect(events.map((e) => [e.source, e.reason])).toEqual([["uncaughtErrors", "test"]]);
    token[Symbol.dispose]();
  });
});
