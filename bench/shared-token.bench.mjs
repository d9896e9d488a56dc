// A token shared with a worker thread (issue 17, part 4). Run after `npm run build`:
//   node --expose-gc bench/shared-token.bench.mjs
// CANCELKIT_DIST=/path/to/dist/index.js measures another build. TRIALS=… sets
// the trials per latency row (default 1,000).
//
// 1. cancel() in the main thread → noticed by a worker's busy loop that never
//    yields (it reads SharedToken.isCancelled): median and p99, goal < 1 ms.
// 2. cancel() in the main thread → the worker's cancelled() resolves (an idle
//    worker, awaiting): median and p99, goal < 1 ms.
// 3. 100,000 shared tokens created and dropped (shared, then disposed; and
//    shared, then left to the garbage collector): heap and RSS stay flat.
// Latencies are taken on one monotonic clock (process.hrtime, shared by all
// threads): the main thread writes the time right before cancel(), the
// worker the time it noticed, into a SharedArrayBuffer.
import { Worker } from "node:worker_threads";
import { bound, fmtBytes, header, info, settledHeapUsed } from "./harness.mjs";

const dist = process.env.CANCELKIT_DIST ?? new URL("../dist/index.js", import.meta.url).href;
const { CancellationToken, shareToken } = await import(dist);
const TRIALS = Number(process.env.TRIALS ?? 1_000);

header("shared token: a CancellationToken across threads");

const worker = new Worker(
  `
  const { parentPort } = require("node:worker_threads");
  parentPort.on("message", async ({ dist, mode, handle, times }) => {
    const { adoptToken } = await import(dist);
    const clock = new BigInt64Array(times);
    const shared = adoptToken(handle, { keepAlive: true });
    if (mode === "busy") {
      let spins = 0;
      while (!shared.isCancelled) if (++spins === 100) parentPort.postMessage("spinning");
      clock[1] = process.hrtime.bigint();
      if (spins < 100) parentPort.postMessage("spinning");
    } else {
      parentPort.postMessage("waiting");
      await shared.cancelled();
      clock[1] = process.hrtime.bigint();
    }
    await shared.cancelled();
    shared[Symbol.dispose]();
    parentPort.postMessage("done");
  });
  `,
  { eval: true },
);

const nextMessage = () => new Promise((resolve) => worker.once("message", resolve));

async function latencies(mode) {
  const times = new SharedArrayBuffer(16);
  const clock = new BigInt64Array(times);
  const samples = [];
  for (let i = 0; i < TRIALS + 50; i++) {
    const token = new CancellationToken();
    const shared = shareToken(token);
    const ready = nextMessage();
    worker.postMessage({ dist, mode, handle: shared.handle, times }, shared.transfer);
    await ready;
    const done = nextMessage();
    clock[0] = process.hrtime.bigint();
    token.cancel("stop");
    await done;
    if (i >= 50) samples.push(Number(clock[1] - clock[0])); // the first 50 warm up
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { median: at(0.5), p99: at(0.99), max: samples[samples.length - 1] };
}

const ms = (ns) => `${(ns / 1e6).toFixed(3)} ms`;
let ok = true;
for (const [label, mode] of [
  ["1. cancel → worker busy loop notices (isCancelled)", "busy"],
  ["2. cancel → worker's cancelled() resolves", "async"],
]) {
  const { median, p99, max } = await latencies(mode);
  const pass = median < 1e6 && p99 < 1e6;
  ok = pass && ok;
  console.log(
    `${label.padEnd(58)} median ${ms(median).padStart(10)} | p99 ${ms(p99).padStart(10)} | max ${ms(max)} | goal < 1 ms (${TRIALS} trials) ${pass ? "PASS" : "MISS"}`,
  );
}
await worker.terminate();

// 3. Create and drop 100,000 shared tokens, in batches so closing ports settle.
async function churn(dispose) {
  const before = await settledHeapUsed();
  const rssBefore = process.memoryUsage().rss;
  for (let batch = 0; batch < 10; batch++) {
    for (let i = 0; i < 10_000; i++) {
      const shared = shareToken(new CancellationToken());
      if (dispose) shared[Symbol.dispose]();
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Ports finish closing on later turns of the event loop, and collected
  // shares close theirs from a FinalizationRegistry callback: let both run.
  // Each collection can free a share only after the previous one ran its
  // finalizer (the port closes a turn later): go until the heap stops shrinking.
  let last = Infinity;
  for (let i = 0; i < 30; i++) {
    globalThis.gc();
    for (let j = 0; j < 4; j++) await new Promise((resolve) => setTimeout(resolve, 10));
    const used = process.memoryUsage().heapUsed;
    if (i >= 5 && used >= last) break;
    last = used;
  }
  const after = await settledHeapUsed();
  return { heap: after - before, rss: process.memoryUsage().rss - rssBefore };
}
{
  await churn(true); // warm-up: code, and the allocator's first pages
  const disposed = await churn(true);
  ok = bound("3a. 100,000 shared tokens, shared then disposed: heap", disposed.heap, 1 << 20) && ok;
  info("    … RSS growth (native ports, buffers)", fmtBytes(disposed.rss));
  // Warm-up too: the registries' tables grow to their high-water mark once.
  await churn(false);
  const dropped = await churn(false);
  ok = bound("3b. 100,000 shared tokens, shared then dropped (GC): heap", dropped.heap, 1 << 20) && ok;
  info("    … RSS growth (native ports, buffers)", fmtBytes(dropped.rss));
}
if (!ok) console.log("(a MISS on a loaded machine is expected; take the figures on a quiet one)");
