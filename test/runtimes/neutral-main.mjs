// Deno / Bun: runs the conformance checks against the neutral bundle whose
// entry point (dist/index.js) is given as a file URL, prints the result as
// one line of JSON, and exits 1 if a check failed.
import { run } from "./conformance.mjs";

const args = globalThis.Deno ? globalThis.Deno.args : process.argv.slice(2);
const lib = await import(args[0]);
const result = await run(lib);
console.log(JSON.stringify(result));
if (result.failed.length > 0) {
  if (globalThis.Deno) globalThis.Deno.exit(1);
  else process.exit(1);
}
