/*
 * Every code example a user reads is a test (test/docs/extract.ts finds
 * them): each ts block typechecks against the built package, installed in a
 * scratch project as a user would have it (strict, module/moduleResolution
 * nodenext), and the runnable ones run on this Node, with their prose
 * checked by steps given in their directive:
 *
 *   listening          wait until the example listens (every fixed port is
 *                      mapped to an ephemeral loopback one: preload.mjs)
 *   get <path> [code]  an HTTP GET on it answers <code> (default 200)
 *   alive <ms>         the process is still running <ms> from now
 *   kill <SIGNAL>      send it the signal
 *   stdout /re/        stdout matches, now or once it has more output
 *   exit <code>        it exits on its own with <code> (implied: exit 0)
 *
 * A run fails on a console.assert that fails, and is bounded in time; the
 * child is killed whatever happens. test/docs/known-failing.json lists the
 * blocks of files this branch does not own that fail today, with the
 * reason: such a block must still fail (an entry that passes, or that no
 * longer matches its block, fails the run, so the list only shrinks).
 * DOCTEST_REPORT=<file> writes every failing block as a line of JSON.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allBlocks, type DocBlock } from "./extract.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = process.env["CANCELKIT_DIST"];
if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");

interface KnownFailing {
  file: string;
  index: number;
  starts: string;
  reason: string;
}
const known: KnownFailing[] = JSON.parse(readFileSync(join(root, "test", "docs", "known-failing.json"), "utf8")).blocks;
/** Files this branch owns: none of their blocks may be listed as known failing. */
const OWNED = ["README.md", "docs/shutdown.md", "docs/service.md"];

const blocks = allBlocks(root);
const firstLine = (b: DocBlock): string => b.code.split("\n").find((l) => l.trim() !== "")!.trim();
const name = (b: DocBlock): string => `${b.file} block ${b.index} (line ${b.line})`;
const knownFor = (b: DocBlock): KnownFailing | undefined => known.find((k) => k.file === b.file && k.index === b.index);

/** Public names → the entry point a fragment imports them from (the first that exports it). */
function publicNames(): Map<string, string> {
  const names = new Map<string, string>();
  for (const [specifier, file] of [
    ["cancelkit", "src/index.ts"],
    ["cancelkit/signals", "src/signals/index.ts"],
    ["cancelkit/http", "src/http/index.ts"],
  ] as const) {
    const text = readFileSync(join(root, file), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const list of text.matchAll(/export\s*(?:type\s*)?\{([^}]*)\}/g)) {
      for (const item of list[1]!.split(",")) {
        const id = item.trim().replace(/^type\s+/, "").split(/\s+as\s+/).pop()!.trim();
        if (id !== "" && !names.has(id)) names.set(id, specifier);
      }
    }
  }
  return names;
}
const PUBLIC = publicNames();

/** The import lines a fragment gets: the public names it uses and neither imports nor declares. */
function preamble(block: DocBlock): string {
  if (!block.fragment) return "";
  const code = block.code.replace(/\/\/.*$/gm, "");
  const bySpecifier = new Map<string, string[]>();
  for (const [id, specifier] of PUBLIC) {
    if (!new RegExp(`(?<![.\\w$])${id}\\b`).test(code)) continue;
    if (new RegExp(`import[^;]*\\b${id}\\b[^;]*from`).test(code)) continue;
    if (new RegExp(`(?:const|let|var|using|function|class|interface|type)\\s+${id}\\b`).test(code)) continue;
    bySpecifier.set(specifier, [...(bySpecifier.get(specifier) ?? []), id]);
  }
  return [...bySpecifier].map(([specifier, ids]) => `import { ${ids.join(", ")} } from "${specifier}";`).join(" ");
}

/** The module a block becomes: its preamble on the first line (so line numbers match), the code, and `export {}`. */
const moduleText = (block: DocBlock): string => `${preamble(block)}\n${block.code}\nexport {};\n`;

let project = "";
/** Type errors per block, "" when it typechecks. */
const typeErrors = new Map<DocBlock, string>();

beforeAll(() => {
  // A scratch project inside the repository (so express, fastify and their
  // types resolve from its node_modules) with its own package.json (so
  // "cancelkit" is not a self-reference) and the built package installed.
  project = mkdtempSync(join(root, ".doctest-"));
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "doctest", private: true, type: "module" }));
  const pkg = join(project, "node_modules", "cancelkit");
  mkdirSync(pkg, { recursive: true });
  copyFileSync(join(root, "package.json"), join(pkg, "package.json"));
  symlinkSync(dist, join(pkg, "dist"), "dir");
  mkdirSync(join(project, "blocks"));
  // In the scratch project, so its "cancelkit" is the installed build too.
  const globals = join(project, "globals.d.ts");
  copyFileSync(join(root, "test", "docs", "globals.d.ts"), globals);

  const options: ts.CompilerOptions = {
    strict: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts", "lib.esnext.disposable.d.ts"],
    types: ["node"],
    typeRoots: [join(root, "node_modules", "@types")],
    skipLibCheck: true,
    noEmit: true,
  };
  const files = new Map<string, DocBlock>();
  blocks.forEach((block, i) => {
    if (block.lang !== "ts") return;
    const file = join(project, "blocks", `b${String(i).padStart(3, "0")}.ts`);
    writeFileSync(file, moduleText(block));
    files.set(file, block);
  });
  // Whole blocks without the application's names; fragments with them.
  for (const fragment of [false, true]) {
    const names = [...files].filter(([, b]) => b.fragment === fragment).map(([f]) => f);
    const program = ts.createProgram(fragment ? [...names, globals] : names, options);
    for (const file of names) typeErrors.set(files.get(file)!, "");
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const block = d.file === undefined ? undefined : files.get(d.file.fileName);
      if (block === undefined) throw new Error(`doc typecheck: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      const text = `line ${block.line + line - 1}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
      typeErrors.set(block, typeErrors.get(block) === "" ? text : `${typeErrors.get(block)}\n${text}`);
    }
  }
}, 120_000);

afterAll(() => {
  if (project !== "") rmSync(project, { recursive: true, force: true });
});

const STEP_MS = 10_000;

/** Runs a block's module with its steps; the failure text, or "" when it did what its prose says. */
async function run(block: DocBlock): Promise<string> {
  const js = ts.transpileModule(moduleText(block), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const file = join(project, "blocks", `run-${blocks.indexOf(block)}.mjs`);
  writeFileSync(file, js);
  const child: ChildProcess = spawn(process.execPath, ["--import", join(root, "test", "docs", "preload.mjs"), file], {
    cwd: project,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let stdout = "";
  let stderr = "";
  let port: number | null = null;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of wakers) w();
  };
  child.stdout!.on("data", (d: Buffer) => ((stdout += d), wake()));
  child.stderr!.on("data", (d: Buffer) => ((stderr += d), wake()));
  child.on("message", (m: { listening?: number }) => {
    if (typeof m.listening === "number" && port === null) port = m.listening;
    wake();
  });
  child.on("exit", (code, signal) => ((exit = { code, signal }), wake()));
  /** Waits until `ready()` is true, at most STEP_MS; false on timeout. */
  const until = (ready: () => boolean, ms = STEP_MS): Promise<boolean> =>
    new Promise((resolve) => {
      if (ready()) return resolve(true);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        wakers.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (ready()) done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      wakers.add(check);
    });
  const output = (): string => `\n--- stdout\n${stdout}--- stderr\n${stderr}`;
  const steps = block.run!.some((s) => s.startsWith("exit")) ? block.run! : [...block.run!, "exit 0"];
  try {
    for (const step of steps) {
      const [verb, ...args] = step.split(/\s+/);
      const arg = args.join(" ");
      switch (verb) {
        case "listening":
          if (!(await until(() => port !== null || exit !== null)) || port === null) return `${step}: it did not listen${output()}`;
          break;
        case "get": {
          const [path, status = "200"] = args;
          const got = await new Promise<string>((resolve) => {
            const req = request({ host: "127.0.0.1", port: port!, path, agent: false, timeout: STEP_MS }, (res) => {
              res.resume();
              res.on("end", () => resolve(String(res.statusCode)));
            });
            req.on("timeout", () => req.destroy(new Error("timed out")));
            req.on("error", (e) => resolve(e.message));
            req.end();
          });
          if (got !== status) return `${step}: got ${got}${output()}`;
          break;
        }
        case "alive":
          await until(() => exit !== null, Number(arg));
          if (exit !== null) return `${step}: it had exited (${JSON.stringify(exit)})${output()}`;
          break;
        case "kill":
          if (exit !== null) return `${step}: it had exited already (${JSON.stringify(exit)})${output()}`;
          child.kill(arg as NodeJS.Signals);
          break;
        case "stdout": {
          const [, source, flags] = /^\/(.*)\/([a-z]*)$/.exec(arg) ?? [arg, arg, ""];
          const re = new RegExp(source!, flags);
          if (!(await until(() => re.test(stdout) || exit !== null)) || !re.test(stdout)) return `${step}: stdout does not match${output()}`;
          break;
        }
        case "exit":
          if (!(await until(() => exit !== null))) return `${step}: still running after ${STEP_MS} ms${output()}`;
          if (exit!.code !== Number(arg)) return `${step}: exited with ${JSON.stringify(exit)}${output()}`;
          break;
        default:
          throw new Error(`${name(block)}: unknown doctest step '${step}'`);
      }
    }
    if (/Assertion failed/.test(stderr)) return `a console.assert failed${output()}`;
    return "";
  } finally {
    if (exit === null) {
      child.kill("SIGKILL");
      await until(() => exit !== null);
    }
    if (child.connected) child.disconnect();
  }
}

describe("doc examples", () => {
  it("finds the examples of README.md, docs/ and src/", () => {
    const files = new Set(blocks.map((b) => b.file));
    for (const file of ["README.md", "docs/shutdown.md", "docs/http.md", "docs/service.md", "src/cancel/cancellation-token.ts", "src/http/serve.ts"]) {
      expect(files, file).toContain(file);
    }
    expect(blocks.filter((b) => b.run !== null && !b.file.startsWith("src/")).length).toBeGreaterThan(5);
  });

  it("lists as known failing only blocks of files this branch does not own (or that need issue 16's API)", () => {
    for (const k of known) {
      if (!/needs issue 16's/.test(k.reason)) expect(OWNED, `${k.file} block ${k.index}`).not.toContain(k.file);
      expect(k.reason.length, `${k.file} block ${k.index}: a reason`).toBeGreaterThan(10);
    }
  });

  it.each(blocks.map((b) => [name(b), b] as const))("%s", async (_, block) => {
    const entry = knownFor(block);
    if (entry !== undefined) expect(firstLine(block), `known-failing.json entry for ${name(block)} no longer matches its block: update or remove it`).toBe(entry.starts);
    let failure = typeErrors.get(block) ?? "";
    if (failure === "" && block.run !== null) failure = await run(block);
    // DOCTEST_REPORT=<file>: one JSON line per failing block, to write known-failing.json entries from.
    const report = process.env["DOCTEST_REPORT"];
    if (report !== undefined && failure !== "") {
      appendFileSync(report, `${JSON.stringify({ file: block.file, index: block.index, line: block.line, starts: firstLine(block), failure: failure.split("\n--- stdout")[0] })}\n`);
    }
    if (entry !== undefined) {
      expect(failure, `${name(block)} passes now: remove it from test/docs/known-failing.json`).not.toBe("");
      return;
    }
    expect(failure, `${name(block)}\n${block.code}`).toBe("");
  });
});
