// Run by tests/serve/test_clients.py under Node against a real `perfkit serve`: the typed client end to
// end. Prints one JSON line of what it saw; any failed check exits non-zero with the reason.
import { PerfkitClient, PerfkitError } from "./client.js";
import type { ClaimedJob } from "./client.js";

const env = process.env as Record<string, string>;
const client = new PerfkitClient({ baseUrl: env.BASE_URL!, token: env.TOKEN!, namespace: env.NS! });
const seen: Record<string, unknown> = {};

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const etag = await client.set("deck:1", { title: "Q3", slides: 12 }, { ttl: 60, tags: ["decks"], strategy: "browser" });
const hit = await client.get<{ title: string; slides: number }>("deck:1");
check(hit.status === "hit" && hit.value.title === "Q3" && hit.etag === etag, "hit");
seen.cacheControl = hit.status === "hit" ? hit.cacheControl : null;
const again = await client.get("deck:1", { etag });
check(again.status === "not-modified", "304");
check((await client.get("nope")).status === "miss", "miss");

await client.setBytes("thumb", new Uint8Array([0, 1, 2, 255]), { ttl: 60, tags: ["thumbs"] });
const bytes = await client.get<Uint8Array>("thumb");
check(bytes.status === "hit" && bytes.value instanceof Uint8Array && bytes.value[3] === 255, "bytes");

const batch = await client.setMany([{ key: "a", value: 1 }, { key: "b", value: [2], tags: ["decks"] }]);
check(batch.written.length === 2, "batch set");
const many = await client.getMany(["a", "b", "c"]);
check(many.missing.join() === "c" && many.values.b?.value !== undefined, "batch get");
seen.invalidated = (await client.invalidate({ tags: ["decks"] })).removed;
check((await client.get("deck:1")).status === "miss", "invalidated");

try {
  await client.set("bad", 1, { ttl: -5 });
  check(false, "a negative ttl must be refused");
} catch (error) {
  check(error instanceof PerfkitError && error.status === 422 && error.field === "ttl", "problem names ttl");
  seen.problemField = (error as PerfkitError).field;
}

// A job for a remote type, worked by this Node process through the client's worker loop.
const job = await client.enqueue({ type: "video", args: ["from-node.mp4"], priority: "critical" });
const stop = new AbortController();
await client.work(
  ["video"],
  async (claimed: ClaimedJob) => {
    if (claimed.id !== job.id) throw new Error("not this test's job");
    await client.heartbeat(claimed, { progress: 0.5, message: "encoding" });
    stop.abort();
    return { rendered: claimed.args[0], by: "node" };
  },
  { signal: stop.signal, idleMs: 20 },
);
const done = await client.job(job.id);
check(done.status === "succeeded", `job status ${done.status}`);
seen.result = done.result;
seen.types = (await client.jobTypes()).types.map((t) => t.name).sort();
seen.health = (await client.health()).ok;
console.log(JSON.stringify(seen));
