// CancellationToken vs the native AbortController / AbortSignal.any, side by
// side in one process (design §6, issue 2). Run after `npm run build`:
//   node --expose-gc bench/cancel.bench.mjs
// CANCELKIT_DIST=/path/to/dist/index.js compares another build (before/after).
import { bound, compare, fmtBytes, fmtNs, header, heapUsed, info, nsPerOp } from "./harness.mjs";

const dist = process.env.CANCELKIT_DIST ?? "../dist/index.js";
const { CancellationToken } = await import(dist);

header("cancel: CancellationToken vs AbortController / AbortSignal.any");

const cb = () => {};
let ok = true;

// 1. Per-request lifecycle: a request token derived from a live server token,
// one callback, then everything released when the request ends.
{
  const server = new CancellationToken();
  const ours = nsPerOp(() => {
    const request = server.child();
    const registration = request.onCancel(cb);
    registration[Symbol.dispose]();
    request[Symbol.dispose]();
  }, 1_000_000);
  const serverController = new AbortController();
  const serverSignal = serverController.signal;
  const theirs = nsPerOp(
    () => {
      const request = AbortSignal.any([serverSignal]);
      request.addEventListener("abort", cb);
      request.removeEventListener("abort", cb);
    },
    20_000,
    { warmup: 2_000, rounds: 3 },
  );
  ok = compare("1. per-request: child+onCancel+dispose vs any([parent])+listener", ours, theirs, { atLeast: 20 }) && ok;
}

// 2. A token's whole life: create, one callback, cancel with a reason.
{
  const reason = new Error("stop");
  let fired = 0;
  const count = () => void fired++;
  const ours = nsPerOp(() => {
    const token = new CancellationToken();
    token.onCancel(count);
    token.cancel(reason);
  }, 1_000_000);
  const theirs = nsPerOp(
    () => {
      const controller = new AbortController();
      controller.signal.addEventListener("abort", count);
      controller.abort(reason);
    },
    100_000,
    { warmup: 10_000, rounds: 3 },
  );
  if (fired === 0) throw new Error("callbacks did not run");
  ok = compare("2. create + 1 callback + cancel(reason) vs AbortController", ours, theirs, { atLeast: 10 }) && ok;
}

// 3. Retained heap per live child token with one callback (a shared callback
// function on both sides, so only the library's own objects are counted).
// Each side first runs its exact code once on scratch objects, so the
// measured run allocates no code or feedback.
{
  const N = 100_000;
  const fillOurs = (root, keep, n) => {
    for (let i = 0; i < n; i++) {
      const child = root.child();
      child.onCancel(cb);
      keep[i] = child;
    }
  };
  const fillNative = (keep, n) => {
    for (let i = 0; i < n; i++) {
      const controller = new AbortController();
      controller.signal.addEventListener("abort", cb);
      keep[i] = controller;
    }
  };
  const keep = new Array(N).fill(null);
  const scratch = new CancellationToken();
  fillOurs(scratch, keep, N);
  scratch.cancel();
  keep.fill(null);
  fillNative(keep, 10_000);
  keep.fill(null);

  const root = new CancellationToken();
  let before = heapUsed();
  fillOurs(root, keep, N);
  const ours = (heapUsed() - before) / N;
  if (keep[N - 1].isCancelled) throw new Error("unexpected");
  keep.fill(null);
  root.cancel();
  before = heapUsed();
  fillNative(keep, N);
  const native = (heapUsed() - before) / N;
  if (keep[N - 1].signal.aborted) throw new Error("unexpected");
  keep.fill(null);
  ok = bound("3. retained heap per live child token (+1 callback)", ours, 100) && ok;
  info("   native AbortController + signal + 1 listener", `${fmtBytes(native)} per controller`);
}

// 4. Build and cancel a tree: a parent with 100,000 children, one callback each,
// vs 100,000 AbortSignal.any([parent]) dependents with a listener each.
// Each side runs 1 warm-up round + 5 measured rounds (best taken, as nsPerOp
// does), all of ours first, then all of theirs, with a full GC before each
// round, so neither side's garbage is swept during the other's timing.
{
  const N = 100_000;
  const rounds = 6;
  let ourBuild = Infinity;
  let ourCancel = Infinity;
  let theirBuild = Infinity;
  let theirCancel = Infinity;
  // Every measured cancel, for the median row: after a full GC the cancel
  // time of the same tree varies several-fold from round to round (where
  // the scavenges put the tokens), so the best round alone flatters both sides.
  const ourCancels = [];
  const theirCancels = [];
  for (let r = 0; r < rounds; r++) {
    heapUsed();
    let fired = 0;
    const count = () => void fired++;
    const root = new CancellationToken();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) root.child().onCancel(count);
    const t1 = process.hrtime.bigint();
    root.cancel("stop");
    const t2 = process.hrtime.bigint();
    if (fired !== N) throw new Error(`ours: ${fired} callbacks of ${N}`);
    if (r > 0) ourBuild = Math.min(ourBuild, Number(t1 - t0));
    if (r > 0) ourCancel = Math.min(ourCancel, Number(t2 - t1));
    if (r > 0) ourCancels.push(Number(t2 - t1));
  }
  for (let r = 0; r < rounds; r++) {
    heapUsed();
    let fired = 0;
    const count = () => void fired++;
    const controller = new AbortController();
    const dependents = new Array(N);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      const signal = AbortSignal.any([controller.signal]);
      signal.addEventListener("abort", count);
      dependents[i] = signal; // requests hold their signal
    }
    const t1 = process.hrtime.bigint();
    controller.abort("stop");
    const t2 = process.hrtime.bigint();
    if (fired !== N) throw new Error(`native: ${fired} listeners of ${N}`);
    if (r > 0) theirBuild = Math.min(theirBuild, Number(t1 - t0));
    if (r > 0) theirCancel = Math.min(theirCancel, Number(t2 - t1));
    if (r > 0) theirCancels.push(Number(t2 - t1));
  }
  ok = compare("4a. build parent + 100,000 children with a callback (total)", ourBuild, theirBuild, { atLeast: 25 }) && ok;
  ok = compare("4b. cancel parent of 100,000 children (total)", ourCancel, theirCancel, { atLeast: 25 }) && ok;
  const median = (values) => values.sort((a, b) => a - b)[values.length >> 1];
  ok = compare("4c. the same cancel, median of the measured rounds", median(ourCancels), median(theirCancels), { atLeast: 25 }) && ok;
}

// 5. Children created and disposed under a live parent: nothing retained.
{
  const N = 1_000_000;
  const root = new CancellationToken();
  const lifecycle = () => {
    const child = root.child();
    child.onCancel(cb);
    child[Symbol.dispose]();
  };
  for (let i = 0; i < 10_000; i++) lifecycle();
  const before = heapUsed();
  for (let i = 0; i < N; i++) lifecycle();
  const growth = heapUsed() - before;
  ok = bound("5. heap growth, 1,000,000 children created + disposed", growth, 1 << 20) && ok;
  if (root.isCancelled) throw new Error("unexpected");

  // Native: far slower and leakier, so 100,000 iterations, extrapolated to 1,000,000.
  const M = 100_000;
  const controller = new AbortController();
  const nativeLifecycle = () => {
    const signal = AbortSignal.any([controller.signal]);
    signal.addEventListener("abort", cb);
  };
  for (let i = 0; i < 1000; i++) nativeLifecycle();
  const nativeBefore = heapUsed();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) nativeLifecycle();
  const elapsed = Number(process.hrtime.bigint() - t0) / M;
  const nativeGrowth = heapUsed() - nativeBefore;
  info(
    "   native any([parent]) + listener, 100,000 dropped",
    `${fmtBytes(nativeGrowth)} (≈ ${fmtBytes(nativeGrowth * 10)} per 1,000,000; ${fmtNs(elapsed)}/op)`,
  );
}

if (!ok) console.log("(one or more goals missed: see MISS rows)");
