/*
 * User code, as a service would write it: a worker takes one job from a
 * producer through a oneshot channel, or stops when shutdown is cancelled.
 *
 * The rule it must keep, whatever the order of "send", "close" and
 * "cancel": no job is lost. A job the producer's `send()` reported as
 * accepted (`true`) is processed; a job it could not hand over (`false`:
 * the worker had closed its receiver) stays the producer's to retry.
 *
 * `buggy: true` plants the classic race: the worker races its receive
 * against the shutdown with `Promise.race`. When shutdown wins, the
 * `recv()` it started is still waiting; a job sent before the worker gets
 * round to closing its receiver is taken by that orphaned `recv()`, and
 * nobody ever processes it. `select` polls the receiver without consuming
 * it, so a losing branch takes nothing.
 */
import { CancellationToken, type OneshotReceiver, select } from "../../src/index.js";

export interface WorkerOptions<T> {
  /** Processes a job. */
  process: (job: T) => void;
  /** Runs when shutdown wins, before the receiver closes (flush metrics, save state...). */
  onStop: () => Promise<void>;
  /** Plant the race: wait with `Promise.race` instead of `select`. */
  buggy?: boolean;
}

/** Waits for one job or for `stop`; resolves with what happened. */
export async function worker<T>(rx: OneshotReceiver<T>, stop: CancellationToken, options: WorkerOptions<T>): Promise<"processed" | "stopped" | "no job"> {
  let next: { job: T } | "stop" | "closed";
  if (options.buggy === true) {
    next = await Promise.race([
      rx.recv().then(
        (job) => ({ job }),
        () => "closed" as const,
      ),
      stop.cancelled().then(() => "stop" as const),
    ]);
  } else {
    const r = await select({ job: rx, stop }, { biased: true }).catch(() => ({ key: "closed" as const }));
    next = r.key === "job" ? { job: r.value } : r.key;
  }
  if (next === "closed") return "no job";
  if (next !== "stop") {
    options.process(next.job);
    return "processed";
  }
  await options.onStop();
  // From here on the producer's send() returns false: it keeps its job.
  rx.close();
  // A job sent before the close was accepted: it is ours to process.
  const left = rx.tryRecv();
  if (left.state === "value") {
    options.process(left.value);
    return "processed";
  }
  return "stopped";
}
