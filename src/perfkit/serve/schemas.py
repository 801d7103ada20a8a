"""The JSON bodies of `perfkit serve`, as msgspec structs: one definition gives validation (decoding
refuses a wrong type naming its field) and the JSON Schema of the OpenAPI document (`openapi.py`).

A cache value is either `value` (any JSON) or `bytes` (base64); TTLs and delays are seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Strategy = Literal["none", "browser", "cdn"]
PriorityName = Literal["critical", "high", "medium", "low"]
Seconds = Annotated[float, Meta(gt=0, le=315_360_000, description="seconds")]
Tag = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=r"^[^\s,]+$", description="no spaces or commas")
]
Key = Annotated[str, Meta(min_length=1, max_length=1000)]


class CacheWrite(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One value to store: `value` (any JSON) or `bytes` (base64), not both."""

    value: Any = msgspec.UNSET
    bytes: str | msgspec.UnsetType = msgspec.UNSET
    ttl: Seconds | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[Tag] = []
    compress: bool | None = None
    sensitive: bool = False
    strategy: Strategy = "none"


class CacheItem(CacheWrite, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A `CacheWrite` with its key, for batch writes."""

    key: Key


class BatchSet(Struct, forbid_unknown_fields=True):
    items: Annotated[list[CacheItem], Meta(min_length=1, max_length=1000)]


class BatchGet(Struct, forbid_unknown_fields=True):
    keys: Annotated[list[Key], Meta(min_length=1, max_length=1000)]


class StoredValue(Struct, omit_defaults=True):
    """A value as a batch read returns it: `value` for JSON, `bytes` (base64) for opaque bytes."""

    etag: str
    value: Any = msgspec.UNSET
    bytes: str | msgspec.UnsetType = msgspec.UNSET


class BatchGetResult(Struct):
    values: dict[str, StoredValue]
    missing: list[str]


class Written(Struct):
    key: str
    etag: str


class BatchSetResult(Struct):
    written: list[Written]


class Deleted(Struct):
    deleted: bool


class Invalidate(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Remove every key carrying one of `tags`, and/or every key matching `pattern` (`*`, `?`, `[...]`)."""

    tags: list[Tag] = []
    pattern: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None


class Invalidated(Struct):
    removed: int
    purged: bool  # a purge was handed to the CDN purge hook (delivered in the background, retried)


class JobCreate(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A job of a configured type (`GET /v1/job-types`)."""

    type: Annotated[str, Meta(min_length=1, max_length=200)]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    priority: PriorityName | None = None
    delay: Annotated[float, Meta(ge=0, le=315_360_000)] | None = None
    key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


JobStatus = Literal["queued", "scheduled", "running", "succeeded", "failed", "dead", "cancelled", "corrupt"]


class Job(Struct):
    id: str
    type: str
    queue: str
    priority: PriorityName
    status: JobStatus
    args: list[Any]
    kwargs: dict[str, Any]
    progress: float
    progress_message: str | None
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    key: str | None
    queued_at: float
    run_at: float
    started_at: float | None
    completed_at: float | None
    cancel_requested: bool


class JobPage(Struct):
    jobs: list[Job]
    next: str | None


class JobType(Struct):
    name: str
    handler: Literal["python", "callback", "remote"]
    queue: str
    priority: PriorityName
    retries: int
    timeout: float | None


class JobTypes(Struct):
    types: list[JobType]


class Claim(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A remote worker leases up to `limit` jobs of `types` (remote types only) for `lease` seconds."""

    types: Annotated[list[str], Meta(min_length=1, max_length=100)]
    limit: Annotated[int, Meta(ge=1, le=100)] = 1
    lease: Annotated[float, Meta(ge=1, le=3600)] | None = None


class ClaimedJob(Struct):
    id: str
    type: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_attempts: int
    token: int  # the lease token: send it back with heartbeat, complete and fail
    lease_until: float
    timeout: float | None
    headers: dict[str, str] | None = None  # the W3C trace context of the request that queued it


class Claimed(Struct):
    jobs: list[ClaimedJob]


class Heartbeat(Struct, forbid_unknown_fields=True, omit_defaults=True):
    token: int
    lease: Annotated[float, Meta(ge=1, le=3600)] | None = None  # seconds from now (default: the queue's)
    progress: Annotated[float, Meta(ge=0, le=1)] | None = None
    message: Annotated[str, Meta(max_length=1000)] | None = None


class HeartbeatResult(Struct):
    stop: bool  # cancellation was requested, or the lease is no longer this worker's
    lease_until: float


class Complete(Struct, forbid_unknown_fields=True):
    token: int
    result: Any = None


class Fail(Struct, forbid_unknown_fields=True, omit_defaults=True):
    token: int
    error: Annotated[str, Meta(min_length=1, max_length=10_000)]
    retry: bool = True  # False: no further attempt, whatever retries are left


class Reported(Struct):
    status: JobStatus  # what the job became: succeeded, queued/scheduled (a retry), failed


class LoadRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Load `keys` with the configured loader `loader` (one batch call for the keys of one request).

    `after` lists loads (ids) that must finish first; `fallback` is the value given when a load fails or
    takes longer than `timeout`; `wait` answers once every load is done (else at once, with the ids).
    """

    loader: Annotated[str, Meta(min_length=1, max_length=200)]
    keys: Annotated[list[Key], Meta(min_length=1, max_length=1000)]
    priority: PriorityName = "medium"
    after: Annotated[list[str], Meta(max_length=100)] = []
    fallback: Any = msgspec.UNSET
    timeout: Seconds | None = None
    wait: bool = False


class Preload(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Warm the loader's shared cache with `keys` in the background (low priority by default)."""

    loader: Annotated[str, Meta(min_length=1, max_length=200)]
    keys: Annotated[list[Key], Meta(min_length=1, max_length=1000)]
    priority: PriorityName = "low"


LoadState = Literal["waiting", "loading", "loaded", "failed", "fallback"]


class LoadStatus(Struct, omit_defaults=True):
    id: str
    loader: str
    key: str
    priority: PriorityName
    status: LoadState
    value: Any = msgspec.UNSET
    error: str | None = None
    after: list[str] = []


class Loads(Struct):
    loads: list[LoadStatus]


class LoaderStats(Struct):
    loaders: dict[str, Any]


class Health(Struct):
    ok: bool
    checks: dict[str, Any]


class Problem(Struct, omit_defaults=True):
    """An error, as RFC 9457 problem details; `errors` names the fields at fault."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] = []
