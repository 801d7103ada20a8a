"""The job backend matrix: every behaviour test runs on SQLite, PostgreSQL, Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from perfkit.jobs import JobEvent, JobQueue

REDIS_URL = os.environ.get("PERFKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("redis-cluster", marks=pytest.mark.redis_cluster, id="redis-cluster"),
]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def _redis_reachable() -> str | None:
    try:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is unreachable ({exc!r}): SKIPPING the Redis job tests"
    return None


async def _postgres_reachable() -> str | None:
    try:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL, timeout=2)
        await conn.close()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc!r}): SKIPPING the PostgreSQL job tests"
    return None


def backend_url(kind: str, tmp_path: Path) -> str:
    """A URL of `kind` with a name nobody else uses (table or key prefix), so tests never collide."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    if kind == "postgres":
        return f"{POSTGRES_URL}?table={unique('pk_test_')}"
    return f"{REDIS_URL}?prefix={unique('pktest-')}"


async def drop_backend_data(jobs: JobQueue) -> None:
    """Remove what one test created: its own table or its own key prefix, nothing shared."""
    backend = jobs.backend
    drop = getattr(backend, "drop", None)
    if drop is not None:
        await drop()


@pytest.fixture(params=BACKENDS)
async def make_queue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., JobQueue]]:
    """A factory of JobQueues on the requested backend; all share one URL, all are cleaned up."""
    kind: str = request.param
    reason = None
    if kind == "redis":
        reason = await _redis_reachable()
    elif kind == "postgres":
        reason = await _postgres_reachable()
    if reason:
        pytest.skip(reason)
    if kind == "redis-cluster":  # a real cluster: PERFKIT_TEST_REDIS_CLUSTER_URL or three local nodes
        url = f"{request.getfixturevalue('redis_cluster_url')}?prefix={unique('pktest-')}"
    else:
        url = backend_url(kind, tmp_path)
    made: list[JobQueue] = []

    def make(**options: object) -> JobQueue:
        options.setdefault("lease", 1.5)
        q = JobQueue(url, **options)  # type: ignore[arg-type]
        assert q.backend.kind == kind, f"asked for {kind}, got {q.backend.kind}"
        made.append(q)
        return q

    yield make
    if made:
        await drop_backend_data(made[0])
    for q in made:
        await q.close()


@pytest.fixture
def jobs(make_queue: Callable[..., JobQueue]) -> JobQueue:
    return make_queue()


class EventLog:
    """Collects job events; `await log.wait(name, job_id)` returns once that event was seen."""

    def __init__(self, jobs: JobQueue) -> None:
        self.events: list[JobEvent] = []
        self._changed = asyncio.Event()
        jobs.on_event(self._record)

    def _record(self, event: JobEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def names(self, job_id: str | None = None) -> list[str]:
        return [e.name for e in self.events if job_id is None or e.job_id == job_id]

    async def wait(self, name: str, job_id: str | None = None, count: int = 1, within: float = 15) -> None:
        async with asyncio.timeout(within):
            while sum(1 for e in self.events if e.name == name and job_id in (None, e.job_id)) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def events(jobs: JobQueue) -> EventLog:
    return EventLog(jobs)
