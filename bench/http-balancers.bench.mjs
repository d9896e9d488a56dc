// Rolling restarts behind nginx and HAProxy (issue 17, part 3): 3 instances
// restarted in turn under keep-alive POST load (16 connections), for each
// shutdown strategy — ours (serve()), plain server.close(), http-terminator
// and stoppable — behind each balancer setup the docs recommend. Prints the
// requests that failed per run (the client saw a 502/503 or an error) and
// how many of the 3 old instances exited with code 0 on their own.
//
// Env: HTTP_LB_SERVERS / HTTP_LB_SETUPS (comma lists to run a subset).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { header, info } from "./harness.mjs";
import { haveBalancer, rollingRestart, SETUPS } from "./http/balancer.mjs";

const child = fileURLToPath(new URL("./http/drain-server.mjs", import.meta.url));
const pick = (env, all) => (process.env[env] ? all.filter((x) => process.env[env].split(",").includes(x)) : all);
const servers = pick("HTTP_LB_SERVERS", ["ours", "close", "terminator", "stoppable"]);
const setups = pick("HTTP_LB_SETUPS", Object.keys(SETUPS));

header("Rolling restarts behind a load balancer (3 instances, keep-alive POST load)");

function start(strategy, beforeCloseMs) {
  return (port) =>
    new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [child, strategy, JSON.stringify({ port, beforeCloseMs, drainTimeoutMs: 5000, maxDelayMs: 10 })], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      proc.stdout.setEncoding("utf8");
      proc.stdout.on("data", (chunk) => {
        if (chunk.includes("ready")) resolve(proc);
      });
      proc.once("exit", (code) => reject(new Error(`${strategy} on ${port} exited with ${code} before it was ready`)));
    });
}

let oursFailed = 0;
for (const setup of setups) {
  const { balancer, beforeCloseMs } = SETUPS[setup];
  if (!haveBalancer(balancer)) {
    info(setup, `skipped: ${balancer} not installed (Debian: apt-get install ${balancer})`);
    continue;
  }
  for (const server of servers) {
    const result = await rollingRestart({ balancer, start: start(server, beforeCloseMs) });
    if (server === "ours") oursFailed += result.failed;
    const statuses = Object.entries(result.statuses).map(([status, n]) => `${status === "-1" ? "error" : status}×${n}`).join(" ") || "-";
    info(`${setup.padEnd(30)} ${server.padEnd(11)}`, `ok ${String(result.ok).padStart(6)}  failed ${String(result.failed).padStart(4)}  exited on their own ${result.cleanExits}/3  ${statuses}`);
  }
}
info("ours: failed requests over every setup", `${oursFailed} ${oursFailed === 0 ? "PASS" : "MISS"}`);
