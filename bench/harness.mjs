// Shared helpers for the benchmarks: one process per bench file, run with
// --expose-gc, comparing ours against the native or peer equivalent in the
// same run. Figures are ratios, never absolute goals: these machines are noisy.

/** Runs `fn` `iterations` times after a warm-up; returns ns per op (best of `rounds`). */
export function nsPerOp(fn, iterations, { warmup = Math.min(iterations, 20_000), rounds = 5 } = {}) {
  for (let i = 0; i < warmup; i++) fn(i);
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    const ns = Number(process.hrtime.bigint() - start) / iterations;
    if (ns < best) best = ns;
  }
  return best;
}

/** Async variant of {@link nsPerOp}: awaits each call. */
export async function nsPerOpAsync(fn, iterations, { warmup = Math.min(iterations, 20_000), rounds = 5 } = {}) {
  for (let i = 0; i < warmup; i++) await fn(i);
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn(i);
    const ns = Number(process.hrtime.bigint() - start) / iterations;
    if (ns < best) best = ns;
  }
  return best;
}

/** Full GC (needs --expose-gc), then used heap in bytes. */
export function heapUsed() {
  if (typeof globalThis.gc !== "function") throw new Error("run with --expose-gc");
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Used heap once full GCs stop freeing memory. Between them it yields a
 * macrotask, so FinalizationRegistry callbacks (Node's AbortSignal
 * listeners use them) run and free what they hold: without this a
 * baseline taken right after a leaky comparison still counted that
 * comparison's garbage, and a later row read as hundreds of MB of
 * negative growth.
 */
export async function settledHeapUsed() {
  let last = heapUsed();
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    const now = heapUsed();
    if (now > last - (64 << 10)) return Math.min(now, last);
    last = now;
  }
  return last;
}

/** Heap growth in bytes across `await fn()`, measured on a settled heap. `keep` values stay reachable. */
export async function heapGrowth(fn) {
  const before = await settledHeapUsed();
  const kept = await fn();
  const after = await settledHeapUsed();
  // Touch what fn kept so it stays reachable until measured.
  if (kept !== undefined && kept !== null) globalThis.__benchKeep = kept;
  globalThis.__benchKeep = undefined;
  return after - before;
}

export function fmtNs(ns) {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(1)} ns`;
}

export function fmtBytes(bytes) {
  const abs = Math.abs(bytes);
  return abs >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : abs >= 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${Math.round(bytes)} B`;
}

/** Prints the header of one bench file's section. */
export function header(title) {
  console.log(`\n## ${title} — Node ${process.version}`);
}

/**
 * Prints one comparison row: ours vs theirs, the ratio, the goal, and PASS/MISS.
 * `goal` is e.g. { atLeast: 20 } (theirs/ours speed-up) or { atMost: 1.5 } (ours/theirs).
 */
export function compare(label, ours, theirs, goal, fmt = fmtNs) {
  let ratio;
  let goalText;
  let ok;
  if (goal?.atLeast !== undefined) {
    ratio = theirs / ours;
    goalText = `≥ ${goal.atLeast}× faster`;
    ok = ratio >= goal.atLeast;
  } else if (goal?.atMost !== undefined) {
    ratio = ours / theirs;
    goalText = `≤ ${goal.atMost}× theirs`;
    ok = ratio <= goal.atMost;
  } else {
    ratio = theirs / ours;
    goalText = "(info)";
    ok = true;
  }
  console.log(`${label.padEnd(58)} ours ${fmt(ours).padStart(10)} | theirs ${fmt(theirs).padStart(10)} | ratio ${ratio.toFixed(2).padStart(7)}× | goal ${goalText.padEnd(16)} ${ok ? "PASS" : "MISS"}`);
  return ok;
}

/** Prints one absolute row with a bound, e.g. heap growth < 1 MB. */
export function bound(label, value, limit, fmt = fmtBytes) {
  const ok = value < limit;
  console.log(`${label.padEnd(58)} ${fmt(value).padStart(10)} | limit < ${fmt(limit).padStart(8)} ${ok ? "PASS" : "MISS"}`);
  return ok;
}

/** Prints an informational row. */
export function info(label, text) {
  console.log(`${label.padEnd(58)} ${text}`);
}
