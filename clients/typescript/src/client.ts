// A typed client of `perfkit serve` (fetch-based, zero dependencies; Node 18+ and browsers).
// Every call goes through `call(operationId, ...)`, typed by the generated `OperationTypes`: a body or an
// answer that the OpenAPI document does not describe does not compile.
import { operations } from "./types.js";
import type * as T from "./types.js";

export type * from "./types.js";

export interface ClientOptions {
  baseUrl: string;
  token: string;
  namespace?: string;
  fetch?: typeof fetch;
  /**
   * Puts the caller's trace context in each request's headers (`traceparent`, `tracestate`, baggage), so
   * the service's span, and a job it queues, continue the caller's trace. With OpenTelemetry JS:
   * `propagate: (carrier) => propagation.inject(context.active(), carrier)`. It cannot replace the
   * client's own headers (authorization, content-type); if it throws, the request goes without it.
   */
  propagate?: (carrier: Record<string, string>) => void;
}

/** An error answer of the service: its problem details (RFC 9457). */
export class PerfkitError extends Error {
  constructor(
    readonly status: number,
    readonly problem: T.Problem,
  ) {
    super(`${status} ${problem.title}: ${problem.detail}`);
    this.name = "PerfkitError";
  }

  /** The field at fault, when the service named one (`errors[0].field`). */
  get field(): string | undefined {
    return this.problem.errors?.[0]?.field;
  }
}

export type CacheOptions = Omit<T.CacheWrite, "value" | "bytes"> & { namespace?: string };
export type CacheRead<V> =
  | { status: "hit"; value: V; etag: string; cacheControl: string | null; surrogateKey: string | null }
  | { status: "not-modified"; etag: string }
  | { status: "miss" };

type Params = Record<string, string>;

export class PerfkitClient {
  readonly baseUrl: string;
  readonly namespace: string;
  private readonly token: string;
  private readonly fetchImpl: typeof fetch;
  private readonly propagate?: (carrier: Record<string, string>) => void;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.namespace = options.namespace ?? "default";
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.propagate = options.propagate;
  }

  /** The caller's trace-context headers for one request (none without `propagate`, or if it throws). */
  private traceHeaders(): Record<string, string> {
    const carrier: Record<string, string> = {};
    if (!this.propagate) return carrier;
    try {
      this.propagate(carrier);
    } catch {
      return {};
    }
    return carrier;
  }

  /** One operation of the document, by operationId: path parameters, JSON body, query. */
  async call<Op extends T.OperationId>(
    op: Op,
    params: Params = {},
    body?: T.OperationTypes[Op]["body"],
    query?: Record<string, string | number | undefined>,
  ): Promise<T.OperationTypes[Op]["response"]> {
    const response = await this.request(op, params, {
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { "content-type": "application/json" },
      query,
    });
    if (response.status === 204) return undefined as T.OperationTypes[Op]["response"];
    return (await response.json()) as T.OperationTypes[Op]["response"];
  }

  private async request(
    op: T.OperationId,
    params: Params,
    init: { body?: BodyInit; headers?: Record<string, string>; query?: Record<string, string | number | undefined> },
    accept: number[] = [],
  ): Promise<Response> {
    const { method, path } = operations[op];
    let url = this.baseUrl + path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ""));
    const query = Object.entries(init.query ?? {}).filter(([, v]) => v !== undefined);
    if (query.length) url += "?" + new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString();
    const response = await this.fetchImpl(url, {
      method,
      body: init.body,
      headers: { ...this.traceHeaders(), authorization: `Bearer ${this.token}`, ...init.headers },
    });
    if (!response.ok && !accept.includes(response.status)) {
      let problem: T.Problem;
      try {
        problem = (await response.json()) as T.Problem;
      } catch {
        problem = { type: "about:blank", title: response.statusText, status: response.status, detail: "" };
      }
      throw new PerfkitError(response.status, problem);
    }
    return response;
  }

  private ns(namespace?: string): Params {
    return { namespace: namespace ?? this.namespace };
  }

  // -- cache ------------------------------------------------------------------------------------------
  /** Store a JSON value; returns its ETag. */
  async set(key: string, value: unknown, options: CacheOptions = {}): Promise<string> {
    const { namespace, ...write } = options;
    const response = await this.request("cacheSet", { ...this.ns(namespace), key }, {
      body: JSON.stringify({ ...write, value }),
      headers: { "content-type": "application/json" },
    });
    return response.headers.get("etag") ?? "";
  }

  /** Store opaque bytes (application/octet-stream); returns the ETag. */
  async setBytes(key: string, data: Uint8Array, options: CacheOptions = {}): Promise<string> {
    const { namespace, tags, ...rest } = options;
    const query: Record<string, string | undefined> = { tags: tags?.join(",") };
    for (const [k, v] of Object.entries(rest)) query[k] = v === undefined || v === null ? undefined : String(v);
    const response = await this.request("cacheSet", { ...this.ns(namespace), key }, {
      body: data as unknown as BodyInit, // any Uint8Array is a valid body (TS 5.7+ types only ArrayBuffer-backed ones)
      headers: { "content-type": "application/octet-stream" },
      query,
    });
    return response.headers.get("etag") ?? "";
  }

  /** Read a value (JSON decoded, or bytes); pass the ETag you hold to get "not-modified" instead. */
  async get<V = unknown>(key: string, options: { namespace?: string; etag?: string } = {}): Promise<CacheRead<V>> {
    const headers: Record<string, string> = options.etag ? { "if-none-match": options.etag } : {};
    const response = await this.request("cacheGet", { ...this.ns(options.namespace), key }, { headers }, [304, 404]);
    if (response.status === 404) return { status: "miss" };
    const etag = response.headers.get("etag") ?? "";
    if (response.status === 304) return { status: "not-modified", etag };
    const isBytes = (response.headers.get("content-type") ?? "").startsWith("application/octet-stream");
    const value = (isBytes ? new Uint8Array(await response.arrayBuffer()) : await response.json()) as V;
    return {
      status: "hit",
      value,
      etag,
      cacheControl: response.headers.get("cache-control"),
      surrogateKey: response.headers.get("surrogate-key"),
    };
  }

  async delete(key: string, namespace?: string): Promise<boolean> {
    return (await this.call("cacheDelete", { ...this.ns(namespace), key })).deleted;
  }

  async getMany(keys: string[], namespace?: string): Promise<T.BatchGetResult> {
    return this.call("cacheBatchGet", this.ns(namespace), { keys });
  }

  async setMany(items: T.CacheItem[], namespace?: string): Promise<T.BatchSetResult> {
    return this.call("cacheBatchSet", this.ns(namespace), { items });
  }

  async invalidate(what: T.Invalidate, namespace?: string): Promise<T.Invalidated> {
    return this.call("cacheInvalidate", this.ns(namespace), what);
  }

  // -- jobs -------------------------------------------------------------------------------------------
  async enqueue(job: T.JobCreate): Promise<T.Job> {
    return this.call("jobCreate", {}, job);
  }

  async job(id: string): Promise<T.Job> {
    return this.call("jobGet", { id });
  }

  async jobs(filters: { status?: T.Job["status"]; queue?: string; limit?: number; cursor?: string } = {}): Promise<T.JobPage> {
    return this.call("jobList", {}, undefined, filters);
  }

  async cancel(id: string): Promise<T.Job> {
    return this.call("jobCancel", { id });
  }

  async jobTypes(): Promise<T.JobTypes> {
    return this.call("jobTypes");
  }

  // -- remote workers ---------------------------------------------------------------------------------
  async claim(claim: T.Claim): Promise<T.ClaimedJob[]> {
    return (await this.call("workerClaim", {}, claim)).jobs;
  }

  async heartbeat(job: T.ClaimedJob, beat: Omit<T.Heartbeat, "token"> = {}): Promise<T.HeartbeatResult> {
    return this.call("workerHeartbeat", { id: job.id }, { ...beat, token: job.token });
  }

  async complete(job: T.ClaimedJob, result: unknown): Promise<T.Reported> {
    return this.call("workerComplete", { id: job.id }, { token: job.token, result });
  }

  async fail(job: T.ClaimedJob, error: string, retry = true): Promise<T.Reported> {
    return this.call("workerFail", { id: job.id }, { token: job.token, error, retry });
  }

  /**
   * Run a worker loop for remote job `types` until `signal` aborts: claim, run `handler` with a
   * heartbeat every `heartbeatMs`, then complete or fail. A job the service took back (lease lost or
   * cancelled) is abandoned: its outcome would be refused.
   */
  async work(
    types: string[],
    handler: (job: T.ClaimedJob) => Promise<unknown>,
    options: { signal?: AbortSignal; idleMs?: number; heartbeatMs?: number; lease?: number } = {},
  ): Promise<void> {
    const { signal, idleMs = 200, heartbeatMs = 1000, lease } = options;
    while (!signal?.aborted) {
      const jobs = await this.claim({ types, limit: 1, lease });
      if (!jobs.length) {
        await new Promise((resolve) => setTimeout(resolve, idleMs));
        continue;
      }
      for (const job of jobs) {
        const beat = setInterval(() => void this.heartbeat(job, { lease }).catch(() => undefined), heartbeatMs);
        try {
          const result = await handler(job);
          await this.complete(job, result);
        } catch (error) {
          if (error instanceof PerfkitError && error.status === 409) continue;
          await this.fail(job, error instanceof Error ? error.message : String(error)).catch(() => undefined);
        } finally {
          clearInterval(beat);
        }
      }
    }
  }

  // -- loads and operations ---------------------------------------------------------------------------
  async load(request: T.LoadRequest): Promise<T.LoadStatus[]> {
    return (await this.call("loadCreate", {}, request)).loads;
  }

  async loadStatus(id: string): Promise<T.LoadStatus> {
    return this.call("loadStatus", { id });
  }

  async preload(request: T.Preload): Promise<T.LoadStatus[]> {
    return (await this.call("loadPreload", {}, request)).loads;
  }

  async metrics(): Promise<Record<string, unknown>> {
    return this.call("metrics");
  }

  async health(): Promise<T.Health> {
    const response = await this.request("health", {}, {}, [503]);
    return (await response.json()) as T.Health;
  }

  async report(window?: number): Promise<Record<string, unknown>> {
    return this.call("reports", {}, undefined, { window });
  }
}
