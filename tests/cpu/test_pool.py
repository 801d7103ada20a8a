"""perfkit.cpu.ProcessPool: warm workers, timeouts that kill, crash isolation, backpressure, recycling."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from perfkit.cpu import PoolFullError, ProcessPool, TaskTimeoutError, WorkerCrashedError
from perfkit.errors import ConfigurationError, InvalidArgumentError, SerializationError

from ..conftest import eventually
from . import funcs

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ProcessPool]:
    """Two warm workers shared by the module's tests (a start costs a process spawn and imports)."""
    async with ProcessPool(2, preload=("tests.cpu.preloaded",)) as p:
        yield p


async def gone(pid: int) -> bool:
    return not alive(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_runs_functions_and_reraises_their_errors(pool: ProcessPool) -> None:
    """Results come back; an exception comes back as itself, with the worker's traceback as its cause."""
    assert await pool.run(funcs.square, 12) == 144
    assert await asyncio.gather(*(pool.run(funcs.square, i) for i in range(8))) == [i * i for i in range(8)]
    with pytest.raises(ValueError, match="nope") as info:
        await pool.run(funcs.fail, "nope")
    assert "in fail" in str(info.value.__cause__)
    assert await pool.run(funcs.pid) != os.getpid()


async def test_workers_are_warm_with_modules_preloaded(pool: ProcessPool) -> None:
    """`preload` modules are imported before a worker's first job; a Task-wrapped function resolves."""
    assert await pool.run(funcs.imported, "tests.cpu.preloaded") is True
    assert await pool.run(funcs.decorated.func, 1) == 2  # the module attribute is a Task: unwrapped


async def test_timeout_kills_the_worker_and_replaces_it(pool: ProcessPool, tmp_path: Path) -> None:
    """Past its deadline a running job fails (TaskTimeoutError), its process is killed, a new one serves."""
    before = pool.stats()["replaced"]
    mark = tmp_path / "started"
    with pytest.raises(TaskTimeoutError, match=r"spin: no result within 0\.3s \(running\)"):
        await pool.run(funcs.spin, 30, str(mark), timeout=0.3)
    killed = int(mark.read_text())
    await eventually(lambda: gone(killed), what="the timed-out worker killed")
    assert pool.stats()["replaced"] == before + 1
    pids = set(await asyncio.gather(*(pool.run(funcs.spin, 0.05) for _ in range(4))))
    assert all(alive(p) for p in pids)


async def test_cancelling_the_caller_kills_the_running_job(pool: ProcessPool) -> None:
    """A caller cancelled (asyncio.wait_for, a client gone) does not leave its function burning a core."""
    before = pool.stats()["replaced"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.run(funcs.spin, 30), 0.2)
    assert pool.stats()["replaced"] == before + 1
    assert await pool.run(funcs.square, 3) == 9


async def test_a_crash_fails_only_its_own_job(pool: ProcessPool) -> None:
    """A segfault and an os._exit fail their jobs (naming the signal or code); jobs beside them succeed."""
    results = await asyncio.gather(
        pool.run(funcs.segfault),
        pool.run(funcs.square, 5),
        pool.run(funcs.hard_exit),
        pool.run(funcs.square, 6),
        return_exceptions=True,
    )
    assert isinstance(results[0], WorkerCrashedError) and "SIGSEGV" in str(results[0])
    assert isinstance(results[2], WorkerCrashedError) and "exit code 3" in str(results[2])
    assert results[1::2] == [25, 36]
    assert await pool.run(funcs.square, 7) == 49


async def test_deadline_counts_from_dispatch_queue_time_included(tmp_path: Path) -> None:
    """A job whose deadline passes while it waits for a worker fails without ever running."""
    async with ProcessPool(1) as one:
        busy = asyncio.ensure_future(one.run(funcs.spin, 0.6))
        await asyncio.sleep(0)  # dispatched to the only worker
        mark = tmp_path / "ran"
        with pytest.raises(TaskTimeoutError, match="waiting for a worker"):
            await one.run(funcs.spin, 0, str(mark), timeout=0.2)
        await busy
        assert not mark.exists()


async def test_bounded_queue_pushes_back_on_the_caller() -> None:
    """when_full='error': the call past max_pending fails at once; 'wait': it waits for room and runs."""
    async with ProcessPool(1, max_pending=1, when_full="error") as strict:
        running = asyncio.ensure_future(strict.run(funcs.spin, 0.3))
        await asyncio.sleep(0)  # dispatched to the worker
        queued = asyncio.ensure_future(strict.run(funcs.square, 2))
        await asyncio.sleep(0)
        with pytest.raises(PoolFullError, match="max_pending=1"):
            await strict.run(funcs.square, 3)
        assert await queued == 4
        await running
    async with ProcessPool(1, max_pending=1) as patient:
        order: list[str] = []

        async def run(name: str, seconds: float) -> None:
            await patient.run(funcs.spin, seconds)
            order.append(name)

        await asyncio.gather(run("a", 0.2), run("b", 0.0), run("c", 0.0))  # c waits for room
        assert order == ["a", "b", "c"]
        assert patient.stats()["pending"] == 0


async def test_workers_are_recycled_by_memory_use() -> None:
    """A worker whose RSS passes max_rss after a job is retired and replaced; the job itself succeeded."""
    async with ProcessPool(1, max_rss="120MiB") as p:
        first = await p.run(funcs.grow, 150)
        assert p.stats()["recycled"] == 1
        second = await p.run(funcs.pid)
        assert second != first
        await eventually(lambda: gone(first), what="the retired worker exited and was reaped")


async def test_bad_functions_and_settings_are_refused(pool: ProcessPool) -> None:
    """Lambdas, async functions, unpicklable arguments and bad settings are named errors, before any run."""
    with pytest.raises(InvalidArgumentError, match="module level"):
        await pool.run(lambda: 1)

    async def coro() -> None: ...

    with pytest.raises(InvalidArgumentError, match="async"):
        await pool.run(coro)
    with pytest.raises(SerializationError, match="cannot be pickled"):
        await pool.run(funcs.square, threading.Lock())
    with pytest.raises(ConfigurationError, match="max_rss"):
        ProcessPool(max_rss="lots")
    with pytest.raises(ConfigurationError, match="when_full"):
        ProcessPool(when_full="drop")
