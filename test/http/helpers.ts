/*
 * Shared fixtures for the HTTP suites: servers per protocol, scripted raw
 * clients, TLS material generated at test time, and a cleanup registry so
 * every socket, session and server is closed in afterEach.
 */
import { execFileSync } from "node:child_process";
import diagnosticsChannel from "node:diagnostics_channel";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { afterAll, afterEach, expect } from "vitest";

export type H1Protocol = "http" | "https";
export type H2Protocol = "h2c" | "h2";
export type Protocol = H1Protocol | H2Protocol;

let material: { key: Buffer; cert: Buffer } | undefined;

/** A self-signed certificate for 127.0.0.1, made once per test process with `openssl`. */
export function tlsMaterial(): { key: Buffer; cert: Buffer } {
  if (material !== undefined) return material;
  const dir = mkdtempSync(join(tmpdir(), "cancelkit-tls-"));
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      { stdio: "ignore" },
    );
    material = { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return material;
}

type Closable = { destroy(): unknown } | { close(): unknown };

/** Everything a test opened, closed in afterEach whatever happened. */
export class Cleanup {
  #items: Array<() => void | Promise<void>> = [];

  add<T extends Closable | net.Server>(item: T): T {
    this.#items.push(() => {
      if (item instanceof net.Server) {
        // Closed even when not listening: its 'close' lets a coordinator
        // serve() left attached close too (see suiteCleanup).
        return new Promise<void>((resolve) => {
          (item as { closeAllConnections?: () => void }).closeAllConnections?.();
          item.close(() => resolve());
        });
      }
      if ("destroy" in item) item.destroy();
      else item.close();
      return undefined;
    });
    return item;
  }

  defer(fn: () => void | Promise<void>): void {
    this.#items.push(fn);
  }

  async run(): Promise<void> {
    const items = this.#items.reverse();
    this.#items = [];
    for (const item of items) await item();
  }
}

/** Creates a (not yet listening) server of `protocol` with a compat `(req, res)` handler. */
export function createServer(protocol: Protocol, handler: (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void): http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer {
  switch (protocol) {
    case "http":
      return http.createServer(handler as http.RequestListener);
    case "https":
      return https.createServer(tlsMaterial(), handler as http.RequestListener);
    case "h2c":
      return http2.createServer(handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    case "h2":
      return http2.createSecureServer(tlsMaterial(), handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  }
}

export async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A TCP (or TLS) connection to 127.0.0.1, connected. */
export async function connect(protocol: H1Protocol | "tcp", port: number, options: { alpn?: string[] } = {}): Promise<net.Socket> {
  const socket =
    protocol === "https"
      ? tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: options.alpn ?? ["http/1.1"] })
      : net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once(protocol === "https" ? "secureConnect" : "connect", () => resolve());
    socket.once("error", reject);
  });
  return socket;
}

/** Tries a new TCP connection; resolves with the error code, or "connected". */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A scripted HTTP/1.1 client over one raw socket: write requests exactly when
 * the test says, parse responses as they arrive, and record how the socket
 * ended (FIN vs error).
 */
export class RawClient {
  readonly socket: net.Socket;
  readonly responses: RawResponse[] = [];
  error: NodeJS.ErrnoException | null = null;
  gotEnd = false;
  closed = false;
  #buffer = "";
  #waiters: Array<() => void> = [];
  /** Called synchronously, inside the 'data' event, as each response completes. */
  onResponse: ((response: RawResponse) => void) | null = null;
  /** Called synchronously as each chunk of the current response body arrives. */
  onData: ((text: string) => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      this.onData?.(chunk);
      this.#parse();
      this.#wake();
    });
    socket.on("end", () => {
      this.gotEnd = true;
      this.#wake();
    });
    socket.on("error", (error) => {
      this.error = error;
      this.#wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }

  static async open(protocol: H1Protocol, port: number): Promise<RawClient> {
    return new RawClient(await connect(protocol, port));
  }

  get(path: string, extra = ""): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`);
  }

  /** Resolves once `predicate()` holds, re-checked on every socket event. */
  async until(predicate: () => boolean): Promise<void> {
    while (!predicate()) {
      if (this.closed && !predicate()) throw new Error(`socket closed while waiting (error: ${this.error?.code ?? "none"}, responses: ${this.responses.length})`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async response(n: number): Promise<RawResponse> {
    await this.until(() => this.responses.length >= n);
    return this.responses[n - 1]!;
  }

  async ended(): Promise<void> {
    await this.until(() => this.closed);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #parse(): void {
    for (;;) {
      const head = this.#buffer.indexOf("\r\n\r\n");
      if (head === -1) return;
      const lines = this.#buffer.slice(0, head).split("\r\n");
      const status = Number(lines[0]!.split(" ")[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let rest = this.#buffer.slice(head + 4);
      let body: string;
      if (headers["content-length"] !== undefined) {
        const length = Number(headers["content-length"]);
        if (rest.length < length) return;
        body = rest.slice(0, length);
        rest = rest.slice(length);
      } else if (headers["transfer-encoding"] === "chunked") {
        body = "";
        let offset = 0;
        for (;;) {
          const eol = rest.indexOf("\r\n", offset);
          if (eol === -1) return;
          const size = parseInt(rest.slice(offset, eol), 16);
          if (rest.length < eol + 2 + size + 2) return;
          body += rest.slice(eol + 2, eol + 2 + size);
          offset = eol + 2 + size + 2;
          if (size === 0) break;
        }
        rest = rest.slice(offset);
      } else if (status >= 100 && status < 200) {
        body = ""; // an interim response (100 Continue) has no body
      } else {
        return; // not used by these tests
      }
      this.#buffer = rest;
      const response = { status, headers, body };
      this.responses.push(response);
      this.onResponse?.(response);
    }
  }
}

/** An HTTP/2 client session, connected. */
export async function h2connect(protocol: H2Protocol, port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(
    `${protocol === "h2" ? "https" : "http"}://127.0.0.1:${port}`,
    protocol === "h2" ? { rejectUnauthorized: false } : {},
  );
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  return session;
}

export interface H2Result {
  status: number;
  body: string;
  error: NodeJS.ErrnoException | null;
  rstCode: number;
}

/** Runs one request on an HTTP/2 session and collects its outcome (never rejects). */
export function h2request(session: http2.ClientHttp2Session, path: string, options: { method?: string; body?: string } = {}): { stream: http2.ClientHttp2Stream; done: Promise<H2Result> } {
  const stream = session.request({ ":path": path, ":method": options.method ?? "GET" }, { endStream: options.body === undefined });
  let status = 0;
  let body = "";
  let error: NodeJS.ErrnoException | null = null;
  stream.setEncoding("utf8");
  stream.on("response", (headers) => {
    status = Number(headers[":status"]);
  });
  stream.on("data", (chunk: string) => {
    body += chunk;
  });
  stream.on("error", (e: NodeJS.ErrnoException) => {
    error = e;
  });
  const done = new Promise<H2Result>((resolve) => {
    stream.on("close", () => resolve({ status, body, error, rstCode: stream.rstCode ?? -1 }));
  });
  if (options.body !== undefined) stream.end(options.body);
  return { stream, done };
}

/** Resolves on the next macrotask: lets pending I/O callbacks run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A latch a handler waits on; the test releases it. */
export function latch(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

/**
 * An HTTP/1 server (closed by `cleanup`) whose responses wait for
 * `respond()`; `arrived` resolves once its first request is in the handler.
 */
export function heldServer(cleanup: Cleanup): { server: http.Server; arrived: Promise<void>; respond: () => void } {
  const arrived = latch();
  const gate = latch();
  const server = cleanup.add(
    http.createServer((_req, res) => {
      arrived.release();
      void gate.promise.then(() => res.end("ok"));
    }),
  );
  return { server, arrived: arrived.promise, respond: gate.release };
}

/** Socket and server handles currently open in this process, by type. */
export async function openHandles(): Promise<string[]> {
  // Closing handles finish on the next turns of the loop.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return process.getActiveResourcesInfo().filter((type) => /TCP|TLS|Http2/.test(type));
}

/**
 * A test file's Cleanup: run after each test, and after the file no socket,
 * session or server of it is left open, and no coordinator is left attached
 * (it would keep the HTTP diagnostics channels subscribed). Call once, at
 * the top of the file.
 */
export function suiteCleanup(): Cleanup {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());
  afterAll(async () => {
    expect(await openHandles()).toEqual([]);
    expect(diagnosticsChannel.hasSubscribers("http.server.request.start")).toBe(false);
  });
  return cleanup;
}
