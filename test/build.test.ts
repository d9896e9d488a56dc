/*
 * The package as built (scripts/build.js: tsc's declarations, rolldown's
 * bundles): what users install is two bundles and five entry points that
 * only re-export. These tests read the build the suite made (CANCELKIT_DIST).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { SourceMap } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

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
    // An entry point holds no code: one re-export per bundle it draws from
    // (signals/index.js draws from both, as an import and an export).
    for (const [, path] of ENTRIES) {
      const statements = readFileSync(join(dist, path), "utf8").trim().split("\n");
      expect(statements.length, path).toBeLessThanOrEqual(3);
      for (const statement of statements) expect(statement, path).toMatch(/^(?:export|import) \{[^}]*\}(?: from "[^"]+")?;$/);
    }
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
    // Code only: a doc comment may show a worker's require() (shareToken's example).
    const code = neutral.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    expect(code).not.toMatch(/\bimport\s*\(|\brequire\s*\(/);
    for (const path of ["index.js", "cancel/index.js", "channels/index.js"]) {
      expect(relativeImports(join(dist, path))).toEqual([join(dist, "cancelkit.js")]);
    }
    const node = readFileSync(join(dist, "cancelkit-node.js"), "utf8");
    expect(node).toMatch(/^import \{[^}]+\} from "\.\/cancelkit\.js";$/m);
    expect(node).toMatch(/^import diagnosticsChannel from "node:diagnostics_channel";$/m);
  });

  it("maps the bundles back to src/, with the sources inside the maps (src/ is not shipped)", () => {
    const cases = [
      ["cancelkit.js", "class CancellationToken ", "src/cancel/cancellation-token.ts", "export class CancellationToken "],
      ["cancelkit-node.js", "function serve(", "src/http/serve.ts", "export function serve("],
      ["cancelkit-node.js", "function onRequestStart(", "src/http/http1.ts", "function onRequestStart("],
    ] as const;
    for (const [bundle, generated, source, original] of cases) {
      const lines = readFileSync(join(dist, bundle), "utf8").split("\n");
      const line = lines.findIndex((l) => l.includes(generated));
      expect(line, `${generated} in ${bundle}`).toBeGreaterThan(0);
      const map = new SourceMap(JSON.parse(readFileSync(join(dist, `${bundle}.map`), "utf8")));
      // The name right after the keyword.
      const column = lines[line]!.indexOf(generated) + generated.indexOf(" ") + 1;
      const entry = map.findEntry(line, column) as { originalSource: string; originalLine: number; originalColumn: number };
      // Sources are named as seen from dist/, wherever the build was written.
      expect(resolve(root, "dist", entry.originalSource)).toBe(join(root, source));
      const sourceLines = readFileSync(join(root, source), "utf8").split("\n");
      expect(sourceLines[entry.originalLine]!.startsWith(original)).toBe(true);
      expect(entry.originalColumn).toBe(original.indexOf(" ", original.startsWith("export ") ? 7 : 0) + 1);
    }
  });

  it("ships a map only beside a bundle, and every map carries each source's text", () => {
    const maps = readdirSync(dist, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".map"))
      .sort();
    expect(maps).toEqual(["cancelkit-node.js.map", "cancelkit.js.map"]);
    for (const file of maps) {
      const payload = JSON.parse(readFileSync(join(dist, file), "utf8")) as { sources: string[]; sourcesContent?: string[] };
      expect(payload.sources.length, file).toBeGreaterThan(3);
      payload.sources.forEach((source, i) => {
        expect(source, file).toMatch(/^\.\.\/src\/[a-z-]+\/[a-z0-9-]+\.ts$/);
        expect(payload.sourcesContent?.[i], `${file}: ${source}`).toBe(readFileSync(resolve(root, "dist", source), "utf8"));
      });
    }
    // The bundles point at their maps; the declarations at nothing.
    expect(readFileSync(join(dist, "cancelkit.js"), "utf8")).toMatch(/\n\/\/# sourceMappingURL=cancelkit\.js\.map\n?$/);
    for (const file of readdirSync(dist, { recursive: true }).map(String).filter((f) => f.endsWith(".d.ts"))) {
      expect(readFileSync(join(dist, file), "utf8"), file).not.toMatch(/sourceMappingURL/);
    }
  });

  it.each(ENTRIES)("%s: every exported class and function keeps its own name (no bundler rename shows)", async (_, path) => {
    const module = await built(path);
    for (const [name, value] of Object.entries(module)) {
      if (typeof value === "function") expect(value.name, name).toBe(name);
    }
  });

  it("is what npm run build makes, byte for byte, wherever it is written", () => {
    const out = mkdtempSync(join(tmpdir(), "cancelkit-build-"));
    try {
      execFileSync(process.execPath, [join(root, "scripts", "build.js"), "--out", out], { cwd: root, stdio: "pipe" });
      for (const file of ["cancelkit.js", "cancelkit.js.map", "cancelkit-node.js", "cancelkit-node.js.map", "signals/index.js", "http/index.d.ts"]) {
        expect(readFileSync(join(out, file), "utf8"), file).toBe(readFileSync(join(dist, file), "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
