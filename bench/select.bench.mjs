// select vs Promise.race over equivalent inputs: one long-lived token (the
// service's shutdown token, never cancelled), a fresh oneshot per iteration
// (the value that wins), and a third branch (a long-lived AbortSignal, or a
// 60 s timer that must be cleared when it loses).
//
// Goals (design §6): time ≤ 1.5× Promise.race; heap growth over 1,000,000
// sequential selects < 1 MB. Promise.race's growth on the same inputs is
// printed for comparison: each race leaves a reaction on the long-lived
// promises (nodejs/node#17469), and each reaction keeps the race's result.
// CANCELKIT_DIST=/path/to/dist/index.js compares another build (before/after).
import { bound, compare, fmtBytes, fmtNs, header, heapUsed, info, settledHeapUsed, nsPerOpAsync } from "./harness.mjs";

const { CancellationToken, oneshot, select, sleep } = await import(process.env.CANCELKIT_DIST ?? "../dist/index.js");

header("select vs Promise.race");

const ITERATIONS = Number(process.env.SELECT_BENCH_ITERATIONS ?? 1_000_000);

// --- the four loop bodies --------------------------------------------------

function selectWithSignal(token, signal) {
  return async () => {
    const [tx, rx] = oneshot();
    const result = select({ shutdown: token, signal, rx });
    tx.send(1);
    const { key } = await result;
    if (key !== "rx") throw new Error("wrong winner");
  };
}

function raceWithSignal(token, signal) {
  // The honest Promise.race equivalent: the long-lived things are promises made once.
  const cancelled = token.cancelled();
  const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  return async () => {
    const [tx, rx] = oneshot();
    const result = Promise.race([cancelled, aborted, rx.recv()]);
    tx.send(1);
    if ((await result) !== 1) throw new Error("wrong winner");
  };
}

function selectWithSleep(token) {
  return async () => {
    const [tx, rx] = oneshot();
    const result = select({ shutdown: token, rx, timeout: sleep(60_000) });
    tx.send(1);
    const { key } = await result;
    if (key !== "rx") throw new Error("wrong winner");
  };
}

function raceWithSleep(token) {
  const cancelled = token.cancelled();
  return async () => {
    const [tx, rx] = oneshot();
    let timer;
    const timeout = new Promise((resolve) => (timer = setTimeout(resolve, 60_000)));
    const result = Promise.race([cancelled, rx.recv(), timeout]);
    tx.send(1);
    const value = await result;
    clearTimeout(timer); // what select does for its losing sleep
    if (value !== 1) throw new Error("wrong winner");
  };
}

// --- time --------------------------------------------------------------------
// Interleaved rounds with a full GC before each, best of each side: this
// machine is shared and noisy, and the Promise.race side leaves garbage
// (its leaked reactions) that must not be collected on our clock.

const timeIterations = Math.min(ITERATIONS, 200_000);
async function timePair(label, makeOurs, makeTheirs) {
  let ours = Infinity;
  let theirs = Infinity;
  for (let round = 0; round < 3; round++) {
    heapUsed();
    ours = Math.min(ours, await nsPerOpAsync(makeOurs(), timeIterations, { rounds: 1 }));
    heapUsed();
    theirs = Math.min(theirs, await nsPerOpAsync(makeTheirs(), timeIterations, { rounds: 1 }));
  }
  return compare(label, ours, theirs, { atMost: 1.5 });
}

let ok = true;
ok =
  (await timePair(
    "select {token, signal, oneshot} vs Promise.race",
    () => selectWithSignal(new CancellationToken(), new AbortController().signal),
    () => raceWithSignal(new CancellationToken(), new AbortController().signal),
  )) && ok;
ok =
  (await timePair(
    "select {token, oneshot, sleep 60 s} vs Promise.race",
    () => selectWithSleep(new CancellationToken()),
    () => raceWithSleep(new CancellationToken()),
  )) && ok;

// For scale, not a goal: Promise.race over promises made fresh each iteration
// (nothing long-lived, so nothing leaks and no GC pressure builds up). This is
// the floor a race can reach when it does not race the long-lived shutdown
// token at all; part of select's margin above comes from the leaking race's
// growing reaction lists. A foreign AbortSignal branch costs one native
// addEventListener/removeEventListener pair per select (the shared listener is
// removed whenever no select waits, so nothing stays on the signal).
{
  const fresh = async () => {
    const [tx, rx] = oneshot();
    const result = Promise.race([new Promise(() => {}), new Promise(() => {}), rx.recv()]);
    tx.send(1);
    if ((await result) !== 1) throw new Error("wrong winner");
  };
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    heapUsed();
    best = Math.min(best, await nsPerOpAsync(fresh, timeIterations, { rounds: 1 }));
  }
  info("Promise.race over 3 fresh promises (no leak, for scale)", fmtNs(best));
}

// --- heap ----------------------------------------------------------------------

// The long-lived token and signal stay reachable until after the last
// measurement, as a service's shutdown token does.
async function growth(makeBody) {
  const body = makeBody();
  for (let i = 0; i < 10_000; i++) await body(); // warm up before the baseline
  globalThis.__selectBenchBody = body;
  const before = await settledHeapUsed();
  for (let i = 0; i < ITERATIONS; i++) await body();
  const after = await settledHeapUsed();
  globalThis.__selectBenchBody = undefined;
  return after - before;
}

const n = ITERATIONS.toLocaleString("en-US");
{
  const ours = await growth(() => selectWithSignal(new CancellationToken(), new AbortController().signal));
  ok = bound(`heap growth, ${n} selects {token, signal, oneshot}`, ours, 1 << 20) && ok;
  const theirs = await growth(() => raceWithSignal(new CancellationToken(), new AbortController().signal));
  info(`heap growth, ${n} Promise.race, same inputs`, `${fmtBytes(theirs).padStart(10)} (for comparison)`);
}
{
  const ours = await growth(() => selectWithSleep(new CancellationToken()));
  ok = bound(`heap growth, ${n} selects {token, oneshot, sleep 60 s}`, ours, 1 << 20) && ok;
  const theirs = await growth(() => raceWithSleep(new CancellationToken()));
  info(`heap growth, ${n} Promise.race, same inputs`, `${fmtBytes(theirs).padStart(10)} (for comparison)`);
}

if (!ok) console.log("select bench: some goals missed (see MISS rows)");
