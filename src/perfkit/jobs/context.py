"""`ctx`, the first argument of every task: which job this is, and how to report progress."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from perfkit.errors import ConfigurationError
from perfkit.jobs.task import Producer

if TYPE_CHECKING:
    from perfkit.jobs.backends.base import JobBackend
    from perfkit.jobs.hooks import Hooks
    from perfkit.jobs.models import JobRecord


class ContextJobs(Producer, Protocol):
    """What a context needs of its queue (a `JobQueue` is one): enqueue follow-up jobs (`ctx.jobs`),
    the backend progress is written to, and the event emitter."""

    @property
    def backend(self) -> JobBackend: ...

    @property
    def hooks(self) -> Hooks: ...


class Context:
    """Handed to a task; `progress()` from async tasks, `progress_sync()` from plain functions."""

    def __init__(self, jobs: ContextJobs, record: JobRecord, loop: asyncio.AbstractEventLoop) -> None:
        self.jobs = jobs
        self._record = record
        self.job_id = record.id
        self.task = record.task
        self.queue = record.queue
        self.priority = record.priority
        self.max_attempts = record.max_attempts
        self._loop = loop
        self._cancelled = False  # set by the worker's lease keeper; a bool is enough across threads
        self.state: dict[str, Any] = {}

    @property
    def attempt(self) -> int:
        """The number of the attempt whose lease holds the job now, as recorded (1 first). A job its
        worker claims again while it runs carries on under the new lease: this is then the new number,
        as in its events and outcome."""
        return self._record.attempts

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested: long sync tasks should check it and return."""
        return self._cancelled

    async def progress(self, value: float, message: str | None = None) -> None:
        """Record progress in [0, 1] and an optional message; visible through `JobQueue.get()`."""
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise ConfigurationError("progress", f"{value!r} is not a fraction between 0 and 1")
        await self.jobs.backend.progress(self.job_id, float(value), message)
        self.jobs.hooks.emit("progress", self._record, progress=value)

    def progress_sync(self, value: float, message: str | None = None) -> None:
        """`progress()` for plain (sync) tasks, which run on a worker thread."""
        asyncio.run_coroutine_threadsafe(self.progress(value, message), self._loop).result()
