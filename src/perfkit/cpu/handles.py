"""What the pool holds per job and per worker process, and the small helpers around them.

`Job`: one call waiting for or running in a worker (its future, deadline timer, worker); `WorkerHandle`:
one worker process and its pipe; `exited(process)`; `remote_error(...)`: the exception a worker's error
message stands for; `parse_size("max_rss", "512MiB")`.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable
from typing import Any

from perfkit.cpu.errors import RemoteError
from perfkit.cpu.refs import reference
from perfkit.errors import ConfigurationError

__all__ = ["Job", "WorkerHandle", "exited", "parse_size", "remote_error"]

_perf = time.perf_counter
_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "b": 1}


def parse_size(name: str, raw: int | str | None) -> int | None:
    """Bytes from 512_000_000, '512MiB', '2GB'; None stays None."""
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        for unit in sorted(_UNITS, key=len, reverse=True):
            if text.endswith(unit):
                try:
                    value = float(text[: -len(unit)]) * _UNITS[unit]
                except ValueError:
                    break
                if value > 0:
                    return int(value)
                break
    raise ConfigurationError(name, f"{raw!r} is not a size; use e.g. 536870912, '512MiB', '2GB'")


class Job:
    __slots__ = ("args", "future", "id", "kwargs", "name", "ref", "submitted", "timeout", "timer", "worker")

    def __init__(
        self, job_id: int, fn: Callable[..., Any], args: Any, kwargs: Any, timeout: float | None
    ) -> None:
        self.id = job_id
        self.ref = reference(fn)
        self.name = fn.__qualname__
        self.args, self.kwargs = args, kwargs
        self.timeout = timeout
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submitted = _perf()
        self.timer: asyncio.TimerHandle | None = None
        self.worker: WorkerHandle | None = None


class WorkerHandle:
    __slots__ = ("conn", "job", "pid", "process", "ready", "rss", "tasks")

    def __init__(self, process: Any, conn: Any) -> None:
        self.process, self.conn = process, conn
        self.pid: int | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.job: Job | None = None
        self.tasks = 0
        self.rss = 0


def exited(process: Any) -> bool:
    """True once `process` has exited and been reaped (its exit code read)."""
    try:
        return process.exitcode is not None
    except ValueError:  # closed: long gone
        return True


def remote_error(name: str, blob: bytes | None, kind: str, message: str, text: str) -> BaseException:
    if blob is not None:
        try:
            exc: BaseException = pickle.loads(blob)  # noqa: S301 - made by our worker from its exception
        except Exception:
            exc = RemoteError(f"{name} raised {kind}: {message}")
    else:
        exc = RemoteError(f"{name} raised {kind}: {message}")
    exc.__cause__ = RemoteError(f"traceback in the worker process:\n{text}")
    return exc
