// oneshot and watch vs the native building blocks they replace, side by side
// in one process (design §6, issue 3). Run after `npm run build`:
//   node --expose-gc bench/channels.bench.mjs
// CANCELKIT_DIST=/path/to/dist/index.js compares another build (before/after).
import { EventEmitter } from "node:events";
import { bound, compare, fmtNs, header, heapUsed, info, nsPerOp, nsPerOpAsync } from "./harness.mjs";

const dist = process.env.CANCELKIT_DIST ?? "../dist/index.js";
const { CancellationToken, oneshot, select, watch } = await import(dist);

header("channels: oneshot / watch vs deferred promises and EventEmitter");

let ok = true;
let sink = 0;

// 1. oneshot create + send + await vs a bare deferred: new Promise + resolve + await.
{
  const deferred = async (i) => {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    resolve(i);
    sink += await promise;
  };
  const sendThenRecv = async (i) => {
    const [tx, rx] = oneshot();
    tx.send(i);
    sink += await rx.recv();
  };
  const recvThenSend = async (i) => {
    const [tx, rx] = oneshot();
    const pending = rx.recv();
    tx.send(i);
    sink += await pending;
  };
  // Interleave the measurements so both see the same machine state; best of three each.
  let base = Infinity;
  let ours1 = Infinity;
  let ours2 = Infinity;
  for (let round = 0; round < 3; round++) {
    base = Math.min(base, await nsPerOpAsync(deferred, 300_000));
    ours1 = Math.min(ours1, await nsPerOpAsync(sendThenRecv, 300_000));
    ours2 = Math.min(ours2, await nsPerOpAsync(recvThenSend, 300_000));
  }
  ok = compare("1a. oneshot() + send + await recv() vs deferred promise", ours1, base, { atMost: 2 }) && ok;
  ok = compare("1b. oneshot() + recv() pending + send + await vs deferred", ours2, base, { atMost: 2 }) && ok;

  // 1c. The 1a pair inside one async loop: no async function call per
  // operation to share the cost with, so the channel's own cost shows more.
  const N = 300_000;
  const loop = async (body) => {
    const start = process.hrtime.bigint();
    await body(N);
    return Number(process.hrtime.bigint() - start) / N;
  };
  const deferredLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      resolve(i);
      sink += await promise;
    }
  };
  const oneshotLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      const [tx, rx] = oneshot();
      tx.send(i);
      sink += await rx.recv();
    }
  };
  await deferredLoop(20_000);
  await oneshotLoop(20_000);
  let loopBase = Infinity;
  let loopOurs = Infinity;
  for (let round = 0; round < 5; round++) {
    loopBase = Math.min(loopBase, await loop(deferredLoop));
    loopOurs = Math.min(loopOurs, await loop(oneshotLoop));
  }
  ok = compare("1c. 1a in one async loop (no call per op) vs deferred", loopOurs, loopBase, { atMost: 2 }) && ok;
}

// 2. One send waking 1,000 receivers waiting in changed(), vs an EventEmitter
// emitting to 1,000 listeners that each resolve a promise. Each round makes
// 1,000 fresh waits on both sides.
{
  const N = 1000;
  const [tx, rx] = watch(0);
  const receivers = [rx];
  for (let i = 1; i < N; i++) receivers.push(tx.subscribe());
  const waits = new Array(N);
  const oursRound = async (i) => {
    for (let k = 0; k < N; k++) waits[k] = receivers[k].changed();
    tx.send(i);
    const values = await Promise.all(waits);
    sink += values[N - 1];
  };

  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const resolvers = new Array(N);
  for (let k = 0; k < N; k++) emitter.on("change", (value) => resolvers[k](value));
  const theirsRound = async (i) => {
    for (let k = 0; k < N; k++) waits[k] = new Promise((resolve) => (resolvers[k] = resolve));
    emitter.emit("change", i);
    const values = await Promise.all(waits);
    sink += values[N - 1];
  };
  // Interleaved, best of three each (these machines are noisy).
  let ours = Infinity;
  let theirs = Infinity;
  for (let round = 0; round < 3; round++) {
    ours = Math.min(ours, await nsPerOpAsync(oursRound, 1_000, { warmup: 200, rounds: 3 }));
    theirs = Math.min(theirs, await nsPerOpAsync(theirsRound, 1_000, { warmup: 200, rounds: 3 }));
  }
  ok = compare("2. watch: 1 send waking 1,000 changed() vs EventEmitter", ours, theirs, { atMost: 1.5 }) && ok;

  // The same with waitFor(): each wait also runs its predicate, once at the
  // call and once in the shared microtask after the send. No goal: a figure.
  const waitForRound = async (i) => {
    for (let k = 0; k < N; k++) waits[k] = receivers[k].waitFor((v) => v === i);
    tx.send(i);
    const values = await Promise.all(waits);
    sink += values[N - 1];
  };
  let viaWaitFor = Infinity;
  for (let round = 0; round < 3; round++) {
    viaWaitFor = Math.min(viaWaitFor, await nsPerOpAsync(waitForRound, 1_000, { warmup: 200, rounds: 3 }));
  }
  info(
    "2b. watch: 1 send waking 1,000 waitFor()",
    `${fmtNs(viaWaitFor)} (${(viaWaitFor / theirs).toFixed(2)}× the EventEmitter round)`,
  );
  for (const r of receivers) r.close();
}

// 3. watch send with nobody waiting.
{
  const [tx, rx] = watch(0);
  const ours = nsPerOp((i) => tx.send(i), 5_000_000);
  ok = bound("3. watch send() with nobody waiting (ns/op)", ours, 50, fmtNs) && ok;
  sink += rx.borrow();
}

// 3b. The same after a select raced the receiver and left: a select branch
// that came and went must not put the send on the slow path for good.
{
  const [tx, rx] = watch(0);
  const controller = new AbortController();
  const raced = select({ rx, stop: controller.signal });
  await new Promise((resolve) => setImmediate(resolve)); // the select subscribed
  controller.abort("done");
  await raced;
  const ours = nsPerOp((i) => tx.send(i), 5_000_000);
  ok = bound("3b. watch send() with nobody waiting, after a select left (ns/op)", ours, 50, fmtNs) && ok;
  sink += rx.borrow();
}

// 4. Heap: long-lived channels and signals must not accumulate anything per wait.
{
  const M = 1_000_000;

  const [tx, rx] = watch(0);
  const waitLoop = async (n, options) => {
    for (let i = 0; i < n; i++) {
      const pending = rx.changed(options);
      tx.send(i);
      sink += await pending;
    }
  };
  await waitLoop(10_000);
  let before = heapUsed();
  await waitLoop(M);
  ok = bound("4a. heap growth, 1,000,000 changed() on one watch receiver", heapUsed() - before, 1 << 20) && ok;

  const controller = new AbortController();
  const options = { signal: controller.signal };
  await waitLoop(10_000, options);
  before = heapUsed();
  await waitLoop(M, options);
  ok = bound("4b. heap growth, one AbortSignal passed to 1,000,000 changed()", heapUsed() - before, 1 << 20) && ok;

  const token = new CancellationToken();
  const tokenOptions = { signal: token };
  await waitLoop(10_000, tokenOptions);
  before = heapUsed();
  await waitLoop(M, tokenOptions);
  ok = bound("4c. heap growth, one CancellationToken passed to 1,000,000 changed()", heapUsed() - before, 1 << 20) && ok;

  // Waits that end by abort rather than by value, each on its own signal, against one channel.
  const abortLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      const ac = new AbortController();
      const pending = rx.changed({ signal: ac.signal });
      ac.abort(i);
      sink += await pending.catch((reason) => reason);
    }
  };
  await abortLoop(10_000);
  before = heapUsed();
  await abortLoop(M);
  ok = bound("4d. heap growth, 1,000,000 aborted changed() on one receiver", heapUsed() - before, 1 << 20) && ok;

  // oneshot recv() with one long-lived signal.
  const recvLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      const [otx, orx] = oneshot();
      const pending = orx.recv(options);
      otx.send(i);
      sink += await pending;
    }
  };
  await recvLoop(10_000);
  before = heapUsed();
  await recvLoop(M);
  ok = bound("4e. heap growth, one AbortSignal passed to 1,000,000 recv()", heapUsed() - before, 1 << 20) && ok;

  // waitFor() with one long-lived signal: each wait is accepted by the check
  // queued after the send (the path an abort in the same turn would take).
  const waitForLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      const pending = rx.waitFor((v) => v === i, options);
      tx.send(i);
      sink += await pending;
    }
  };
  await waitForLoop(10_000);
  before = heapUsed();
  await waitForLoop(M);
  ok = bound("4f. heap growth, one AbortSignal passed to 1,000,000 waitFor()", heapUsed() - before, 1 << 20) && ok;

  // An iterator ended by return() while its next() waits for a change (what
  // `await using` or a framework's cancellation does), 100,000 times: the
  // parked wait must go with it. (Builds before this fix hang here.)
  const iterateLoop = async (n) => {
    for (let i = 0; i < n; i++) {
      const iterator = rx[Symbol.asyncIterator]();
      sink += (await iterator.next()).value;
      const parked = iterator.next();
      await iterator.return();
      await parked;
    }
  };
  await iterateLoop(10_000);
  before = heapUsed();
  await iterateLoop(100_000);
  ok = bound("4g. heap growth, 100,000 iterators returned while waiting", heapUsed() - before, 1 << 20) && ok;
}

if (sink === -1) console.log("unreachable");
if (!ok) console.log("(one or more goals missed: see MISS rows)");
