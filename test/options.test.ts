import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CancellationToken, TaskTracker, adoptToken, deadline, oneshot, select, shareToken, sleep, watch } from "../src/index.js";
import { processSignal, shutdown, uncaughtErrors, watchdog } from "../src/signals/index.js";
import { clusterPrimary, clusterWorker, healthServer, livenessHandler, readinessHandler, serve, type GracefulServer } from "../src/http/index.js";

/** Calls `fn` with a coordinator of its own, shut down (it serves nothing) whatever happens. */
function withGraceful<T>(fn: (graceful: GracefulServer) => T): T {
  const graceful = serve((_req, res) => res.end());
  try {
    return fn(graceful);
  } finally {
    void graceful.shutdown();
  }
}

/*
 * Options objects are strict (design §5, issue 14): an unknown key is a
 * TypeError naming the call, the key and the nearest known option; a value
 * of the wrong type is a TypeError too; both before any state change.
 *
 * The walker: every public function, constructor and method that takes an
 * options object is found in the public entry points by the TypeScript
 * checker (a parameter named `options`/`opts`, or typed `…Options`), and must
 * have a row in the table below, so a new options bag cannot skip the check.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY_POINTS = ["src/index.ts", "src/cancel/index.ts", "src/channels/index.ts", "src/signals/index.ts", "src/http/index.ts"];

interface Row {
  /** The keys the call documents. */
  known: readonly string[];
  /** Calls it with `options`; returns what it returned (nothing is expected to be returned). */
  call: (options: object) => unknown;
  /** A fragment the message must contain to name the call. */
  names: string;
}

const table: Record<string, Row> = {
  "select()": { known: ["biased", "signal"], call: (o) => select({ never: new CancellationToken() }, o), names: "select()" },
  "sleep()": { known: ["ref", "signal"], call: (o) => sleep(1_000, o), names: "sleep()" },
  "deadline()": { known: ["ref", "signal"], call: (o) => deadline(Date.now() + 1_000, o), names: "deadline()" },
  "shutdown()": { known: ["signals", "timeoutMs", "parent", "onSecondSignal"], call: (o) => shutdown(o), names: "shutdown()" },
  "CancellationToken.timeout()": { known: ["keepAlive"], call: (o) => CancellationToken.timeout(1_000, o), names: "CancellationToken.timeout()" },
  "CancellationToken#withTimeout()": {
    known: ["keepAlive"],
    call: (o) => new CancellationToken().withTimeout(1_000, o),
    names: "withTimeout()",
  },
  "TaskTracker#wait()": { known: ["signal"], call: (o) => new TaskTracker().wait(o), names: "wait()" },
  "OneshotSender#closed()": { known: ["signal"], call: (o) => oneshot<number>()[0].closed(o), names: "closed()" },
  "OneshotReceiver#recv()": { known: ["signal"], call: (o) => oneshot<number>()[1].recv(o), names: "recv()" },
  "WatchSender#closed()": { known: ["signal"], call: (o) => watch(0)[0].closed(o), names: "closed()" },
  "WatchReceiver#changed()": { known: ["signal"], call: (o) => watch(0)[1].changed(o), names: "changed()" },
  "WatchReceiver#waitFor()": { known: ["signal"], call: (o) => watch(0)[1].waitFor(() => false, o), names: "waitFor()" },
  "ProcessSignal#recv()": { known: ["signal"], call: (o) => processSignal("SIGUSR2").recv(o), names: "recv()" },
  "watchdog()": { known: ["timeoutMs", "exitCode", "log"], call: (o) => watchdog(new CancellationToken(), o), names: "watchdog()" },
  "uncaughtErrors()": { known: ["events", "onSecondError", "log"], call: (o) => uncaughtErrors(o), names: "uncaughtErrors()" },
  "serve()": {
    known: ["signal", "beforeCloseMs", "idleGraceMs", "drainTimeoutMs", "forceAnswerMs"],
    call: (o) => serve((_req, res) => res.end(), o),
    names: "serve()",
  },
  "readinessHandler()": { known: ["checks", "timeoutMs"], call: (o) => withGraceful((g) => readinessHandler(g, o)), names: "readinessHandler()" },
  "livenessHandler()": { known: ["checks", "timeoutMs"], call: (o) => livenessHandler(o), names: "livenessHandler()" },
  "healthServer()": {
    known: ["readiness", "liveness", "readyPath", "livePath"],
    call: (o) => withGraceful((g) => healthServer(g, o)),
    names: "healthServer()",
  },
  "clusterPrimary()": { known: ["signal", "workers", "drainTimeoutMs", "killAfterMs"], call: (o) => clusterPrimary(o as never), names: "clusterPrimary()" },
  "clusterWorker()": { known: ["signal"], call: (o) => withGraceful((g) => clusterWorker(g, o)), names: "clusterWorker()" },
  "adoptToken()": {
    known: ["keepAlive"],
    call: (o) => {
      const share = shareToken(new CancellationToken());
      try {
        return adoptToken(share.handle, o);
      } finally {
        share[Symbol.dispose]();
      }
    },
    names: "adoptToken()",
  },
};

/** Calls that are held to the rule but whose options the walker does not see as such. */
const extra: Record<string, Row> = {};

/** Every public callable of the entry points that takes an options object, as `fn()`, `Class.method()`, `Class#method()`, `new Class()`. */
function optionTakers(): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (config === undefined) throw new Error("cannot read tsconfig.json");
  const program = ts.createProgram(ENTRY_POINTS.map((file) => join(root, file)), { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const found = new Set<string>();
  // Signatures declared in src/ only: an inherited built-in (Error's `{ cause }`) is not ours.
  const takesOptions = (signature: ts.Signature): boolean =>
    signature.getDeclaration()?.getSourceFile().fileName.startsWith(join(root, "src")) === true &&
    signature.parameters.some((parameter) => {
      const declared = checker.typeToString(checker.getTypeOfSymbol(parameter));
      return /^opt(ion)?s$/i.test(parameter.name) || /Options\b/.test(declared);
    });
  const visit = (name: string, type: ts.Type): void => {
    if (type.getCallSignatures().some(takesOptions)) found.add(`${name}()`);
  };
  for (const file of ENTRY_POINTS) {
    const source = program.getSourceFile(join(root, file))!;
    const module = checker.getSymbolAtLocation(source)!;
    for (const exported of checker.getExportsOfModule(module)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (!(symbol.flags & ts.SymbolFlags.Value)) continue;
      const name = exported.name;
      const staticSide = checker.getTypeOfSymbol(symbol);
      if (symbol.flags & ts.SymbolFlags.Class) {
        if (staticSide.getConstructSignatures().some(takesOptions)) found.add(`new ${name}()`);
        for (const member of staticSide.getProperties()) {
          if (member.name !== "prototype") visit(`${name}.${member.name}`, checker.getTypeOfSymbol(member));
        }
        for (const member of checker.getDeclaredTypeOfSymbol(symbol).getProperties()) {
          visit(`${name}#${member.name}`, checker.getTypeOfSymbol(member));
        }
      } else visit(name, staticSide);
    }
  }
  return [...found].sort();
}

afterEach(() => {
  vi.useRealTimers();
});

describe("options objects", () => {
  it("the walker finds every public call taking options in the table, and nothing stale in it", () => {
    const takers = optionTakers();
    expect(takers.length).toBeGreaterThan(10);
    expect(takers).toEqual(Object.keys(table).sort());
  }, 60_000);

  it.each(Object.entries({ ...table, ...extra }))("%s rejects an unknown option with a TypeError naming the call and the key, before any state change", (_, row) => {
    vi.useFakeTimers();
    const listeners = process.listenerCount("SIGINT") + process.listenerCount("SIGTERM") + process.listenerCount("SIGUSR2");
    let error: unknown;
    try {
      row.call({ zzzUnknown: 1 });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain("unknown option 'zzzUnknown'");
    expect((error as Error).message).toContain(row.names);
    expect((error as Error).message).not.toContain("did you mean");
    // Nothing was started: no timer, no process listener.
    expect(vi.getTimerCount()).toBe(0);
    expect(process.listenerCount("SIGINT") + process.listenerCount("SIGTERM") + process.listenerCount("SIGUSR2")).toBe(listeners);
  });

  it.each(Object.entries({ ...table, ...extra }))("%s names the option a near-miss key probably meant", (_, row) => {
    for (const key of row.known) {
      for (const typo of [key.toUpperCase(), `${key}s`]) {
        if (row.known.includes(typo)) continue;
        expect(() => row.call({ [typo]: undefined })).toThrow(TypeError);
        expect(() => row.call({ [typo]: undefined })).toThrow(`unknown option '${typo}' (did you mean '${key}'?)`);
      }
    }
  });

  it("the issue's examples: a typo is a TypeError that names the option meant", () => {
    expect(() => shutdown({ timeout: 10 } as never)).toThrow("Cannot create shutdown(): unknown option 'timeout' (did you mean 'timeoutMs'?)");
    expect(() => select({ never: new CancellationToken() }, { bias: true } as never)).toThrow(
      "Cannot call select(): unknown option 'bias' (did you mean 'biased'?)",
    );
    expect(() => oneshot<number>()[1].recv({ sigal: AbortSignal.abort() } as never)).toThrow(
      "Cannot call rx.recv(): unknown option 'sigal' (did you mean 'signal'?)",
    );
    expect(() => serve((_req, res) => res.end(), { drainTimeoutMS: 5000 } as never)).toThrow(
      "unknown option 'drainTimeoutMS' (did you mean 'drainTimeoutMs'?)",
    );
  });

  it("an options value of the wrong type is a TypeError naming the option, booleans included, before any state change", () => {
    vi.useFakeTimers();
    const wrong: Array<[() => unknown, RegExp]> = [
      [() => CancellationToken.timeout(10, { keepAlive: "yes" as never }), /'options.keepAlive' must be a boolean or undefined, received string "yes"/],
      [() => new CancellationToken().withTimeout(10, { keepAlive: 1 as never }), /'options.keepAlive' must be a boolean or undefined, received number 1/],
      [() => select({ never: new CancellationToken() }, { biased: "true" as never }), /'options.biased' must be a boolean or undefined/],
      [() => sleep(10, { ref: 0 as never }), /'options.ref' must be a boolean or undefined/],
      [() => deadline(Date.now(), { ref: null as never }), /'options.ref' must be a boolean or undefined/],
      [() => shutdown({ onSecondSignal: null as never }), /'options.onSecondSignal'/],
      [() => shutdown({ timeoutMs: "10" as never }), /'options.timeoutMs'/],
      [() => shutdown({ parent: {} as never }), /'options.parent'/],
      [() => shutdown({ signals: "SIGINT" as never }), /'options.signals'/],
      [() => new TaskTracker().wait({ signal: {} as never }), /'signal'/],
      [() => oneshot<number>()[1].recv({ signal: null as never }), /'signal'/],
      [() => watch(0)[1].changed({ signal: 1 as never }), /'signal'/],
      [() => processSignal("SIGUSR2").recv({ signal: "x" as never }), /'signal'/],
    ];
    const listeners = process.listenerCount("SIGINT") + process.listenerCount("SIGTERM");
    for (const [call, message] of wrong) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(message);
    }
    expect(vi.getTimerCount()).toBe(0);
    expect(process.listenerCount("SIGINT") + process.listenerCount("SIGTERM")).toBe(listeners);
  });

  it("an options argument that is not a plain object (an array, a function, null) is a TypeError", () => {
    for (const options of [[], () => {}, null, 5, "x"]) {
      expect(() => sleep(1, options as never)).toThrow(TypeError);
      expect(() => sleep(1, options as never)).toThrow(/'options' must be an object or undefined/);
    }
  });
});
