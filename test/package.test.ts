import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  type: string;
  sideEffects: boolean;
  engines: { node: string };
  dependencies?: Record<string, string>;
  exports: Record<string, { types: string; default: string } | string>;
  files: string[];
};

/** A module's text without comments (doc examples import the package by name). */
function code(file: string): string {
  return readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
}

/** Every module reachable from `entry` through relative imports, with the bare/`node:` specifiers it uses. */
function importGraph(entry: string): { files: Set<string>; external: Set<string> } {
  const files = new Set<string>();
  const external = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = code(file);
    for (const match of source.matchAll(/(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g)) {
      const specifier = (match[1] ?? match[2] ?? match[3])!;
      if (specifier.startsWith(".")) queue.push(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")));
      else external.add(specifier);
    }
  }
  return { files, external };
}

describe("package.json", () => {
  it("has no runtime dependencies", () => {
    expect(pkg.dependencies ?? {}).toEqual({});
  });

  it("is ESM, side-effect free, with an engines floor of Node 20.5", () => {
    expect(pkg.type).toBe("module");
    expect(pkg.sideEffects).toBe(false);
    expect(pkg.engines.node).toBe(">=20.5");
    expect(pkg.files).toContain("dist");
  });

  it("exports the six entry points, types first", () => {
    const entries = Object.keys(pkg.exports).filter((key) => key !== "./package.json");
    expect(entries).toEqual([".", "./cancel", "./channels", "./signals", "./http", "./fastify"]);
    for (const key of entries) {
      const target = pkg.exports[key] as Record<string, string>;
      expect(Object.keys(target)[0]).toBe("types");
    }
  });
});

describe("the fastify entry point", () => {
  it("has fastify as an optional peer dependency, never a runtime one", () => {
    const meta = pkg as unknown as { peerDependencies: Record<string, string>; peerDependenciesMeta: Record<string, { optional?: boolean }> };
    expect(meta.peerDependencies["fastify"]).toBe(">=5");
    expect(meta.peerDependenciesMeta["fastify"]?.optional).toBe(true);
  });

  it("imports fastify for types only, and no other entry point imports it", () => {
    const { files } = importGraph(join(root, "src/fastify/index.ts"));
    for (const module of files) {
      for (const [statement] of code(module).matchAll(/^import[^;]*from\s*"fastify";$/gm)) expect(statement, module).toMatch(/^import type /);
    }
    for (const file of ["src/index.ts", "src/signals/index.ts", "src/http/index.ts"]) {
      expect([...importGraph(join(root, file)).files].some((f) => f.includes("/fastify/")), file).toBe(false);
    }
  });
});

describe("platform-neutral entry points", () => {
  it.each([
    [".", "src/index.ts"],
    ["./cancel", "src/cancel/index.ts"],
    ["./channels", "src/channels/index.ts"],
  ])("%s imports no node: module and no package", (_entry, file) => {
    const { files, external } = importGraph(join(root, file));
    expect(files.size).toBeGreaterThan(0);
    expect([...external]).toEqual([]);
    for (const module of files) {
      // The global `process` is Node-only too.
      expect(code(module), module).not.toMatch(/\bprocess\.(on|once|off|kill|exit|listenerCount|pid)\b/);
    }
  });
});
