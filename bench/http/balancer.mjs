// Rolling restarts behind a real load balancer (issue 17, part 3), shared by
// test/http/balancers.test.ts (ours, asserted) and bench/http-balancers.bench.mjs
// (ours and the peers, side by side).
//
// Three instances of one server listen on loopback ports; nginx or HAProxy
// (Debian packages, run unprivileged in the foreground with a config written
// to a temporary directory) balances keep-alive POST load over them; each
// instance in turn gets SIGTERM, is waited for, replaced on the same port,
// and the next restart waits for the replacement's /healthz plus a pace
// longer than the balancer's failure window. Every request is counted by
// what the client saw: ok (2xx), failed (anything else, the balancer's 502
// included). Loopback only; bounded in time; every process is stopped.
import http from "node:http";
import net from "node:net";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The balancer setups the docs recommend (docs/scale.md, "Behind a load balancer"). */
export const SETUPS = {
  // nginx: keep-alive to the instances; a failed instance is skipped for 1 s.
  "nginx keepalive": { balancer: "nginx", beforeCloseMs: 0 },
  // HAProxy: an HTTP check of /healthz every 100 ms, keep-alive to the instances.
  "haproxy check": { balancer: "haproxy", beforeCloseMs: 0 },
  // The same, and the instance keeps serving (readiness 503) for longer than
  // two check intervals, so HAProxy marks it down before its listener closes.
  "haproxy check + beforeCloseMs": { balancer: "haproxy", beforeCloseMs: 300 },
};

/** `true` when the balancer's binary is on PATH. */
export function haveBalancer(balancer) {
  return spawnSync(balancer, ["-v"], { stdio: "ignore" }).error === undefined;
}

/** A free loopback port (the kernel picks; closed again at once). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function nginxConfig(dir, port, upstreams) {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
${upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=1s;`).join("\n")}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

function haproxyConfig(port, upstreams) {
  return `global
  maxconn 1024
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  retries 3
  option redispatch
frontend web
  bind 127.0.0.1:${port}
  default_backend app
backend app
  balance roundrobin
  http-reuse safe
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 100 fall 1 rise 1
${upstreams.map((p, i) => `  server s${i} 127.0.0.1:${p} check`).join("\n")}
`;
}

/** Starts the balancer in the foreground; resolves once it accepts connections. */
export async function startBalancer(balancer, port, upstreams) {
  const dir = mkdtempSync(join(tmpdir(), `cancelkit-${balancer}-`));
  const config = join(dir, `${balancer}.conf`);
  writeFileSync(config, balancer === "nginx" ? nginxConfig(dir, port, upstreams) : haproxyConfig(port, upstreams));
  const args = balancer === "nginx" ? ["-c", config, "-p", dir, "-e", join(dir, "error.log")] : ["-f", config, "-db"];
  const child = spawn(balancer, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${balancer} exited: ${stderr}`);
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (ok) break;
    await sleep(25);
  }
  return {
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** GET /healthz on an instance: its status, or 0 when nothing answers. */
function health(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false, timeout: 500 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

/**
 * Keep-alive POST load through the balancer until `stop()`: `connections`
 * loops, each waiting for its answer before the next request.
 */
export function postLoad(port, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const tally = { ok: 0, failed: 0, statuses: {} };
  let running = true;
  const once = () =>
    new Promise((resolve) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/", method: "POST", agent, headers: { "content-type": "text/plain" } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(-1));
      });
      req.on("error", () => resolve(-1));
      req.end("payload");
    });
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      const status = await once();
      if (status >= 200 && status < 300) tally.ok++;
      else {
        tally.failed++;
        tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
      }
    }
  });
  return {
    tally,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/**
 * Restarts every instance once, one after another, under load. `start(port)`
 * starts an instance and resolves with its child process once it listens.
 * Returns the load's tally and how many instances exited with code 0.
 */
export async function rollingRestart({ balancer, start, instances = 3, connections = 16, paceMs = 1200, warmupMs = 500 }) {
  const ports = await Promise.all(Array.from({ length: instances }, freePort));
  const lbPort = await freePort();
  const children = await Promise.all(ports.map((port) => start(port)));
  const lb = await startBalancer(balancer, lbPort, ports);
  const exits = [];
  const load = postLoad(lbPort, connections);
  try {
    await sleep(warmupMs);
    for (let i = 0; i < instances; i++) {
      const old = children[i];
      const exited = new Promise((resolve) => old.once("exit", (code) => resolve(code)));
      old.kill("SIGTERM");
      const code = await Promise.race([exited, sleep(10_000).then(() => "timeout")]);
      if (code === "timeout") old.kill("SIGKILL");
      exits.push(code);
      children[i] = await start(ports[i]);
      for (let tries = 0; tries < 100 && (await health(ports[i])) !== 200; tries++) await sleep(20);
      await sleep(paceMs);
    }
  } finally {
    await load.stop();
    await lb.stop();
    for (const child of children) {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
    }
  }
  return { ...load.tally, cleanExits: exits.filter((code) => code === 0).length, exits };
}
