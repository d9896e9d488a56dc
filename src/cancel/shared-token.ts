/*
 * A token that crosses threads: `shareToken()` on the origin side, `adoptToken()`
 * in the worker. Platform-neutral: SharedArrayBuffer, Atomics and MessageChannel
 * are web platform, so nothing here imports a Node module.
 *
 * Invariants:
 * 1. One share is one 4-byte SharedArrayBuffer (the *flag*) and one
 *    MessageChannel. The origin keeps `port1`, the handle carries `port2`.
 * 2. The flag goes from LIVE to CANCELLED once, written only by the origin,
 *    *before* it posts the reason: a busy loop that never yields sees
 *    `isCancelled` at once, and the reason follows through the port.
 * 3. Exactly one of three things ends a share, and each closes both ports:
 *    the origin token is cancelled (flag, then reason, then close), the
 *    origin disposes the share (a release message, then close), or the
 *    adopting side goes (it disposes: a release message, then close; or its
 *    thread exits: the port closes). Release is a message, not only a
 *    close, because a close is seen late or never by some runtimes.
 *    The origin's `onCancel` registration is dropped in every case, so a
 *    long-lived token holds nothing for a share that ended.
 * 4. Ports are `unref()`ed where the runtime has that (Node): a share never
 *    keeps a process or a worker thread alive on its own.
 * 5. The origin token holds its share (through its callback), never the
 *    reverse, and the origin port holds the share only weakly: a share whose
 *    token is garbage is collected, and its port closed (an open port is
 *    held by the runtime until closed). The adopting side holds its local
 *    token strongly, because code may keep only `signal` or `cancelled()`.
 *    The handle's port is closed when the handle is garbage: a port that
 *    never left this thread would hold the messages posted to it forever.
 */
import { assertOptions, typeError } from "../internal/errors.js";
import { CancellationToken } from "./cancellation-token.js";

/** The flag's value once cancelled (it starts at 0); only the origin writes it. */
const SHARED_CANCELLED = 1;

/** The tag on every handle, so `adoptToken()` can tell a handle from anything else. */
const SHARED_TOKEN_KIND = "cancelkit.shared-token";

/** Messages between the two sides; only "release" goes from the adopter to the origin. */
type SharedTokenMessage =
  | { kind: "cancel"; reason: unknown }
  | { kind: "cancel-stand-in"; description: string }
  | { kind: "cancel-dom"; name: string; message: string }
  | { kind: "release" };

/**
 * What crosses the thread boundary: plain data that `postMessage` and
 * `workerData` clone, plus one `MessagePort` that must be listed in the
 * transfer list (use {@link TokenShare.transfer}).
 */
export interface SharedTokenHandle {
  /** Always `"cancelkit.shared-token"`. */
  readonly kind: "cancelkit.shared-token";
  /** The cancellation flag, shared (not copied) between the threads. */
  readonly flag: SharedArrayBuffer;
  /** The port the reason arrives on. Transfer it; do not use it yourself. */
  readonly port: MessagePort;
}

/** Options of {@link adoptToken}. */
export interface AdoptTokenOptions {
  /**
   * Keep this thread alive while the share is live. By default the port is
   * `unref()`ed (where the runtime has that), like the library's timers, so
   * a worker waiting on nothing but the token may exit.
   * @defaultValue false
   */
  keepAlive?: boolean;
}

type PortLike = MessagePort & { unref?: () => void; ref?: () => void };

function unrefPort(port: PortLike): void {
  if (typeof port.unref === "function") port.unref();
}

/**
 * Closes the port of a share that was garbage-collected while live: its token
 * is unreachable too (the token's callback holds the share), so it can never
 * be cancelled, and the adopter is released. Without this an open port, which
 * the runtime holds, would keep the share's memory forever.
 */
const sharedTokenPorts = new FinalizationRegistry<MessagePort>((port) => port.close());

/**
 * Closes the handle's port once the handle is garbage. A port that was
 * transferred is a detached object here, and closing it does nothing; one
 * that never left this thread can no longer be sent, and would otherwise
 * hold the messages posted to it (the reason, a release) forever.
 */
const sharedTokenHandles = new FinalizationRegistry<MessagePort>((port) => port.close());

/**
 * The origin side of a token shared with another thread. Made by
 * {@link shareToken}.
 *
 * The share lives until the token is cancelled (the other thread learns it),
 * until it is disposed here (the other thread's token is released and never
 * cancelled by this share), or until the other side goes away (it disposed
 * its token or its thread exited). Whichever comes first, nothing is left
 * registered on the token and both ports are closed.
 *
 * @example Hand a token to a worker thread and cancel its busy loop
 * ```ts
 * import { Worker } from "node:worker_threads";
 * import { CancellationToken, shareToken } from "cancelkit/cancel";
 * const token = new CancellationToken();
 * using shared = shareToken(token);
 * const worker = new Worker(
 *   `const { workerData, parentPort } = require("node:worker_threads");
 *    const flag = new Int32Array(workerData.flag);
 *    parentPort.postMessage("spinning");
 *    while (Atomics.load(flag, 0) === 0) {} // what adoptToken(handle).isCancelled reads
 *    parentPort.postMessage("noticed");`,
 *   { eval: true, workerData: shared.handle, transferList: shared.transfer },
 * );
 * worker.once("message", () => token.cancel("stop"));
 * const noticed = await new Promise((resolve) => worker.on("message", (message) => message === "noticed" && resolve(message)));
 * console.assert(noticed === "noticed");
 * await worker.terminate();
 * ```
 */
export class TokenShare implements Disposable {
  #handle: SharedTokenHandle;
  #port: PortLike | null;
  #registration: Disposable | null = null;

  /** @internal Made by {@link shareToken}. */
  constructor(token: CancellationToken) {
    const flag = new SharedArrayBuffer(4);
    const channel = new MessageChannel();
    const port = channel.port1 as PortLike;
    this.#port = port;
    const handle = Object.freeze({ kind: SHARED_TOKEN_KIND, flag, port: channel.port2 });
    this.#handle = handle;
    sharedTokenHandles.register(handle, channel.port2);
    // The port's listeners hold this share weakly: an open port is held by
    // the runtime, and must not keep alive a share whose token is gone.
    // The adopter let go: it says so (a closing port is only noticed once
    // the closing thread's event loop runs, and a pool's idle worker may be
    // blocked in Atomics.wait), or its port closed because its thread exited.
    const end = TokenShare.#weakEnd(new WeakRef(this));
    port.addEventListener("message", end);
    port.addEventListener("close", end);
    port.start();
    unrefPort(port);
    sharedTokenPorts.register(this, port, this);
    const cells = new Int32Array(flag);
    this.#registration = token.onCancel((reason) => {
      Atomics.store(cells, 0, SHARED_CANCELLED);
      Atomics.notify(cells, 0);
      // Posting never throws: a port whose other side closed drops the
      // message, and sharedReasonMessage() only gives clonable ones.
      port.postMessage(sharedReasonMessage(reason));
      this.#end();
    });
  }

  /** The handle to send: pass it in `workerData` or a message, with {@link transfer} as the transfer list. */
  get handle(): SharedTokenHandle {
    return this.#handle;
  }

  /**
   * The transfer list that must accompany {@link handle}: its port.
   *
   * Typed `any[]` on purpose: Node's and the DOM's `MessagePort` types
   * differ, and a project that loads both (`lib: ["DOM"]` with
   * `@types/node`) could pass neither to the other's `transferList`.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  get transfer(): any[] {
    return [this.#handle.port];
  }

  /** `true` until the share ended: the token was cancelled, this share was disposed, or the other side went away. */
  get isLive(): boolean {
    return this.#port !== null;
  }

  /**
   * Ends the share without cancelling: the other thread's token is released
   * (it stays not cancelled, and its port closes) and the origin token drops
   * the share's callback. Idempotent; a no-op once the share ended.
   */
  [Symbol.dispose](): void {
    const port = this.#port;
    if (port === null) return;
    port.postMessage({ kind: "release" } satisfies SharedTokenMessage);
    this.#end();
  }

  /** A listener that ends the share if it is still alive; built outside the constructor so its closure holds nothing else. */
  static #weakEnd(self: WeakRef<TokenShare>): () => void {
    return () => {
      const share = self.deref();
      if (share !== undefined) share.#end();
    };
  }

  #end(): void {
    const port = this.#port;
    if (port === null) return;
    this.#port = null;
    this.#registration?.[Symbol.dispose]();
    this.#registration = null;
    sharedTokenPorts.unregister(this);
    port.close();
  }
}

/** The reason as a message: itself when it clones, rebuilt for DOMExceptions, a description otherwise. */
function sharedReasonMessage(reason: unknown): SharedTokenMessage {
  // DOMException is not serializable everywhere; its name and message are.
  if (reason instanceof DOMException) {
    return { kind: "cancel-dom", name: reason.name, message: reason.message };
  }
  try {
    // A throwaway clone finds uncloneable reasons before anything is posted.
    structuredClone(reason);
    return { kind: "cancel", reason };
  } catch {
    return { kind: "cancel-stand-in", description: describeSharedReason(reason) };
  }
}

function describeSharedReason(reason: unknown): string {
  if (typeof reason === "function") return `function ${reason.name || "(anonymous)"}`;
  if (typeof reason === "symbol") return String(reason);
  // Every primitive clones: anything else that failed is an object.
  const name = (reason as object).constructor?.name ?? "Object";
  const message = (reason as { message?: unknown }).message;
  return typeof message === "string" ? `an instance of ${name}: ${message}` : `an instance of ${name}`;
}

/**
 * Shares `token` with another thread (a `worker_threads` Worker, a Web
 * Worker, a worker pool's task): returns a {@link TokenShare} whose `handle`
 * goes to the other thread, where {@link adoptToken} turns it into a
 * {@link SharedToken}.
 *
 * When `token` is cancelled, the shared flag is set first (a busy loop in
 * the other thread sees it on its next read), then the reason is posted: the
 * reason itself when it can be structured-cloned, a `DOMException` of the
 * same name and message for a `DOMException`, and otherwise a stand-in
 * `DOMException` named `AbortError` that describes it. Sharing an already
 * cancelled token gives a handle that is already cancelled.
 *
 * One share is for one adopter. Share again for another thread; dispose a
 * share when its task is over, or let the task's side dispose it.
 *
 * @param token - the origin token.
 * @returns the share; see {@link TokenShare}.
 * @throws {TypeError} when `token` is not a {@link CancellationToken}.
 * @throws {TypeError} when the runtime has no `SharedArrayBuffer` (a browser
 *   page that is not cross-origin isolated).
 *
 * @example Cancel a task in a worker pool without terminating the worker
 * ```ts
 * import { CancellationToken, shareToken } from "cancelkit/cancel";
 * const token = new CancellationToken();
 * const shared = shareToken(token);
 * console.assert(shared.transfer[0] === shared.handle.port);
 * token.cancel("user pressed stop");
 * console.assert(new Int32Array(shared.handle.flag)[0] === 1 && !shared.isLive);
 * ```
 */
export function shareToken(token: CancellationToken): TokenShare {
  if (!(token instanceof CancellationToken)) throw typeError("call shareToken()", "token", "a CancellationToken", token);
  if (typeof SharedArrayBuffer !== "function") {
    throw new TypeError(
      "Cannot call shareToken(): SharedArrayBuffer is unavailable (in a browser the page must be cross-origin isolated)",
    );
  }
  return new TokenShare(token);
}

const adoptedSharedPorts = new WeakSet<object>();

/**
 * The other thread's side of a shared token: {@link isCancelled} reads the
 * shared flag, so a loop that never yields sees a cancel at once; the
 * asynchronous API ({@link cancelled}, {@link signal}, {@link token}) follows
 * a {@link CancellationToken} of this thread, cancelled with the origin's
 * reason as soon as this thread's event loop receives it.
 *
 * Between the two moments, in a loop that has not yielded yet, `isCancelled`
 * is `true` while {@link reason} is still `undefined`: the reason is a
 * message and needs the event loop. {@link throwIfCancelled} covers that gap
 * with a stand-in. Once the flag was seen set, the thread stays alive until
 * the reason has arrived, so an `await` after a busy loop always gets it.
 *
 * @example A CPU-bound loop that stops when the main thread cancels
 * ```ts
 * import { adoptToken, type SharedTokenHandle } from "cancelkit/cancel";
 * export function countPrimes(handle: SharedTokenHandle, limit: number): number {
 *   using shared = adoptToken(handle);
 *   let found = 0;
 *   for (let n = 2; n < limit; n++) {
 *     if ((n & 0xfff) === 0) shared.throwIfCancelled(); // synchronous, no yield needed
 *     let prime = true;
 *     for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
 *     if (prime) found++;
 *   }
 *   return found;
 * }
 * ```
 */
export class SharedToken implements Disposable {
  #cells: Int32Array;
  #port: PortLike | null;
  #token = new CancellationToken();

  /** @internal Made by {@link adoptToken}. */
  constructor(handle: SharedTokenHandle, keepAlive: boolean) {
    this.#cells = new Int32Array(handle.flag);
    const port = handle.port as PortLike;
    this.#port = port;
    port.addEventListener("message", (event: MessageEvent<SharedTokenMessage>) => this.#receive(event.data));
    // No "close" listener: every way the origin ends posts a message first
    // (the reason or a release), and one that goes without a word (its thread
    // ended, or the share was collected) closes this port with it.
    port.start();
    if (!keepAlive) unrefPort(port);
  }

  /**
   * `true` once the origin token is cancelled, read from shared memory:
   * synchronous and current even inside a loop that never yields.
   */
  get isCancelled(): boolean {
    if (Atomics.load(this.#cells, 0) !== SHARED_CANCELLED) return false;
    this.#awaitReason();
    return true;
  }

  /**
   * The origin's reason, once it has arrived in this thread (see the class
   * note); `undefined` before.
   */
  get reason(): unknown {
    return this.#token.reason;
  }

  /**
   * This thread's token: cancelled with the origin's reason when it arrives.
   * Make children of it, hand it to this thread's APIs. Disposing the shared
   * token does not cancel it.
   */
  get token(): CancellationToken {
    return this.#token;
  }

  /** This thread's `AbortSignal`, aborted with the origin's reason; the {@link token}'s signal. */
  get signal(): AbortSignal {
    return this.#token.signal;
  }

  /**
   * Resolves with the origin's reason once it has arrived in this thread;
   * never rejects. The same promise every call.
   *
   * #### Cancellation
   * There is nothing to abort: the promise settles only when the origin
   * token is cancelled. A released share (disposed on either side) never
   * settles it.
   */
  cancelled(): Promise<unknown> {
    if (Atomics.load(this.#cells, 0) === SHARED_CANCELLED) this.#awaitReason();
    return this.#token.cancelled();
  }

  /**
   * Throws when the origin token is cancelled: its reason if it has arrived,
   * otherwise (a loop that has not yielded since) a `DOMException` named
   * `AbortError` that says so. Cheap enough for a hot loop: one atomic read.
   */
  throwIfCancelled(): void {
    if (Atomics.load(this.#cells, 0) !== SHARED_CANCELLED) return;
    this.#awaitReason();
    const token = this.#token;
    if (token.isCancelled) throw token.reason;
    throw new DOMException(
      "The operation was cancelled in another thread (its reason arrives when this thread yields)",
      "AbortError",
    );
  }

  /**
   * Lets go of the share: the origin drops its callback and both ports
   * close. This thread's {@link token} is not cancelled; `isCancelled` keeps
   * reading the flag. Idempotent.
   */
  [Symbol.dispose](): void {
    const port = this.#port;
    if (port === null) return;
    // Never throws: a port whose other side closed drops the message.
    port.postMessage({ kind: "release" } satisfies SharedTokenMessage);
    this.#end();
  }

  /**
   * The flag is set, so the reason is on its way: keep this thread alive
   * until it arrives (the port closes right after), or a thread that saw the
   * flag and then awaits could end with the message still queued.
   */
  #awaitReason(): void {
    const port = this.#port;
    if (port !== null && !this.#token.isCancelled && typeof port.ref === "function") port.ref();
  }

  #receive(message: SharedTokenMessage): void {
    switch (message.kind) {
      case "cancel":
        this.#token.cancel(message.reason);
        break;
      case "cancel-dom":
        this.#token.cancel(new DOMException(message.message, message.name));
        break;
      case "cancel-stand-in":
        this.#token.cancel(
          new DOMException(
            `The operation was cancelled in another thread with a reason that cannot be cloned (${message.description})`,
            "AbortError",
          ),
        );
        break;
    }
    // Anything else is a release.
    this.#end();
  }

  #end(): void {
    const port = this.#port;
    if (port === null) return;
    this.#port = null;
    port.close();
  }
}

/**
 * Turns a handle made by {@link shareToken} in another thread into this
 * thread's {@link SharedToken}.
 *
 * Adopt a handle once. The shared token's `isCancelled` is synchronous from
 * any loop; its `cancelled()`, `signal` and `token` follow once this
 * thread's event loop receives the reason. Dispose it when the task is done
 * (`using`), so the origin drops its side at once; a thread that exits
 * releases the origin too.
 *
 * @param handle - the handle, as received (`workerData`, a message, a task).
 * @param options - see {@link AdoptTokenOptions}.
 * @returns the shared token.
 * @throws {TypeError} when `handle` is not a handle made by `shareToken()`,
 *   or was adopted already.
 *
 * @example Async code in a worker
 * ```ts
 * import { adoptToken, type SharedTokenHandle } from "cancelkit/cancel";
 * export async function fetchAll(handle: SharedTokenHandle, urls: string[]): Promise<number> {
 *   using shared = adoptToken(handle);
 *   let bytes = 0;
 *   for (const url of urls) {
 *     const response = await fetch(url, { signal: shared.signal });
 *     bytes += (await response.arrayBuffer()).byteLength;
 *   }
 *   return bytes;
 * }
 * ```
 */
export function adoptToken(handle: SharedTokenHandle, options?: AdoptTokenOptions): SharedToken {
  const action = "call adoptToken()";
  const candidate = handle as Partial<SharedTokenHandle> | null;
  if (
    typeof candidate !== "object" ||
    candidate === null ||
    candidate.kind !== SHARED_TOKEN_KIND ||
    !(candidate.flag instanceof SharedArrayBuffer) ||
    candidate.flag.byteLength < 4 ||
    typeof candidate.port?.postMessage !== "function"
  ) {
    throw typeError(action, "handle", "a handle made by shareToken()", handle);
  }
  assertOptions(action, options, ["keepAlive"]);
  const keepAlive = options?.keepAlive;
  if (keepAlive !== undefined && typeof keepAlive !== "boolean") {
    throw typeError(action, "options.keepAlive", "a boolean or undefined", keepAlive);
  }
  if (adoptedSharedPorts.has(candidate.port)) {
    throw new TypeError("Cannot call adoptToken(): this handle was adopted already; share the token again for another adopter");
  }
  adoptedSharedPorts.add(candidate.port);
  return new SharedToken(candidate as SharedTokenHandle, keepAlive === true);
}
