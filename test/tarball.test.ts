/*
 * The package as a new user gets it: `npm pack` of this suite's build,
 * installed (offline: it has no dependencies) into a scratch project outside
 * the repository, then every entry point imported by Node, required where
 * Node can require an ES module, and a consumer typechecked under the
 * settings the README lists: nodenext, bundler, and no @types/node with
 * `lib: ["esnext.disposable"]` (and, as the control, without that lib: the
 * TS2304 the README warns about).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = process.env["CANCELKIT_DIST"];
if (dist === undefined) throw new Error("CANCELKIT_DIST is unset: run the tests through vitest.config.ts");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
  license: string;
  repository: { type: string; url: string };
  homepage: string;
  bugs: { url: string };
  exports: Record<string, unknown>;
};
const ENTRIES = Object.keys(pkg.exports)
  .filter((k) => k !== "./package.json")
  .map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`));

/** A consumer project: its package.json, code using every entry point, and one tsconfig per setting. */
function writeConsumer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(
    join(dir, "web.ts"),
    `import { CancellationToken, select, sleep, watch } from "cancelkit";
import { TaskTracker } from "cancelkit/cancel";
import { oneshot } from "cancelkit/channels";

export async function main(signal: AbortSignal): Promise<string> {
  using token = CancellationToken.from(signal);
  const tracker = new TaskTracker();
  const [tx, rx] = oneshot<number>();
  const [config] = watch({ level: 1 });
  tracker.spawn(async () => tx.send(config.borrow().level));
  const r = await select({ value: rx, cancelled: token, late: sleep(1_000) });
  return r.key === "value" ? String(r.value + 1) : r.key;
}
`,
  );
  writeFileSync(
    join(dir, "node.ts"),
    `import { createServer } from "node:http";
import { CancellationToken } from "cancelkit";
import { shutdown, isSignalReceivedError } from "cancelkit/signals";
import { serve, requestToken, type ShutdownReport } from "cancelkit/http";
import { main } from "./web.js";

const stop: CancellationToken = shutdown({ timeoutMs: 1_000 });
const server = createServer((req, res) => {
  requestToken(req).onCancel(() => res.destroy());
  res.end("ok");
});
const graceful = serve(server, { signal: stop, drainTimeoutMs: 100 });
const report: ShutdownReport = await graceful.shutdown();
const reason = await stop.cancelled();
console.log(report.deadlineHit, isSignalReceivedError(reason), await main(stop.signal));
`,
  );
  // Our declarations are checked (skipLibCheck off) where they are all there is
  // (web); beside @types/node, checking all of it again costs more than it tells.
  const base = { strict: true, target: "es2022", noEmit: true, skipLibCheck: false, typeRoots: [join(root, "node_modules", "@types")] };
  const configs: Record<string, object> = {
    "tsconfig.nodenext.json": { compilerOptions: { ...base, skipLibCheck: true, module: "nodenext", moduleResolution: "nodenext", types: ["node"] }, files: ["node.ts", "web.ts"] },
    "tsconfig.bundler.json": { compilerOptions: { ...base, skipLibCheck: true, module: "esnext", moduleResolution: "bundler", types: ["node"] }, files: ["node.ts", "web.ts"] },
    "tsconfig.web.json": { compilerOptions: { ...base, module: "nodenext", moduleResolution: "nodenext", types: [], lib: ["es2022", "esnext.disposable", "dom"] }, files: ["web.ts"] },
    "tsconfig.web-no-disposable.json": { compilerOptions: { ...base, module: "nodenext", moduleResolution: "nodenext", types: [], lib: ["es2022", "dom"] }, files: ["web.ts"] },
  };
  for (const [name, config] of Object.entries(configs)) writeFileSync(join(dir, name), JSON.stringify(config, null, 2));
}

let scratch = "";
let tarball = "";
let project = "";
let files: string[] = [];

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "cancelkit-tarball-"));
  // What `npm pack` would pack from the repository, with this suite's build as dist/.
  const stage = join(scratch, "stage");
  cpSync(dist, join(stage, "dist"), { recursive: true });
  for (const file of ["package.json", "README.md", "LICENSE"]) copyFileSync(join(root, file), join(stage, file));
  const packed = JSON.parse(execFileSync(npm, ["pack", "--json", "--pack-destination", scratch], { cwd: stage, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = join(scratch, packed[0]!.filename);
  files = packed[0]!.files.map((f) => f.path).sort();

  project = join(scratch, "app");
  writeConsumer(project);
  execFileSync(npm, ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock", tarball], { cwd: project, stdio: "pipe" });
}, 120_000);

afterAll(() => {
  if (scratch !== "") rmSync(scratch, { recursive: true, force: true });
});

describe("the packed tarball", () => {
  it("holds the license, the README, package.json and dist/: no sources, no declaration maps", () => {
    expect(files).toContain("LICENSE");
    expect(files).toContain("README.md");
    expect(files).toContain("package.json");
    expect(files.filter((f) => !f.startsWith("dist/")).sort()).toEqual(["LICENSE", "README.md", "package.json"]);
    expect(files.filter((f) => f.endsWith(".d.ts.map"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".js.map")).sort()).toEqual(["dist/cancelkit-node.js.map", "dist/cancelkit.js.map"]);
    expect(readFileSync(join(root, "LICENSE"), "utf8")).toMatch(new RegExp(`^${pkg.license} License`));
  });

  it("names its repository, homepage and issue tracker, so the README's relative doc links resolve on the registry", () => {
    const repo = /^git\+(https:\/\/github\.com\/[\w.-]+\/[\w.-]+)\.git$/.exec(pkg.repository.url);
    expect(pkg.repository.type).toBe("git");
    expect(repo, pkg.repository.url).not.toBeNull();
    expect(pkg.homepage).toBe(`${repo![1]}#readme`);
    expect(pkg.bugs.url).toBe(`${repo![1]}/issues`);
    // Every relative link in the README points at a file the repository has.
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const links = [...readme.matchAll(/\]\((?!https?:|#)([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(3);
    for (const link of links) expect(() => readFileSync(join(root, link.split("#")[0]!)), link).not.toThrow();
  });

  it("imports every entry point with Node, as installed", () => {
    const script = `for (const e of ${JSON.stringify(ENTRIES)}) { const m = await import(e); if (Object.keys(m).length === 0) throw new Error(e + " exports nothing"); } console.log("ok");`;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: project, encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe("ok");
  });

  it("require()s every entry point on a Node that can require an ES module (≥ 20.19, ≥ 22.12)", () => {
    const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
    const canRequire = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;
    const script = `for (const e of ${JSON.stringify(ENTRIES)}) { const m = require(e); if (typeof m !== "object" || Object.keys(m).length === 0) throw new Error(e + " exports nothing"); } console.log("ok");`;
    const result = spawnSync(process.execPath, ["--no-warnings", "-e", script], { cwd: project, encoding: "utf8" });
    if (canRequire) {
      expect(result.stderr).toBe("");
      expect(result.stdout.trim()).toBe("ok");
    } else {
      expect(result.stderr).toMatch(/ERR_REQUIRE_ESM/);
    }
  });

  /** tsc on the consumer with one of its tsconfig files; the diagnostics, "" when clean. */
  function typecheck(config: string): string {
    const result = spawnSync(process.execPath, [tsc, "-p", config, "--noEmit", "--pretty", "false"], { cwd: project, encoding: "utf8" });
    return (result.stdout + result.stderr).trim();
  }

  it.each([
    ["module/moduleResolution nodenext, @types/node", "tsconfig.nodenext.json"],
    ["moduleResolution bundler, @types/node", "tsconfig.bundler.json"],
    ["no @types/node, lib esnext.disposable (the platform-neutral entry points)", "tsconfig.web.json"],
  ])("typechecks a consumer: %s", (_, config) => {
    expect(typecheck(config)).toBe("");
  });

  it("fails to typecheck without @types/node and without lib esnext.disposable (the README's warning)", () => {
    expect(typecheck("tsconfig.web-no-disposable.json")).toMatch(/TS2304: Cannot find name 'Disposable'/);
  });
});
