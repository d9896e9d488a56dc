/*
 * How serve() sees HTTP/1 requests: two diagnostics channels, subscribed
 * while any server is served. In a file of its own so that no coordinator
 * from another test is still attached when it starts.
 */
import * as http from "node:http";
import diagnosticsChannel from "node:diagnostics_channel";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { serve } from "../../src/http/index.js";
import { heldServer, listen, RawClient, suiteCleanup } from "./helpers.js";

const cleanup = suiteCleanup();

function okServer(): http.Server {
  return cleanup.add(http.createServer((_req, res) => res.end("ok")));
}

describe("diagnostics channels", () => {
  const REQUEST_START = "http.server.request.start";

  it("requests are seen through diagnostics channels, subscribed while any server is served, with no listener on the server's 'request'", async () => {
    const RESPONSE_FINISH = "http.server.response.finish";
    const subscribed = (): [boolean, boolean] => [diagnosticsChannel.hasSubscribers(REQUEST_START), diagnosticsChannel.hasSubscribers(RESPONSE_FINISH)];
    expect(subscribed()).toEqual([false, false]);
    const { server, arrived, respond } = heldServer(cleanup);
    const other = okServer();
    const graceful = serve(server, { idleGraceMs: 60_000 });
    const otherGraceful = serve(other);
    expect(server.listenerCount("request")).toBe(1);
    expect(subscribed()).toEqual([true, true]);
    const port = await listen(server);
    const client = new RawClient(cleanup.add(net.connect(port, "127.0.0.1")));
    client.get("/");
    await arrived;
    const done = graceful.shutdown();
    respond();
    expect((await client.response(1)).headers.connection).toBe("close");
    await done;
    // The other server is still served.
    expect(subscribed()).toEqual([true, true]);
    await otherGraceful.shutdown();
    expect(subscribed()).toEqual([false, false]);
  });
});
