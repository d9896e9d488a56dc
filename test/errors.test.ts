import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as root from "../src/index.js";
import * as cancel from "../src/cancel/index.js";
import * as channels from "../src/channels/index.js";
import * as signals from "../src/signals/index.js";
import * as http from "../src/http/index.js";

const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");

// Every error class exported from any entry point.
const classes = [
  ...new Map(
    [root, cancel, channels, signals, http]
      .flatMap((module) => Object.entries(module))
      .filter(([, value]) => typeof value === "function" && value.prototype instanceof root.CancelkitError),
  ),
] as Array<[string, new (...args: never[]) => root.CancelkitError]>;

function instantiate(Class: new (...args: never[]) => root.CancelkitError): root.CancelkitError {
  // Each constructor takes its data first; the values only need to be valid.
  return new (Class as unknown as new (...args: unknown[]) => root.CancelkitError)(1000, "message");
}

describe("docs/errors.md", () => {
  it("lists at least the error classes the contract names", () => {
    expect(classes.map(([name]) => name)).toEqual(expect.arrayContaining(["ChannelClosedError", "ShutdownTimeoutError"]));
  });

  it.each(classes)("documents %s with its code", (name, Class) => {
    const error = instantiate(Class);
    expect(error.name).toBe(name);
    expect(error.code).toMatch(/^CANCELKIT_ERR_[A-Z_]+$/);
    expect(doc).toContain(`| \`${error.code}\` | \`${name}\` |`);
  });

  it("mentions no code that does not exist", () => {
    const documented = new Set(doc.match(/CANCELKIT_ERR_[A-Z_]+/g));
    const existing = new Set<string>(classes.map(([, Class]) => instantiate(Class).code));
    expect([...documented].filter((code) => !existing.has(code))).toEqual([]);
  });
});

describe("error guards", () => {
  it("isChannelClosedError() recognises errors by code, across copies of the library", () => {
    expect(root.isChannelClosedError(new root.ChannelClosedError())).toBe(true);
    expect(root.isChannelClosedError({ code: "CANCELKIT_ERR_CHANNEL_CLOSED" })).toBe(true);
    expect(root.isChannelClosedError(new Error("closed"))).toBe(false);
    expect(root.isChannelClosedError(null)).toBe(false);
  });

  it("isShutdownTimeoutError() recognises errors by code", () => {
    expect(root.isShutdownTimeoutError(new root.ShutdownTimeoutError(5))).toBe(true);
    expect(root.isShutdownTimeoutError(new root.ChannelClosedError())).toBe(false);
  });

  it("ChannelClosedError carries the undelivered value", () => {
    const error = new root.ChannelClosedError("Cannot send: closed", 42);
    expect(error.value).toBe(42);
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe("Cannot send: closed");
  });

  it("ShutdownTimeoutError carries the deadline and says it in the message", () => {
    const error = new root.ShutdownTimeoutError(30_000);
    expect(error.timeoutMs).toBe(30_000);
    expect(error.message).toContain("30000 ms");
  });
});
