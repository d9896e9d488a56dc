/*
 * The `node:diagnostics_channel` channels this library publishes on.
 *
 * Invariants:
 * - a payload is built only when the channel has a subscriber
 *   (`hasSubscribers`), so with none a lifecycle event costs one property
 *   read and nothing else;
 * - publishing never throws into our code: `diagnostics_channel` reports a
 *   throwing subscriber as an uncaught exception on the next tick, like an
 *   `EventTarget` listener;
 * - imported only by Node entry points (`signals`, `http`): the neutral entry
 *   never reaches `node:diagnostics_channel`.
 */
import diagnosticsChannel, { type Channel } from "node:diagnostics_channel";

/** Names of the channels, documented in docs/diagnostics.md. */
export const SERVE_STATE_CHANNEL = "cancelkit:serve:state";
export const SERVE_REPORT_CHANNEL = "cancelkit:serve:report";
export const SHUTDOWN_CHANNEL = "cancelkit:shutdown";
export const WATCHDOG_CHANNEL = "cancelkit:watchdog";

export const serveStateChannel: Channel = diagnosticsChannel.channel(SERVE_STATE_CHANNEL);
export const serveReportChannel: Channel = diagnosticsChannel.channel(SERVE_REPORT_CHANNEL);
export const shutdownChannel: Channel = diagnosticsChannel.channel(SHUTDOWN_CHANNEL);
export const watchdogChannel: Channel = diagnosticsChannel.channel(WATCHDOG_CHANNEL);

/** Publishes `make()` on `target` when, and only when, someone subscribed. */
export function publish(target: Channel, make: () => object): void {
  if (target.hasSubscribers) target.publish(make());
}
