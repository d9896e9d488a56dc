// Leaves a 30 s CancellationToken.timeout() and a 30 s sleep(ms, { ref: false })
// pending and ends: the runner checks that the process exits at once, as on
// Node (the timers are unref'd). The entry point is given as a file URL.
const args = globalThis.Deno ? globalThis.Deno.args : process.argv.slice(2);
const { CancellationToken, sleep } = await import(args[0]);
CancellationToken.timeout(30_000).onCancel(() => console.log("timeout fired"));
sleep(30_000, { ref: false }).then(() => console.log("sleep fired"));
console.log("pending");
