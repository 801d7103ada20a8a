"""Reliability with real worker processes: kill -9, SIGTERM, dropped PostgreSQL connections, a Redis restart.

Every process a test starts is stopped by its pid; each test is bounded in time and in jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from perfkit.jobs import Context, JobQueue
from tests import _redis_server
from tests.conftest import eventually as _eventually
from tests.conftest import free_port

from .conftest import BACKENDS, POSTGRES_URL, _postgres_reachable, _redis_reachable, backend_url

pytestmark = pytest.mark.slow
TESTS_DIR = Path(__file__).resolve().parent.parent
APP = "jobs.worker_app:jobs"


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20, what: str = "condition"
) -> None:
    """State another process owns (its log, the queue's table): poll, backing off to 0.2 s."""
    await _eventually(check, timeout=timeout, what=what, max_interval=0.2)


def producer(url: str) -> JobQueue:
    jobs = JobQueue(url, lease=1)

    @jobs.task(queue="rel", name="rel.work")
    async def work(ctx: Context, n: int) -> int:  # the worker processes run the real one
        return n

    return jobs


@contextmanager
def worker_process(
    url: str, log: Path, *args: str, sleep: float = 0.01, lease: float = 1
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PERFKIT_JOBS_URL": url, "PERFKIT_JOBS_LEASE": str(lease), "PKTEST_LOG": str(log),
           "PKTEST_SLEEP": str(sleep)}  # fmt: skip
    stderr = log.with_suffix(f".{uuid.uuid4().hex[:6]}.stderr")
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perfkit.cli", "worker", APP, "--log-level", "WARNING", *args],
            cwd=TESTS_DIR, env=env, stderr=err,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def executions(log: Path) -> Counter[int]:
    if not log.exists():
        return Counter()
    return Counter(int(line) for line in log.read_text().split())


async def all_succeeded(jobs: JobQueue, total: int) -> bool:
    done, cursor, seen = 0, None, 0
    while True:
        page, cursor = await jobs.list(status="succeeded", queue="rel", limit=1000, cursor=cursor)
        done += len(page)
        seen += 1
        if cursor is None or seen > 20:
            return done >= total


async def enqueue_many(jobs: JobQueue, numbers: range) -> None:
    for n in numbers:
        await jobs.enqueue("rel.work", args=(n,))


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind: str = request.param
    reason = (
        await (_redis_reachable() if kind == "redis" else _postgres_reachable()) if kind != "sqlite" else None
    )
    if reason:
        pytest.skip(reason)
    return backend_url(kind, tmp_path)


async def test_kill_9_mid_batch_loses_nothing(
    url: str, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """kill -9 a worker amid 1,000 jobs, start another: every job completes; duplicates are reported."""
    jobs, log, total = producer(url), tmp_path / "runs.log", 1000
    try:
        await enqueue_many(jobs, range(total))
        with worker_process(url, log, "--concurrency", "10", sleep=0.01) as first:
            await eventually(lambda: _at_least(log, 200), what="the first worker to get going")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        killed_at = sum(executions(log).values())
        with worker_process(url, log, "--concurrency", "20", sleep=0.001) as second:
            await eventually(lambda: all_succeeded(jobs, total), timeout=40, what="all 1,000 jobs to succeed")
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
        runs = executions(log)
        duplicates = sum(runs.values()) - len(runs)
        record_property("duplicates", duplicates)
        print(f"kill -9 after {killed_at} runs: {duplicates} duplicate executions out of {total} jobs")
        assert set(runs) == set(range(total))
        assert duplicates <= 40  # at most the jobs in flight or unacknowledged when the worker died
        assert await jobs.list(status="running", queue="rel") == ([], None)
    finally:
        await _drop(jobs)


async def test_sigterm_lets_running_jobs_finish_and_loses_nothing(url: str, tmp_path: Path) -> None:
    """SIGTERM mid-work: exit 0, running jobs finish, the rest stay queued; none lost or doubled."""
    jobs, log, total = producer(url), tmp_path / "runs.log", 60
    try:
        await enqueue_many(jobs, range(total))
        with worker_process(url, log, "--concurrency", "5", "--grace", "10", sleep=0.3) as worker:
            await eventually(lambda: _at_least(log, 5), what="some jobs to run")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
        assert await jobs.list(status="running", queue="rel") == ([], None)
        with worker_process(url, log, "--concurrency", "20", "--burst", sleep=0.001) as rest:
            assert rest.wait(40) == 0
        runs = executions(log)
        assert set(runs) == set(range(total))
        assert max(runs.values()) == 1
    finally:
        await _drop(jobs)


async def test_two_worker_processes_share_the_queue(url: str, tmp_path: Path) -> None:
    """Two worker processes on one queue run every job exactly once between them."""
    jobs, log, total = producer(url), tmp_path / "runs.log", 500
    try:
        await enqueue_many(jobs, range(total))
        with (
            worker_process(url, log, "--concurrency", "8", sleep=0.002) as a,
            worker_process(url, log, "--concurrency", "8", sleep=0.002) as b,
        ):
            await eventually(lambda: all_succeeded(jobs, total), timeout=40, what="both workers to finish")
            for proc in (a, b):
                proc.send_signal(signal.SIGTERM)
            assert a.wait(20) == 0
            assert b.wait(20) == 0
        runs = executions(log)
        assert set(runs) == set(range(total))
        assert max(runs.values()) == 1
    finally:
        await _drop(jobs)


@pytest.mark.postgres
async def test_postgres_connections_dropped_workers_carry_on(tmp_path: Path) -> None:
    """pg_terminate_backend on every worker connection mid-work: it reconnects and finishes the jobs."""
    reason = await _postgres_reachable()
    if reason:
        pytest.skip(reason)
    import asyncpg

    app = f"pktest_{uuid.uuid4().hex[:10]}"
    url = backend_url("postgres", tmp_path) + f"&application_name={app}"
    jobs, log, total = producer(url.replace(f"&application_name={app}", "")), tmp_path / "runs.log", 400
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await enqueue_many(jobs, range(total))
        with worker_process(url, log, "--concurrency", "10", sleep=0.005) as worker:
            await eventually(lambda: _at_least(log, 50), what="the worker to get going")
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                app,
            )
            assert killed >= 1
            await eventually(lambda: all_succeeded(jobs, total), timeout=40, what="all jobs after the drop")
            assert worker.poll() is None  # it survived the drop
            await jobs.enqueue("rel.work", args=(total,))  # and still hears NOTIFY on a new listener
            await eventually(
                lambda: _at_least_value(log, total), timeout=20, what="a job enqueued after the drop"
            )
        assert set(executions(log)) == set(range(total + 1))
    finally:
        await admin.close()
        await _drop(jobs)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


@pytest.mark.redis
async def test_redis_restart_workers_reconnect(tmp_path: Path) -> None:
    """A private Redis server restarted under a running worker: it reconnects and runs the new jobs."""
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        pytest.skip("redis-server is not installed: SKIPPING the Redis restart test")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0?prefix=pktest-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "runs.log"
    server = _redis_server.start(port)
    try:
        jobs = producer(url)
        await enqueue_many(jobs, range(50))
        with worker_process(url, log, "--concurrency", "10", sleep=0.001) as worker:
            await eventually(lambda: all_succeeded(jobs, 50), timeout=20, what="the first batch")
            await jobs.close()
            stop_process(server)  # no persistence: the restarted server starts empty
            server = _redis_server.start(port)
            jobs = producer(url)
            await enqueue_many(jobs, range(50, 100))
            await eventually(lambda: all_succeeded(jobs, 50), timeout=30, what="the batch after the restart")
            assert worker.poll() is None
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
            await jobs.close()
        assert set(executions(log)) == set(range(100))
    finally:
        stop_process(server)


async def _at_least(log: Path, count: int) -> bool:
    return sum(executions(log).values()) >= count


async def _at_least_value(log: Path, value: int) -> bool:
    return value in executions(log)


async def _drop(jobs: JobQueue) -> None:
    drop = getattr(jobs.backend, "drop", None)  # SQLite lives in tmp_path: nothing to drop
    if drop is not None:
        await drop()
    await jobs.close()
