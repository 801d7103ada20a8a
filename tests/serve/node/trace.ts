// Run by tests/serve/test_clients.py under Node, with a recording `fetch` (no service): the trace
// context the caller's `propagate` gives goes out with every request, and cannot replace the client's
// own headers. Prints one JSON line of the headers each request carried.
import { PerfkitClient } from "./client.js";

const sent: Record<string, string>[] = [];
const recording = (async (_url: string | URL | Request, init?: RequestInit) => {
  sent.push({ ...(init?.headers as Record<string, string>) });
  return new Response(JSON.stringify({ id: "video:1", status: "queued" }), {
    status: 200,
    headers: { "content-type": "application/json" },
  });
}) as typeof fetch;

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const traced = new PerfkitClient({
  baseUrl: "http://127.0.0.1:9",
  token: "the-token",
  fetch: recording,
  propagate: (carrier) => {
    carrier.traceparent = traceparent;
    carrier.tracestate = "perfkit=1";
    carrier.authorization = "Bearer not-the-token";
  },
});
await traced.enqueue({ type: "video", args: [] });
await traced.set("k", 1);
const throwing = new PerfkitClient({
  baseUrl: "http://127.0.0.1:9",
  token: "the-token",
  fetch: recording,
  propagate: () => {
    throw new Error("no tracer");
  },
});
await throwing.enqueue({ type: "video", args: [] });
await new PerfkitClient({ baseUrl: "http://127.0.0.1:9", token: "the-token", fetch: recording }).enqueue({
  type: "video",
  args: [],
});
console.log(JSON.stringify(sent));
