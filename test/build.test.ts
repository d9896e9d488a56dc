/*
 * The package as built (scripts/build.js, then scripts/bundle.js): what
 * users install is two bundles and five one-line entry points. These tests
 * read the build the suite made (CANCELKIT_DIST), and run the bundler on
 * small module sets it must refuse.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = process.env["CANCELKIT_DIST"];
if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");

const ENTRIES = [
  ["cancelkit", "index.js", "../src/index.ts"],
  ["cancelkit/cancel", "cancel/index.js", "../src/cancel/index.ts"],
  ["cancelkit/channels", "channels/index.js", "../src/channels/index.ts"],
  ["cancelkit/signals", "signals/index.js", "../src/signals/index.ts"],
  ["cancelkit/http", "http/index.js", "../src/http/index.ts"],
  ["cancelkit/fastify", "fastify/index.js", "../src/fastify/index.ts"],
] as const;

const built = (path: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(dist, path)).href);

/** The relative modules `file` imports or re-exports from. */
function relativeImports(file: string): string[] {
  return [...readFileSync(file, "utf8").matchAll(/^(?:import|export)\s[^;]*?from\s*"(\.[^"]+)"/gm)].map((m) => join(dirname(file), m[1]!));
}

describe("the built package", () => {
  it.each(ENTRIES)("%s exports the same names as its source module", async (_, path, source) => {
    const fromSource = Object.keys(await import(source)).sort();
    expect(fromSource.length).toBeGreaterThan(0);
    expect(Object.keys(await built(path)).sort()).toEqual(fromSource);
  });

  it("shares one class and one function across entry points", async () => {
    const [main, cancel, channels, signals, http, fastify] = await Promise.all(ENTRIES.map(([, path]) => built(path)));
    expect(cancel!["CancellationToken"]).toBe(main!["CancellationToken"]);
    expect(channels!["watch"]).toBe(main!["watch"]);
    expect(signals!["select"]).toBe(main!["select"]);
    expect(signals!["ShutdownTimeoutError"]).toBe(main!["ShutdownTimeoutError"]);
    // A token made by one entry point is a token to the code behind another.
    const token = new (cancel!["CancellationToken"] as new () => { cancel(): void; isCancelled: boolean })();
    expect(typeof http!["serve"]).toBe("function");
    expect(typeof fastify!["cancelkitFastify"]).toBe("function");
    token.cancel();
    expect(token.isCancelled).toBe(true);
  });

  it("is two bundles and six entry points; an entry point loads at most three files of ours", () => {
    const js = readdirSync(dist, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".js"))
      .sort();
    expect(js).toEqual(["cancel/index.js", "cancelkit-node.js", "cancelkit.js", "channels/index.js", "fastify/index.js", "http/index.js", "index.js", "signals/index.js"]);
    const loads = (entry: string): Set<string> => {
      const seen = new Set<string>();
      const queue = [join(dist, entry)];
      while (queue.length > 0) {
        const file = queue.pop()!;
        if (seen.has(file)) continue;
        seen.add(file);
        queue.push(...relativeImports(file));
      }
      return seen;
    };
    expect(loads("index.js").size).toBe(2);
    expect(loads("channels/index.js").size).toBe(2);
    expect(loads("http/index.js").size).toBe(3);
    expect(loads("signals/index.js").size).toBe(3);
    expect(loads("fastify/index.js").size).toBe(3);
  });

  it("loads nothing of fastify at run time: it is an optional peer", () => {
    for (const file of ["cancelkit-node.js", "fastify/index.js"]) {
      expect(readFileSync(join(dist, file), "utf8"), file).not.toMatch(/^\s*import[^;]*from\s*"fastify"|import\(\s*"fastify"/m);
    }
    expect(readFileSync(join(dist, "fastify/fastify-plugin.d.ts"), "utf8")).toMatch(/import type \{[^}]*\} from "fastify";/);
  });

  it("keeps the platform-neutral entry points free of Node modules", () => {
    const neutral = readFileSync(join(dist, "cancelkit.js"), "utf8");
    expect(neutral).not.toMatch(/^import[^;]*from\s*"node:/m);
    expect(neutral).not.toMatch(/^import[^;]*from\s*"\./m);
    for (const path of ["index.js", "cancel/index.js", "channels/index.js"]) {
      expect(relativeImports(join(dist, path))).toEqual([join(dist, "cancelkit.js")]);
    }
    const node = readFileSync(join(dist, "cancelkit-node.js"), "utf8");
    expect(node).toMatch(/^import \{[^}]+\} from "\.\/cancelkit\.js";$/m);
    expect(node).toMatch(/^import diagnosticsChannel from "node:diagnostics_channel";$/m);
  });

  it("maps the bundles back to src/ (stack traces and debuggers)", () => {
    const cases = [
      ["cancelkit.js", "class CancellationToken ", "src/cancel/cancellation-token.ts", "export class CancellationToken "],
      ["cancelkit-node.js", "function serve(", "src/http/serve.ts", "export function serve("],
      ["cancelkit-node.js", "function onRequestStart(", "src/http/http1.ts", "function onRequestStart("],
    ] as const;
    for (const [bundle, generated, source, original] of cases) {
      const lines = readFileSync(join(dist, bundle), "utf8").split("\n");
      const line = lines.findIndex((l) => l.startsWith(generated));
      expect(line, `${generated} in ${bundle}`).toBeGreaterThan(0);
      const map = new SourceMap(JSON.parse(readFileSync(join(dist, `${bundle}.map`), "utf8")));
      // The name right after the keyword: its column moved when `export ` was cut.
      const column = generated.indexOf(" ") + 1;
      const entry = map.findEntry(line, column) as { originalSource: string; originalLine: number; originalColumn: number };
      expect(resolve(dist, entry.originalSource)).toBe(join(root, source));
      const sourceLines = readFileSync(join(root, source), "utf8").split("\n");
      expect(sourceLines[entry.originalLine]!.startsWith(original)).toBe(true);
      expect(entry.originalColumn).toBe(original.indexOf(" ", original.startsWith("export ") ? 7 : 0) + 1);
    }
  });
});

describe("the bundler refuses what one scope would change", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs scripts/bundle.js on `files`, with index.js as the one entry point; its error text, or "" when it bundled. */
  function bundleError(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "cancelkit-bundle-"));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
      writeFileSync(join(dir, `${name}.map`), JSON.stringify({ version: 3, sources: [], names: [], mappings: "" }));
    }
    const script = `import { bundle } from ${JSON.stringify(pathToFileURL(join(root, "scripts", "bundle.js")).href)}; bundle(${JSON.stringify(dir)}, ["index.js"]);`;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    return result.status === 0 ? "" : result.stderr;
  }

  it("bundles modules that follow the rules (the control)", () => {
    expect(bundleError({ "index.js": 'import { one as uno } from "./a.js";\nexport const two = uno + 1;\n', "a.js": "export const one = 1;\n" })).toBe("");
  });

  it("refuses a top-level name declared by two modules", () => {
    const error = bundleError({
      "index.js": 'export { x } from "./a.js";\nexport { y } from "./b.js";\n',
      "a.js": "const helper = 1;\nexport const x = helper;\n",
      "b.js": "const helper = 2;\nexport const y = helper;\n",
    });
    expect(error).toMatch(/top-level name helper is declared by both a\.js and b\.js/);
  });

  it("refuses a module whose global another module would shadow", () => {
    const error = bundleError({
      "index.js": 'export { now } from "./a.js";\nexport { performance } from "./b.js";\n',
      "a.js": "export function now() {\n    return performance.now();\n}\n",
      "b.js": "export const performance = 1;\n",
    });
    expect(error).toMatch(/a\.js uses the global performance, which b\.js declares at top level/);
    // Also as a shorthand property, which is a use of the name too.
    const shorthand = bundleError({
      "index.js": 'export { snapshot } from "./a.js";\nexport { performance } from "./b.js";\n',
      "a.js": "export function snapshot() {\n    return { performance };\n}\n",
      "b.js": "export const performance = 1;\n",
    });
    expect(shorthand).toMatch(/a\.js uses the global performance, which b\.js declares at top level/);
  });

  it("refuses an import cycle", () => {
    const error = bundleError({
      "index.js": 'export { x } from "./a.js";\n',
      "a.js": 'import { y } from "./b.js";\nexport const x = () => y;\n',
      "b.js": 'import { x } from "./a.js";\nexport const y = () => x;\n',
    });
    expect(error).toMatch(/import cycle: index\.js → a\.js → b\.js → a\.js/);
  });

  it("runs as npm run build does, from tsc's output of src/", () => {
    const out = mkdtempSync(join(tmpdir(), "cancelkit-build-"));
    dirs.push(out);
    execFileSync(process.execPath, [join(root, "scripts", "build.js"), "--out", out], { cwd: root, stdio: "pipe" });
    expect(readFileSync(join(out, "cancelkit.js"), "utf8")).toBe(readFileSync(join(dist, "cancelkit.js"), "utf8"));
  });
});
