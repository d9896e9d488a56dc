import { describe, expect, it } from "vitest";

/*
 * The public surface of every entry point. A change here is a deliberate
 * API change: update the list, the docs and the CHANGELOG together.
 */
const surface: Record<string, string[]> = {
  "../src/index.js": [
    "CancelGuard", "CancelkitError", "CancellationToken", "ChannelClosedError", "OneshotReceiver", "OneshotSender",
    "ShutdownTimeoutError", "Sleep", "TaskTracker", "WatchReceiver", "WatchSender", "deadline", "isChannelClosedError",
    "isShutdownTimeoutError", "oneshot", "select", "selectable", "sleep", "watch",
    "SharedToken", "TokenShare", "adoptToken", "shareToken",
  ],
  "../src/cancel/index.js": [
    "CancelGuard", "CancellationToken", "TaskTracker", "SharedToken", "TokenShare", "adoptToken", "shareToken",
  ],
  "../src/channels/index.js": [
    "ChannelClosedError", "OneshotReceiver", "OneshotSender", "WatchReceiver", "WatchSender", "isChannelClosedError",
    "oneshot", "watch",
  ],
  "../src/signals/index.js": [
    "ProcessSignal", "ShutdownTimeoutError", "SignalReceivedError", "Sleep", "deadline", "isShutdownTimeoutError",
    "isSignalReceivedError", "processSignal", "select", "selectable", "shutdown", "sleep",
    "UncaughtError", "isUncaughtError", "uncaughtErrors", "watchdog",
  ],
  "../src/http/index.js": ["drainingToken", "requestToken", "serve", "healthServer", "livenessHandler", "readinessHandler", "clusterPrimary", "clusterWorker"],
  "../src/fastify/index.js": ["cancelkitFastify"],
};

describe("public surface", () => {
  it.each(Object.entries(surface))("%s exports exactly the documented names", async (entry, names) => {
    const module = (await import(entry)) as Record<string, unknown>;
    expect(Object.keys(module).sort()).toEqual([...names].sort());
  });

  it("every entry shares one class per concept (no duplicate copies)", async () => {
    const root = await import("../src/index.js");
    const signals = await import("../src/signals/index.js");
    const channels = await import("../src/channels/index.js");
    const cancel = await import("../src/cancel/index.js");
    expect(signals.select).toBe(root.select);
    expect(channels.oneshot).toBe(root.oneshot);
    expect(cancel.CancellationToken).toBe(root.CancellationToken);
    expect(signals.selectable).toBe(Symbol.for("cancelkit.selectable"));
  });
});
