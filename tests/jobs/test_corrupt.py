"""Corrupt job records, written into the real stores by hand: shown as corrupt, dead-lettered alone.

A record with a field perfkit cannot read (a text run_at, an unknown status, garbage in Redis's spec, a
Redis key of the wrong type) must never break list(), get(), depth(), the monitor's /perf/api/jobs and
/perf/health/ready, nor the healthy jobs claimed in the same batch.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

import perfkit
from perfkit.jobs import Context, JobQueue, Status
from perfkit.jobs.backends.redis_keys import QueueKeys
from perfkit.monitor import MonitorConfig
from tests.conftest import eventually

from .conftest import POSTGRES_URL, REDIS_URL, _postgres_reachable, _redis_reachable, backend_url

Corrupt = Callable[[str, str, Any], Awaitable[None]]
WRONG_TYPE = object()  # Redis only: replace the job's hash by a plain string key
MISSING = object()  # Redis only: delete the field from the job's hash
TOKEN = "corrupt-test-token"

KINDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
]
# field, value written by hand, the text the error must contain; per backend (PostgreSQL's columns
# are typed: only values of the column's type can be written there)
SHOWN = {
    "sqlite": [("status", "bogus", "status is 'bogus'"), ("run_at", "soon", "run_at is 'soon'"),
               ("priority", 9, "priority is 9"), ("payload", "text", "payload is 'text'")],
    "postgres": [("status", "bogus", "status is 'bogus'"), ("run_at", math.nan, "run_at is nan"),
                 ("priority", 9, "priority is 9")],
    "redis": [("status", "bogus", "status is 'bogus'"), ("run_at", "soon", "run_at is b'soon'"),
              ("spec", b"\xc1garbage", "spec cannot be decoded"), ("priority", "x", "priority is b'x'"),
              ("spec", MISSING, "spec is missing"), ("spec", WRONG_TYPE, "cannot be read as a job hash")],
}  # fmt: skip
# corruptions a worker meets when it claims the job: it must dead-letter that one job alone
CLAIMED = {
    "sqlite": [("run_at", "soon", "run_at is 'soon'"), ("priority", 9, "priority is 9")],
    "postgres": [("run_at", math.nan, "run_at is nan")],
    "redis": [("run_at", "soon", "run_at is b'soon'"), ("spec", b"\xc1garbage", "spec cannot be decoded"),
              ("priority", "x", "priority is b'x'"), ("spec", MISSING, "spec is missing"),
              ("spec", WRONG_TYPE, "cannot be read as a job hash")],
}  # fmt: skip


@pytest.fixture(params=KINDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, JobQueue, Corrupt]]:
    """(kind, a JobQueue on it, corrupt(job_id, field, value)) writing straight into the store."""
    kind: str = request.param
    reason = await {"redis": _redis_reachable, "postgres": _postgres_reachable}.get(kind, _none)()
    if reason:
        pytest.skip(reason)
    jobs = JobQueue(backend_url(kind, tmp_path), lease=1.5)
    assert jobs.backend.kind == kind
    backend: Any = jobs.backend
    raw = aioredis.Redis.from_url(REDIS_URL) if kind == "redis" else None

    async def corrupt(job_id: str, field: str, value: Any) -> None:
        if kind == "sqlite":
            with sqlite3.connect(backend.path) as conn:
                conn.execute(f"UPDATE {backend.table} SET {field} = ? WHERE id = ?", (value, job_id))
        elif kind == "postgres":
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f"UPDATE {backend.table} SET {field} = $1 WHERE id = $2", value, job_id)
            finally:
                await conn.close()
        else:
            assert raw is not None
            key = QueueKeys(backend.prefix, job_id.rpartition(":")[0]).job + job_id
            if value is WRONG_TYPE:
                await raw.delete(key)
                await raw.set(key, b"not a hash")
            elif value is MISSING:
                await raw.hdel(key, field)
            else:
                await raw.hset(key, field, value)

    yield kind, jobs, corrupt
    drop = getattr(backend, "drop", None)
    if drop is not None:
        await drop()
    await jobs.close()
    if raw is not None:
        await raw.aclose()


async def _none() -> None:
    return None


def monitored(jobs: JobQueue, tmp_path: Path) -> tuple[Any, httpx.AsyncClient]:
    app = perfkit.instrument(
        Starlette(), jobs=jobs, monitor=MonitorConfig(token=TOKEN, url=f"sqlite:///{tmp_path}/monitor.db")
    )
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_corrupt_records_are_shown_as_corrupt_and_break_nothing(
    store: tuple[str, JobQueue, Corrupt], tmp_path: Path
) -> None:
    """get/list/depth, /perf/api/jobs and /perf/health/ready answer; a corrupt record says what is wrong."""
    kind, jobs, corrupt = store

    @jobs.task(queue="c", name="c.work")
    async def work(ctx: Context, n: int) -> int:
        return n

    healthy = [await work.enqueue(n) for n in range(3)]
    victims = {}
    for field, value, shown in SHOWN[kind]:
        victim = await work.enqueue(99)
        await corrupt(victim.id, field, value)
        victims[victim.id] = shown
    for job_id, shown in victims.items():
        info = await jobs.get(job_id)
        assert info is not None
        assert info.status is Status.CORRUPT, (shown, info)
        assert shown in (info.error or ""), (shown, info.error)
    page, _ = await jobs.list(limit=100)
    listed = {j.id: j for j in page}
    assert {listed[i].status for i in victims} == {Status.CORRUPT}
    assert {listed[h.id].status for h in healthy} == {Status.QUEUED}
    queued, _ = await jobs.list(status="queued", limit=100)
    assert {h.id for h in healthy} <= {j.id for j in queued}
    assert (await jobs.depth()).get(("c", 2), 0) >= 3
    app, client = monitored(jobs, tmp_path)
    try:
        auth = {"authorization": f"Bearer {TOKEN}"}
        api = await client.get("/perf/api/jobs?limit=100", headers=auth)
        assert api.status_code == 200, api.text
        statuses = {item["id"]: item["status"] for item in api.json()["items"]}
        assert {statuses[i] for i in victims} == {"corrupt"}
        errors = {item["id"]: item["error"] for item in api.json()["items"]}
        assert all(shown in errors[i] for i, shown in victims.items())
        ready = await client.get("/perf/health/ready", headers=auth)
        checks = ready.json()["checks"]
        assert checks["jobs"]["status"] == "pass", checks["jobs"]
        assert (ready.status_code == 200) == all(c["status"] != "fail" for c in checks.values()), checks
        for job_id in victims:  # the dashboard's actions answer too: never a 400 or a 500
            cancelled = await client.post(f"/perf/api/jobs/{job_id}/cancel", headers=auth)
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "corrupt"
            retried = await client.post(f"/perf/api/jobs/{job_id}/retry", headers=auth)
            assert retried.status_code in (200, 409), retried.text
    finally:
        await client.aclose()
        await app.state.perfkit.monitor.close()


async def test_worker_dead_letters_a_corrupt_record_alone(store: tuple[str, JobQueue, Corrupt]) -> None:
    """Corrupt records claimed with healthy ones are dead-lettered alone; every healthy job runs once."""
    kind, jobs, corrupt = store
    runs: list[int] = []

    @jobs.task(queue="c", name="c.work")
    async def work(ctx: Context, n: int) -> int:
        runs.append(n)
        return n

    healthy = [await work.enqueue(n) for n in range(10)]
    victims = {}
    for field, value, shown in CLAIMED[kind]:
        victim = await work.enqueue(99)
        await corrupt(victim.id, field, value)
        victims[victim.id] = shown
    expected = list(range(10))
    if kind == "redis":  # a counter that is not a number restarts at 0: the job still runs
        odd = await work.enqueue(10)
        await corrupt(odd.id, "attempts", "x")
        expected.append(10)
    stats = await jobs.worker(burst=True, concurrency=32).run()
    assert sorted(runs) == expected
    for job in healthy:
        info = await jobs.get(job.id)
        assert info is not None
        assert info.status is Status.SUCCEEDED
    for job_id, shown in victims.items():
        info = await jobs.get(job_id)
        assert info is not None
        assert info.status in (Status.CORRUPT, Status.DEAD), info
        assert info.error is not None
        assert shown in info.error
        assert "lease lapsed" not in info.error
    assert stats.errors == 0
    assert await jobs.depth() == {}
    running, _ = await jobs.list(status="running")
    assert running == []


@pytest.mark.redis
async def test_a_wrong_typed_queue_index_stops_only_its_queue(caplog: pytest.LogCaptureFixture) -> None:
    """A queue whose `ready` index stops being a sorted set (here the running job overwrites it) is
    skipped with an error naming the key; the job that was running still succeeds, and the worker's
    other queues go on claiming and running their jobs."""
    reason = await _redis_reachable()
    if reason:
        pytest.skip(reason)
    jobs = JobQueue(backend_url("redis", Path("unused")), lease=1.5)
    backend: Any = jobs.backend
    raw = aioredis.Redis.from_url(REDIS_URL)
    broken = QueueKeys(backend.prefix, "broken").ready
    runs: list[str] = []

    @jobs.task(queue="broken", name="broken.work")
    async def breaks_its_queue(ctx: Context) -> None:
        await raw.set(broken, b"not a sorted set")
        runs.append("broken")

    @jobs.task(queue="good", name="good.work")
    async def work(ctx: Context, n: int) -> int:
        runs.append(f"good {n}")
        return n

    try:
        first = await breaks_its_queue.enqueue()
        caplog.set_level("ERROR", logger="perfkit.jobs")
        worker = jobs.worker(["broken", "good"], concurrency=1)
        running = asyncio.create_task(worker.run())

        async def broke() -> bool:
            return runs == ["broken"]

        await eventually(broke, what="the queue's index overwritten")
        later = await work.enqueue(7)

        async def settled() -> bool:
            return sorted(runs) == ["broken", "good 7"] and all(
                [await _succeeded(jobs, first.id), await _succeeded(jobs, later.id)]
            )

        async def logged() -> bool:
            return any(broken in r.getMessage() for r in caplog.records)

        await eventually(settled, timeout=10, what="both jobs succeeded")
        await eventually(logged, what="the wrong-typed key logged")
        assert sorted(runs) == ["broken", "good 7"]  # each job ran once, the other queue's too
        worker.stop()
        await running
    finally:
        await backend.drop()
        await raw.delete(broken)
        await raw.aclose()
        await jobs.close()


async def _succeeded(jobs: JobQueue, job_id: str) -> bool:
    info = await jobs.get(job_id)
    return info is not None and info.status is Status.SUCCEEDED
