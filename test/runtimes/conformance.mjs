// The platform-neutral core, checked the same way on every runtime the
// README names (Deno, Bun, a browser; Node runs the full suite instead):
// tokens, channels, select, sleep, timeouts and AbortSignal interop.
// `run(lib)` takes the module namespace of `cancelkit` (the neutral bundle's
// entry point) and resolves with { passed: [names], failed: [{ name, error }] };
// it never throws. Plain JavaScript, no imports: a page loads it as is.

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
/** Resolves after every pending microtask and one macrotask. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

check("cancel() marks the whole subtree before any callback runs, parents first", (lib) => {
  const root = new lib.CancellationToken();
  const child = root.child();
  const grandchild = child.child();
  const seen = [];
  root.onCancel((reason) => seen.push(`root:${reason}:${grandchild.isCancelled}`));
  child.onCancel(() => seen.push("child"));
  grandchild.onCancel(() => seen.push("grandchild"));
  root.cancel("stop");
  root.cancel("again");
  assert(seen.join(",") === "root:stop:true,child,grandchild", `order ${seen}`);
  assert(grandchild.reason === "stop", "the first reason wins, in the subtree too");
});

check("cancelling a child never cancels its parent", (lib) => {
  const root = new lib.CancellationToken();
  const child = root.child();
  child.cancel();
  assert(child.isCancelled && !root.isCancelled, "child only");
  assert(child.reason instanceof DOMException && child.reason.name === "AbortError", "default reason is an AbortError DOMException");
});

check("a disposed onCancel registration never runs", (lib) => {
  const token = new lib.CancellationToken();
  let ran = false;
  const registration = token.onCancel(() => (ran = true));
  registration[Symbol.dispose]();
  token.cancel();
  assert(!ran, "callback ran");
});

check("token.signal is a real AbortSignal aborted with the same reason", (lib) => {
  const token = new lib.CancellationToken();
  const signal = token.signal;
  let event = null;
  signal.addEventListener("abort", () => (event = signal.reason));
  assert(signal instanceof AbortSignal && !signal.aborted, "pending AbortSignal");
  token.cancel("bye");
  assert(signal.aborted && signal.reason === "bye" && event === "bye", "aborted with the reason");
});

check("CancellationToken.from(signal) follows an AbortController", (lib) => {
  const controller = new AbortController();
  const token = lib.CancellationToken.from(controller.signal);
  assert(!token.isCancelled, "pending");
  controller.abort("gone");
  assert(token.isCancelled && token.reason === "gone", "followed the abort");
});

check("CancellationToken.any() takes the first source's reason", (lib) => {
  const a = new lib.CancellationToken();
  const b = new AbortController();
  const any = lib.CancellationToken.any([a, b.signal]);
  b.abort("b first");
  a.cancel("a second");
  assert(any.reason === "b first", `reason ${any.reason}`);
});

check("CancellationToken.timeout() cancels with a TimeoutError", async (lib) => {
  const token = lib.CancellationToken.timeout(20);
  const reason = await token.cancelled();
  assert(reason instanceof DOMException && reason.name === "TimeoutError", `reason ${reason}`);
});

check("runUntilCancelled() rejects with the reason when cancelled first", async (lib) => {
  const token = new lib.CancellationToken();
  const pending = token.runUntilCancelled((child) => new Promise((resolve) => child.onCancel(() => setTimeout(resolve, 50))));
  token.cancel("too late");
  const outcome = await pending.then(
    () => "resolved",
    (reason) => reason,
  );
  assert(outcome === "too late", `outcome ${outcome}`);
});

check("oneshot: a value sent is received once; a closed sender rejects with ChannelClosedError", async (lib) => {
  const [tx, rx] = lib.oneshot();
  assert(rx.tryRecv().state === "empty", "empty at first");
  assert(tx.send(42) === true, "send stores");
  assert((await rx.recv()) === 42, "received");
  const [tx2, rx2] = lib.oneshot();
  tx2.close();
  const error = await rx2.recv().catch((e) => e);
  assert(lib.isChannelClosedError(error), `error ${error}`);
});

check("watch: sends coalesce; changed() resolves once per unseen version", async (lib) => {
  const [tx, rx] = lib.watch(0);
  tx.send(1);
  tx.send(2);
  assert((await rx.changed()) === 2, "latest value");
  assert(!rx.hasChanged(), "seen");
  const next = rx.changed();
  tx.sendModify(() => {});
  assert((await next) === 2, "modify notifies");
  tx.close();
  assert(lib.isChannelClosedError(await rx.changed().catch((e) => e)), "closed and seen rejects");
});

check("select: the ready branch wins and a losing oneshot keeps its value", async (lib) => {
  const [tx, rx] = lib.oneshot();
  const token = new lib.CancellationToken();
  token.cancel("now");
  const r = await lib.select({ value: rx, stop: token }, { biased: true });
  assert(r.key === "stop", `winner ${r.key}`);
  tx.send("kept");
  const again = await lib.select({ value: rx, later: lib.sleep(1_000) });
  assert(again.key === "value" && again.value === "kept", `second ${again.key}`);
});

check("select({ signal }) rejects with the signal's reason, unchanged", async (lib) => {
  const controller = new AbortController();
  const reason = { why: "aborted" };
  const pending = lib.select({ never: new Promise(() => {}) }, { signal: controller.signal });
  controller.abort(reason);
  assert((await pending.catch((e) => e)) === reason, "reason unchanged");
});

check("sleep(ms) waits at least ms; a losing sleep does not delay the select", async (lib) => {
  const start = Date.now();
  await lib.sleep(30);
  assert(Date.now() - start >= 25, `slept ${Date.now() - start} ms`);
  const before = Date.now();
  const r = await lib.select({ quick: lib.sleep(5), slow: lib.sleep(5_000) });
  assert(r.key === "quick" && Date.now() - before < 2_000, "the quick branch");
});

check("a function branch's token is cancelled when it loses", async (lib) => {
  let loserReason = null;
  const r = await lib.select({
    fast: Promise.resolve("done"),
    slow: (token) => new Promise((resolve) => token.onCancel((reason) => resolve((loserReason = reason)))),
  }, { biased: true });
  await tick();
  assert(r.key === "fast" && loserReason !== null, "loser cancelled");
});

check("TaskTracker.wait() resolves when closed and empty", async (lib) => {
  const tracker = new lib.TaskTracker();
  let done = false;
  tracker.spawn(async () => {
    await lib.sleep(10);
    done = true;
  });
  tracker.close();
  await tracker.wait();
  assert(done && tracker.size === 0, "waited for the task");
});

check("misuse throws synchronously, naming the call", (lib) => {
  let error = null;
  try {
    lib.CancellationToken.timeout(-1);
  } catch (e) {
    error = e;
  }
  assert(error instanceof RangeError && /timeout/.test(error.message), `error ${error}`);
});

/** Runs every check against `lib`, each bounded to 5 s. */
export async function run(lib) {
  const passed = [];
  const failed = [];
  for (const { name, fn } of checks) {
    let timer;
    try {
      await Promise.race([
        Promise.resolve().then(() => fn(lib)),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("timed out after 5 s")), 5_000))),
      ]);
      passed.push(name);
    } catch (error) {
      failed.push({ name, error: String(error?.stack ?? error) });
    } finally {
      clearTimeout(timer);
    }
  }
  return { passed, failed };
}
