"""The route table of `perfkit serve`: every endpoint, its scope, its bodies and the users' endpoint it
answers (the table of docs/service.md). The router dispatches on it and the OpenAPI document is built
from it, so neither can leave the other behind.
"""

from __future__ import annotations

from perfkit.serve import schemas as s
from perfkit.serve.cache_api import CacheService
from perfkit.serve.http import Handler, Route
from perfkit.serve.jobs_api import JobsService
from perfkit.serve.loads_api import LoadsService
from perfkit.serve.ops_api import OpsService

PREFIX = "/v1"
NS = PREFIX + "/cache/{namespace}"
KEY = NS + "/keys/{key...}"
JOB = PREFIX + "/jobs/{id}"
USERS = "/api/performance"
CACHE_QUERY = (
    ("ttl", "number", "octet-stream PUT: seconds"),
    ("tags", "string", "octet-stream PUT: comma-separated"),
    ("compress", "boolean", "octet-stream PUT"),
    ("sensitive", "boolean", "octet-stream PUT"),
    ("strategy", "string", "octet-stream PUT: none, browser or cdn"),
)
JOB_QUERY = (
    ("status", "string", "filter"),
    ("queue", "string", "filter"),
    ("limit", "integer", "1-1000 (50)"),
    ("cursor", "string", "the previous page's next"),
)


def routes(
    c: CacheService, j: JobsService, lo: LoadsService, o: OpsService, openapi: Handler, *, open_health: bool
) -> list[Route]:
    R = Route
    return [
        R("PUT", KEY, c.put, "write", "cacheSet", "Store a value (JSON or bytes)",
          "value", None, 204, CACHE_QUERY, f"POST {USERS}/cache"),
        R("GET", KEY, c.get, "read", "cacheGet", "Read a value (conditional with If-None-Match)",
          None, "value", users=f"GET {USERS}/cache/:key"),
        R("DELETE", KEY, c.delete, "write", "cacheDelete", "Delete a value",
          None, s.Deleted, users=f"DELETE {USERS}/cache/:key"),
        R("POST", NS + "/batch-get", c.batch_get, "read", "cacheBatchGet", "Read many values",
          s.BatchGet, s.BatchGetResult),
        R("POST", NS + "/batch-set", c.batch_set, "write", "cacheBatchSet", "Store many values",
          s.BatchSet, s.BatchSetResult),
        R("POST", NS + "/invalidate", c.invalidate, "write", "cacheInvalidate",
          "Invalidate by tags and/or pattern (calls the CDN purge hook)", s.Invalidate, s.Invalidated,
          users=f"POST {USERS}/invalidate"),
        R("DELETE", NS, c.clear, "admin", "cacheClear", "Remove every key of a namespace",
          None, s.Invalidated),
        R("POST", PREFIX + "/jobs", j.create, "write", "jobCreate", "Queue a job of a configured type",
          s.JobCreate, s.Job, 201, users=f"POST {USERS}/jobs"),
        R("GET", PREFIX + "/jobs", j.list_jobs, "read", "jobList", "List jobs, newest first",
          None, s.JobPage, query=JOB_QUERY, users=f"GET {USERS}/jobs"),
        R("GET", JOB, j.get, "read", "jobGet", "A job's status, progress and result",
          None, s.Job, users=f"GET {USERS}/jobs/:id"),
        R("DELETE", JOB, j.cancel, "write", "jobCancel", "Cancel a job",
          None, s.Job, users=f"DELETE {USERS}/jobs/:id"),
        R("GET", PREFIX + "/job-types", j.list_types, "read", "jobTypes", "The configured job types",
          None, s.JobTypes),
        R("POST", PREFIX + "/workers/claim", j.claim, "write", "workerClaim",
          "Remote worker: lease jobs of remote types", s.Claim, s.Claimed),
        R("POST", JOB + "/heartbeat", j.heartbeat, "write", "workerHeartbeat",
          "Remote worker: renew the lease, report progress", s.Heartbeat, s.HeartbeatResult),
        R("POST", JOB + "/complete", j.complete, "write", "workerComplete",
          "Remote worker: record the result", s.Complete, s.Reported),
        R("POST", JOB + "/fail", j.fail, "write", "workerFail",
          "Remote worker: record a failure (retried while attempts are left)", s.Fail, s.Reported),
        R("POST", PREFIX + "/loads", lo.create, "write", "loadCreate",
          "Lazy-load keys with a loader (priority, after, fallback)", s.LoadRequest, s.Loads, 202,
          users=f"POST {USERS}/lazy-load"),
        R("POST", PREFIX + "/loads/preload", lo.preload, "write", "loadPreload",
          "Preload keys in the background", s.Preload, s.Loads, 202, users=f"POST {USERS}/preload"),
        R("GET", PREFIX + "/loads/{id}", lo.status, "read", "loadStatus", "A load's status and value",
          None, s.LoadStatus, users=f"GET {USERS}/load-status/:id"),
        R("GET", PREFIX + "/loaders", lo.loaders_stats, "read", "loaderStats",
          "Batch sizes, waits, hit ratio, fallbacks per loader", None, s.LoaderStats),
        R("GET", PREFIX + "/metrics", o.metrics, "admin", "metrics",
          "Service, cache, job and loader metrics", None, "text",
          query=(("format", "string", "json (default) or prometheus"),), users=f"GET {USERS}/metrics"),
        R("GET", PREFIX + "/health", o.health, "" if open_health else "read", "health",
          "Readiness of the cache, the job queue and the host (503 when not ready)", None, s.Health,
          users=f"GET {USERS}/health"),
        R("GET", PREFIX + "/reports", o.reports, "admin", "reports", "The performance report",
          None, "object", query=(("window", "number", "seconds (the monitor's window)"),),
          users=f"GET {USERS}/reports"),
        R("GET", PREFIX + "/openapi.json", openapi, "read", "openapi", "This document", None, "object"),
    ]  # fmt: skip
