"""CPU-heavy work off the event loop: a warm process pool with deadlines, kill-on-timeout, crash
isolation, backpressure and memory-based recycling.

    import perfkit

    digest = await perfkit.offload(hash_file, path, timeout=10)   # the default pool, started once

    pool = ProcessPool(workers=4, max_pending=64, preload=("PIL.Image",), max_rss="1GiB")
    async with pool:
        thumbnail = await pool.run(resize, data, 128)

`@jobs.task(cpu=True)` runs a job's function in the default pool. See docs/jobs.md ("CPU-heavy tasks").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from perfkit.cpu.errors import (
    PoolClosedError,
    PoolError,
    PoolFullError,
    RemoteError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from perfkit.cpu.pool import ProcessPool

__all__ = [
    "PoolClosedError",
    "PoolError",
    "PoolFullError",
    "ProcessPool",
    "RemoteError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "close_default",
    "configure",
    "default_pool",
    "offload",
]

_default: ProcessPool | None = None
_settings: dict[str, Any] = {}


def configure(
    workers: int | None = None,
    *,
    max_pending: int = 256,
    when_full: str = "wait",
    preload: Sequence[str] = (),
    max_rss: int | str | None = None,
    max_tasks: int | None = None,
    timeout: float | str | None = None,
    nice: int = 5,
) -> None:
    """Settings of the default pool (`offload`, `@jobs.task(cpu=True)`), before its first use; checked now."""
    global _settings
    settings: dict[str, Any] = {
        "workers": workers,
        "max_pending": max_pending,
        "when_full": when_full,
        "preload": tuple(preload),
        "max_rss": max_rss,
        "max_tasks": max_tasks,
        "timeout": timeout,
        "nice": nice,
    }
    ProcessPool(**settings)  # raises ConfigurationError naming a bad setting; starts nothing
    if _default is not None and not _default.closed:
        from perfkit.errors import ConfigurationError

        raise ConfigurationError("cpu pool", "the default pool is running already: close_default() first")
    _settings = settings


def default_pool() -> ProcessPool:
    """The process-wide pool, made on first use (started by its first `run`); one per event loop: a pool
    left by a finished `asyncio.run` is killed and a new one made."""
    global _default
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if _default is not None and loop is not None and not _default.usable_from(loop):
        _default.terminate()
    if _default is None or _default.closed:
        _default = ProcessPool(**_settings)
    return _default


async def close_default() -> None:
    """Close the default pool (the next `offload` starts a new one)."""
    global _default
    if _default is not None:
        await _default.close()
        _default = None


async def offload(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float | None = None,  # noqa: ASYNC109 - the job's deadline, enforced by killing its process
    **kwargs: Any,
) -> Any:
    """`fn(*args, **kwargs)` in the default process pool: the event loop stays free while it runs."""
    return await default_pool().run(fn, *args, timeout=timeout, **kwargs)
