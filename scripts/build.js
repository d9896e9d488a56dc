// npm run build: tsc emits the type declarations, rolldown the JavaScript
// (two bundles and one-line entry points, with source maps to src/ that
// carry the sources), into a fresh directory that is then swapped in for
// dist/, so a benchmark or child process reading dist/ meanwhile never sees
// it half-written or missing for more than the instant of a rename.
//
//   node scripts/build.js [--out <dir>]   (default: dist/, swapped in as above)
//
// The shape, and why: `cancelkit.js` holds every module the platform-neutral
// entry points (".", "./cancel", "./channels") reach, so it imports no Node
// module and runs in browsers, Deno and Bun; `cancelkit-node.js` holds the
// rest (`signals`, `http`) and imports what it shares from the first. Each
// entry point is a one-line re-export of its bundle. On Node 20 the ES module
// loader reads every imported file through a `fs/promises` FileHandle, an
// EventEmitter; past about a dozen of them the property sites in
// `EventEmitter.init` turn megamorphic, and that code is inlined into the
// constructors Node's HTTP server runs for every request (docs/http.md, "what
// it costs while serving"). So an entry point reads two or three files.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outIndex = process.argv.indexOf("--out");
if (outIndex > 0 && process.argv[outIndex + 1] === undefined) throw new TypeError("build.js: --out needs a directory, received nothing");
const out = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : null;

export const BUNDLE = "cancelkit";
export const NODE_BUNDLE = "cancelkit-node";
/** The entry points whose modules go into the platform-neutral bundle. */
const NEUTRAL = new Set([".", "./cancel", "./channels"]);

/** The entry points, from package.json "exports": { name: "cancel/index", source: "src/cancel/index.ts", neutral }. */
function entries() {
  const { exports } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  return Object.entries(exports)
    .filter(([, target]) => typeof target === "object")
    .map(([key, target]) => {
      const name = target.default.replace(/^\.\/dist\//, "").replace(/\.js$/, "");
      return { key, name, source: join(root, "src", `${name}.ts`), neutral: NEUTRAL.has(key) };
    });
}

/** The modules reachable from `files`: rolldown's graph, from a first pass that writes nothing. */
async function reachable(files) {
  const bundle = await build({
    input: files,
    external: (id) => id.startsWith("node:"),
    platform: "neutral",
    write: false,
    logLevel: "silent",
    output: { format: "esm" },
  });
  const ids = new Set();
  for (const chunk of bundle.output) if (chunk.type === "chunk") for (const id of chunk.moduleIds) ids.add(id);
  return ids;
}

async function bundleInto(dir) {
  const list = entries();
  // What the neutral entry points reach goes into cancelkit.js, the rest into
  // cancelkit-node.js: so the neutral bundle can never import the Node one.
  const neutralModules = await reachable(list.filter((e) => e.neutral).map((e) => e.source));
  const entrySources = new Set(list.map((e) => e.source));
  // Entry modules go into the bundles too, so each entry chunk is a facade:
  // re-exports, and no import of another entry point.
  const inSrc = (id) => id.startsWith(join(root, "src") + sep);
  await build({
    input: Object.fromEntries(list.map((e) => [e.name, e.source])),
    // Nothing but Node's own modules is imported at run time.
    external: (id) => id.startsWith("node:"),
    platform: "neutral",
    tsconfig: join(root, "tsconfig.build.json"),
    transform: { target: "es2022" },
    // An entry module is only re-exports: importing one entry point must not
    // load another (index.ts re-exports from cancel/index.ts).
    treeshake: { moduleSideEffects: (id, external) => external || !entrySources.has(id) },
    logLevel: "warn",
    onLog(level, log) {
      throw new Error(`rolldown ${level}: ${log.message}`);
    },
    output: {
      dir,
      format: "esm",
      entryFileNames: "[name].js",
      chunkFileNames: "[name].js",
      // The bundles' exports keep their names, for people reading them.
      minifyInternalExports: false,
      sourcemap: true,
      // Maps carry the sources: they resolve although src/ is not shipped.
      sourcemapExcludeSources: false,
      codeSplitting: {
        groups: [
          { name: BUNDLE, test: (id) => inSrc(id) && neutralModules.has(id), priority: 2 },
          { name: NODE_BUNDLE, test: (id) => inSrc(id) && !neutralModules.has(id), priority: 1 },
        ],
      },
      // Sources named as from dist/ ("../src/cancel/…"), wherever this build
      // is written, so every build of one tree is the same bytes.
      sourcemapPathTransform: (source, mapPath) =>
        relative(join(root, "dist", relative(dir, dirname(mapPath))), resolve(dirname(mapPath), source)).split(sep).join("/"),
    },
  });
}

/** Builds the package into `dir` (which exists and is empty). */
export async function buildInto(dir) {
  // Resolved like an import, so a linked node_modules (a git worktree, a
  // mutation-testing sandbox) finds it too.
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--emitDeclarationOnly", "--outDir", dir], { cwd: root, stdio: "inherit" });
  await bundleInto(dir);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fresh = mkdtempSync(join(out === null ? root : dirname(out), ".dist-"));
  try {
    await buildInto(fresh);
  } catch (error) {
    rmSync(fresh, { recursive: true, force: true });
    throw error;
  }
  const dist = out ?? join(root, "dist");
  const old = `${fresh}-old`;
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(fresh, dist);
  rmSync(old, { recursive: true, force: true });
}
