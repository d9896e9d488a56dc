// Loaded (node --import) before a doc example the doc-test runner runs.
// Examples listen on fixed ports (8080, 3000) as a reader's service would;
// here every listen goes to an ephemeral port on loopback, so a run never
// collides with anything else on the machine, and the runner learns the
// port over the IPC channel (which is unref()ed: it never keeps the example
// alive, so "the process exits on its own" stays testable).
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    // listen(port[, host][, backlog][, cb]) → listen(0, "127.0.0.1", ...rest without host)
    const rest = args.slice(1);
    if (typeof rest[0] === "string") rest.shift();
    args = [0, "127.0.0.1", ...rest];
  } else if (typeof args[0] === "object" && args[0] !== null && !("fd" in args[0]) && !("path" in args[0]) && !("_handle" in args[0])) {
    args = [{ ...args[0], port: 0, host: "127.0.0.1" }, ...args.slice(1)];
  }
  this.once("listening", () => {
    const address = this.address();
    if (typeof address === "object" && address !== null) process.send?.({ listening: address.port });
  });
  return listen.apply(this, args);
};
process.channel?.unref();
