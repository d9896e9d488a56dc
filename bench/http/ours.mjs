// How the bench server children attach cancelkit, the way a service would:
// shutdown() from cancelkit/signals (SIGINT/SIGTERM) starts serve()'s drain,
// and `report` receives the ShutdownReport (or the error) once it resolves.
import { shutdown } from "../../dist/signals/index.js";
import { serve } from "../../dist/http/index.js";

export function serveOurs(server, options, report) {
  const token = shutdown();
  const graceful = serve(server, { signal: token, ...options });
  token.onCancel(() => {
    graceful.shutdown().then(report, (err) => report({ error: String(err) }));
  });
  return graceful;
}
