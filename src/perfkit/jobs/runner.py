"""Run one leased job: call its task under its timeout and turn what happened into an `Outcome`."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from perfkit.errors import SerializationError
from perfkit.jobs.context import Context
from perfkit.jobs.hooks import JobEvent
from perfkit.jobs.models import JobRecord, Outcome, Status

if TYPE_CHECKING:
    from perfkit.jobs.queue import JobQueue
    from perfkit.jobs.task import Task


class Running:
    """A job this worker holds: its record, its context, and why it was stopped (if it was)."""

    __slots__ = ("context", "record", "stop_reason", "task")

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        self.context: Context | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None  # "cancelled", "lost" (lease) or "shutdown"

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self.context is not None:
                self.context._cancelled = True
            if self.task is not None:
                self.task.cancel()


class Runner:
    def __init__(self, jobs: JobQueue, threads: ThreadPoolExecutor) -> None:
        self.jobs = jobs
        self.threads = threads

    def _event(self, name: str, r: JobRecord, **extra: Any) -> None:
        self.jobs.hooks.emit(JobEvent(name, r.id, r.task, r.queue, r.priority, r.attempts, **extra))

    # C901: an event built by hand behind each `if hooks:` (issue 15: one event emitter replaces them)
    async def run(self, job: Running) -> Outcome | None:  # noqa: C901
        """The outcome to record, or None when this worker must not report one (lease lost, shutdown)."""
        r = job.record
        hooks = bool(self.jobs.hooks)
        corrupt = r.corrupt_error
        if corrupt is not None:  # a field of its stored record cannot be read: it never runs
            return self._dead(r, corrupt)
        task = self.jobs.tasks.get(r.task)
        if task is None:
            return self._dead(
                r, f"unknown task {r.task!r}: no task of that name is registered in this worker"
            )
        try:
            args, kwargs = self.jobs.serializer.loads(r.payload)
        except Exception as exc:
            return self._dead(r, f"payload of task {r.task!r} cannot be decoded: {exc}")
        loop = asyncio.get_running_loop()
        ctx = job.context = Context(self.jobs, r, loop)
        started = time.monotonic()
        if hooks:
            self._event("started", r, wait=max(0.0, time.time() - max(r.run_at, r.queued_at)))
        deadline: asyncio.Timeout | None = None
        try:
            try:
                if r.timeout is None:
                    value = await self._invoke(task, ctx, args, kwargs, loop)
                else:
                    async with asyncio.timeout(r.timeout) as deadline:
                        value = await self._invoke(task, ctx, args, kwargs, loop)
            except asyncio.CancelledError:
                if job.stop_reason is None:
                    raise  # not ours to handle (the worker itself is being torn down)
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                if job.stop_reason != "cancelled":
                    return None
                if hooks:
                    self._event("cancelled", r, duration=time.monotonic() - started)
                return Outcome(r.id, r.token, Status.CANCELLED, error="cancelled", completed_at=time.time())
        except TimeoutError as exc:
            if deadline is None or not deadline.expired():
                return self._failure(r, exc, started)  # the task raised TimeoutError itself
            kind = "async task cancelled" if task.is_async else "sync task abandoned on its thread"
            return self._failure(r, TimeoutError(f"timed out after {r.timeout}s ({kind})"), started)
        except Exception as exc:
            return self._failure(r, exc, started)
        try:
            result = self.jobs.serializer.dumps(value)
        except (TypeError, ValueError, OverflowError) as exc:
            err = SerializationError(f"result of task {r.task!r} cannot be serialized: {exc}")
            return self._failure(r, err, started)
        if hooks:
            self._event("succeeded", r, duration=time.monotonic() - started)
        return Outcome(r.id, r.token, Status.SUCCEEDED, result=result, completed_at=time.time())

    async def _invoke(
        self,
        task: Task,
        ctx: Context,
        args: list[Any],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> Any:
        if task.is_async:
            return await task.func(ctx, *args, **kwargs)
        call = functools.partial(contextvars.copy_context().run, task.func, ctx, *args, **kwargs)
        return await loop.run_in_executor(self.threads, call)

    def _failure(self, r: JobRecord, exc: BaseException, started: float) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(exc))
        now = time.time()
        duration = time.monotonic() - started
        hooks = bool(self.jobs.hooks)
        if hooks:
            self._event("failed", r, duration=duration, error=error)
        task = self.jobs.tasks.get(r.task)
        if task is not None and r.attempts < r.max_attempts:
            if hooks:
                self._event("retried", r, error=error)
            delay = task.options.backoff.delay(r.attempts)
            return Outcome(r.id, r.token, Status.QUEUED, error=error, traceback=tb, run_at=now + delay)
        if hooks:
            self._event("dead", r, error=error)
        return Outcome(r.id, r.token, Status.FAILED, error=error, traceback=tb, completed_at=now)

    def _dead(self, r: JobRecord, error: str) -> Outcome:
        if self.jobs.hooks:
            self._event("dead", r, error=error)
        return Outcome(r.id, r.token, Status.DEAD, error=error, completed_at=time.time())
