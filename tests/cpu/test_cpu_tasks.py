"""`@jobs.task(cpu=True)`: jobs run in perfkit's process pool by a real worker, on a real SQLite queue."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import perfkit
from perfkit import cpu
from perfkit.errors import InvalidArgumentError
from perfkit.jobs import JobQueue, Status

from . import funcs

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[JobQueue]:
    queue = JobQueue(f"sqlite:///{tmp_path}/jobs.db")
    cpu.configure(workers=2)
    try:
        yield queue
    finally:
        await cpu.close_default()
        cpu.configure()
        await queue.close()


async def test_cpu_jobs_run_in_the_pool_and_a_crash_or_timeout_fails_only_its_job(jobs: JobQueue) -> None:
    """A worker runs cpu tasks in other processes; the segfaulting and the timed-out jobs fail (the second
    with its process killed), the jobs beside them succeed."""
    assert await perfkit.offload(funcs.square, 4) == 16  # request code's way in: the same default pool
    square = jobs.task(cpu=True, name="t.square")(funcs.square)
    decorated = jobs.task(cpu=True, name="t.decorated")(funcs.decorated.func)
    crash = jobs.task(cpu=True, name="t.segfault")(funcs.segfault)
    slow = jobs.task(cpu=True, name="t.spin", timeout=0.5)(funcs.spin)
    pid = jobs.task(cpu=True, name="t.pid")(funcs.pid)
    enqueued = [
        await square.enqueue(9),
        await decorated.enqueue(41),
        await crash.enqueue(),
        await slow.enqueue(30),
        await pid.enqueue(),
    ]
    stats = await jobs.worker(burst=True, concurrency=4).run()
    assert stats.finished == 5
    done = [await jobs.get(j.id) for j in enqueued]
    assert [d.status for d in done if d is not None] == [
        Status.SUCCEEDED,
        Status.SUCCEEDED,
        Status.FAILED,
        Status.FAILED,
        Status.SUCCEEDED,
    ]
    square_info, decorated_info, crash_info, slow_info, pid_info = done
    assert square_info is not None and square_info.result == 81
    assert decorated_info is not None and decorated_info.result == 42
    assert crash_info is not None and "SIGSEGV" in (crash_info.error or "")
    assert slow_info is not None and "cpu task's process killed" in (slow_info.error or "")
    assert pid_info is not None and pid_info.result != os.getpid()  # it ran in another process
    assert cpu.default_pool().stats()["crashes"] == 1


def test_default_pool_follows_the_event_loop() -> None:
    """offload() in a second asyncio.run gets a fresh pool; the first loop's workers are killed."""
    cpu.configure(workers=1)
    try:
        first = asyncio.run(perfkit.offload(funcs.pid))
        second = asyncio.run(perfkit.offload(funcs.pid))
        assert first != second
        assert not os.path.exists(f"/proc/{first}")  # killed and reaped
    finally:
        asyncio.run(cpu.close_default())
        cpu.configure()


def test_cpu_tasks_must_be_plain_module_level_functions(tmp_path: Path) -> None:
    """cpu=True on a lambda, a nested or an async function is refused when it is registered."""
    queue = JobQueue(f"sqlite:///{tmp_path}/jobs.db")

    async def nested(x: int) -> int:
        return x

    with pytest.raises(InvalidArgumentError, match="async"):
        queue.task(cpu=True, name="t.async")(nested)
    with pytest.raises(InvalidArgumentError, match="module level"):
        queue.task(cpu=True, name="t.lambda")(lambda x: x)
