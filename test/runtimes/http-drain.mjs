// A node:http server drained by serve() under a little load, on loopback:
// 8 keep-alive clients loop on a fast route while 3 slow requests are in
// flight; then the shutdown starts. Nothing accepted may be lost: every
// request gets its 200, and a client that comes back after being told
// `Connection: close` is refused (ECONNREFUSED) — never reset. The slow
// requests finish, the deadline is not hit, and the process exits on its own
// (the runner checks that). Runs on Node (the control), Deno and Bun; the
// package's dist/ directory is given as a file URL. Prints one JSON line.
import http from "node:http";

const args = globalThis.Deno ? globalThis.Deno.args : process.argv.slice(2);
const dist = new URL(args[0].endsWith("/") ? args[0] : `${args[0]}/`);
const { serve } = await import(new URL("http/index.js", dist).href);
const { CancellationToken } = await import(new URL("index.js", dist).href);

const result = { ok: 0, refused: 0, slowOk: 0, lost: [], report: null, error: null };
const fail = (error) => {
  result.error = String(error?.stack ?? error);
  console.log(JSON.stringify(result));
  process.exitCode = 1;
};

try {
  const server = http.createServer((req, res) => {
    setTimeout(() => res.end("ok"), req.url === "/slow" ? 300 : 2);
  });
  const stop = new CancellationToken();
  const graceful = serve(server, { signal: stop, drainTimeoutMs: 5_000 });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  const get = (path) =>
    new Promise((resolve) => {
      const req = http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200 ? "ok" : `status ${res.statusCode}`));
        res.on("error", (e) => resolve(e.code ?? e.message));
      });
      req.on("error", (e) => resolve(e.code ?? e.message));
    });

  let draining = false;
  let finished = false;
  const client = async () => {
    while (!finished) {
      const outcome = await get("/");
      if (outcome === "ok") result.ok++;
      else if (outcome === "ECONNREFUSED" && draining) return void result.refused++;
      else return void result.lost.push(outcome);
    }
  };
  const clients = Array.from({ length: 8 }, client);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const slow = Array.from({ length: 3 }, () => get("/slow").then((o) => (o === "ok" ? result.slowOk++ : result.lost.push(`slow: ${o}`))));
  await new Promise((resolve) => setTimeout(resolve, 50));
  draining = true;
  stop.cancel("test shutdown");
  const report = await graceful.shutdown();
  result.report = { requestsCompletedWhileDraining: report.requestsCompletedWhileDraining, deadlineHit: report.deadlineHit, connectionsForced: report.connectionsForced };
  finished = true;
  await Promise.all([...clients, ...slow]);
  agent.destroy();
  const problems = [];
  if (result.lost.length > 0) problems.push(`lost ${result.lost.length}: ${result.lost.slice(0, 5).join(", ")}`);
  if (result.ok < 20) problems.push(`only ${result.ok} requests answered before and during the drain`);
  if (result.slowOk !== 3) problems.push(`${result.slowOk} of 3 slow requests answered`);
  if (report.deadlineHit) problems.push("the deadline was hit");
  if (report.requestsCompletedWhileDraining < 3) problems.push(`${report.requestsCompletedWhileDraining} requests completed while draining (the slow ones were in flight)`);
  if (problems.length > 0) fail(new Error(problems.join("; ")));
  else console.log(JSON.stringify(result));
} catch (error) {
  fail(error);
}
