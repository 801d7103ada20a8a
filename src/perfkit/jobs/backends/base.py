"""The one contract every job backend implements.

A backend stores `JobRecord`s and does the few things that must be atomic in storage: enqueue with an
idempotency key, claim a batch of ready jobs under a lease in strict priority order, renew and release
leases, record outcomes, requeue jobs whose lease lapsed. Everything else (retries, timeouts, hooks,
serialization) lives above it, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from perfkit.jobs.models import JobRecord, Outcome, Status


class JobBackend(Protocol):
    kind: str  # "sqlite", "postgres", "redis": tests assert they got the backend they asked for

    async def enqueue(self, record: JobRecord) -> tuple[str, bool]:
        """Store `record`; when its key is held by a queued or running job, return that job's id and False."""

    async def enqueue_many(self, records: Sequence[JobRecord]) -> list[tuple[str, bool]]:
        """`enqueue` for each record, in order, in one transaction or script call per queue."""

    async def claim(
        self, queues: Sequence[str], limit: int, lease: float, now: float, finish: Sequence[Outcome] = ()
    ) -> list[JobRecord]:
        """Lease up to `limit` ready jobs (highest priority, then oldest); each gets `token = attempts`.

        `finish` are outcomes to record first, as `finish()` would: a worker's acknowledgements ride on
        its next claim, one round trip for both where the backend can.
        """

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        """Return early when a job may have become ready in `queues`, else after `idle` seconds.

        Cancelling it must end it at once: a worker's stop cancels the wait it is idle in.
        """

    async def renew(self, leases: Sequence[tuple[str, int]], lease: float, now: float) -> set[str]:
        """Extend leases; return the ids to stop: cancellation requested, or the lease is no longer ours."""

    async def release(self, leases: Sequence[tuple[str, int]], now: float) -> None:
        """Hand jobs back untouched (graceful shutdown): queued again, this attempt not counted."""

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes; an outcome whose token no longer holds the lease is ignored."""

    async def reap(self, queues: Sequence[str], now: float) -> list[JobRecord]:
        """Requeue running jobs whose lease lapsed; the ones out of attempts become DEAD and are returned."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def list(
        self, status: Status | None, queue: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; the returned cursor fetches the next page, None at the end."""

    async def cancel(self, job_id: str, now: float) -> JobRecord | None:
        """Queued: cancelled now. Running: cancellation requested (its worker stops it). Returns the job."""

    async def retry(self, job_id: str, now: float) -> bool:
        """Queue a failed, dead or cancelled job again with fresh attempts; False if it is not one."""

    async def progress(self, job_id: str, value: float, message: str | None) -> None: ...

    async def cleanup(self, before: float) -> int:
        """Delete finished jobs completed before `before`; return how many."""

    async def depth(self) -> dict[tuple[str, int], int]:
        """Ready jobs per (queue, priority)."""

    async def claim_once(self, name: str, ttl: float) -> bool:
        """True for exactly one caller per `name` within `ttl` seconds (periodic ticks across workers)."""

    async def close(self) -> None: ...
