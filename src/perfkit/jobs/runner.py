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
from perfkit.jobs.context import Context, ContextJobs
from perfkit.jobs.models import JobRecord, Outcome, Status, unpack_payload

if TYPE_CHECKING:
    from perfkit.jobs.hooks import Hooks
    from perfkit.jobs.registry import TaskRegistry
    from perfkit.jobs.task import Task
    from perfkit.serialization import Serializer


class Running:
    """A job this worker holds: its record, its context, and why it was stopped (if it was)."""

    __slots__ = ("context", "record", "stop_reason", "task")

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        self.context: Context | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None  # "cancelled", "lost" (lease) or "shutdown"

    def adopt(self, record: JobRecord) -> bool:
        """Carry on under `record`'s lease: this job, held here, was claimed again after its lease lapsed
        (its worker's event loop blocked, say). Its outcome, its events and its `ctx.attempt` are then
        the new attempt's: the record is updated in place, and the context reads it. False (nothing
        taken) when this attempt is already stopping."""
        if self.stop_reason is not None:
            return False
        r = self.record
        r.token, r.attempts, r.stalls = record.token, record.attempts, record.stalls
        r.lease_until = record.lease_until
        return True

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self.context is not None:
                self.context._cancelled = True
            if self.task is not None:
                self.task.cancel()


class Runner:
    """Runs jobs with the tasks of `registry`, decoding and encoding with `serializer`, events to `hooks`;
    `jobs` is only handed to each job's `Context`."""

    def __init__(
        self,
        registry: TaskRegistry,
        serializer: Serializer,
        hooks: Hooks,
        jobs: ContextJobs,
        threads: ThreadPoolExecutor,
    ) -> None:
        self.registry = registry
        self.serializer = serializer
        self.hooks = hooks
        self.jobs = jobs
        self.threads = threads

    async def run(self, job: Running) -> Outcome | None:
        """The outcome to record, or None when this worker must not report one (lease lost, shutdown)."""
        r = job.record
        emit = self.hooks.emit
        corrupt = r.corrupt_error
        if corrupt is not None:  # a field of its stored record cannot be read: it never runs
            return self._dead(r, corrupt)
        task = self.registry.get(r.task)
        if task is None:
            return self._dead(
                r, f"unknown task {r.task!r}: no task of that name is registered in this worker"
            )
        try:
            args, kwargs, r.headers = unpack_payload(self.serializer.loads(r.payload))
        except Exception as exc:
            return self._dead(r, f"payload of task {r.task!r} cannot be decoded: {exc}")
        loop = asyncio.get_running_loop()
        ctx = job.context = Context(self.jobs, r, loop)
        started = time.monotonic()
        emit("started", r, wait=max(0.0, time.time() - max(r.run_at, r.queued_at)))
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
                if job.stop_reason != "cancelled":  # no outcome to record: the job runs again
                    why = "lease lost" if job.stop_reason == "lost" else "worker shutdown"
                    emit("interrupted", r, duration=time.monotonic() - started, error=why)
                    return None
                emit("cancelled", r, duration=time.monotonic() - started)
                return Outcome(r.id, r.token, Status.CANCELLED, error="cancelled", completed_at=time.time())
        except TimeoutError as exc:
            if deadline is None or not deadline.expired():
                return self._failure(r, exc, started)  # the task raised TimeoutError itself
            kind = (
                "cpu task's process killed"
                if task.options.cpu
                else "async task cancelled"
                if task.is_async
                else "sync task abandoned on its thread"
            )
            return self._failure(r, TimeoutError(f"timed out after {r.timeout}s ({kind})"), started)
        except Exception as exc:
            return self._failure(r, exc, started)
        try:
            result = self.serializer.dumps(value)
        except (TypeError, ValueError, OverflowError) as exc:
            err = SerializationError(f"result of task {r.task!r} cannot be serialized: {exc}")
            return self._failure(r, err, started)
        emit("succeeded", r, duration=time.monotonic() - started)
        return Outcome(r.id, r.token, Status.SUCCEEDED, result=result, completed_at=time.time())

    async def _invoke(
        self,
        task: Task,
        ctx: Context,
        args: list[Any],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> Any:
        if task.options.cpu:  # in a worker process: cancelling this (the timeout) kills that process
            from perfkit.cpu import default_pool

            return await default_pool().submit(task.func, args, kwargs)
        if task.is_async:
            return await task.func(ctx, *args, **kwargs)
        call = functools.partial(contextvars.copy_context().run, task.func, ctx, *args, **kwargs)
        return await loop.run_in_executor(self.threads, call)

    def _failure(self, r: JobRecord, exc: BaseException, started: float) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(exc))
        now = time.time()
        duration = time.monotonic() - started
        emit = self.hooks.emit
        emit("failed", r, duration=duration, error=error)
        task = self.registry.get(r.task)
        if task is not None and r.attempts < r.max_attempts:
            emit("retried", r, error=error)
            delay = task.options.backoff.delay(r.attempts)
            return Outcome(r.id, r.token, Status.QUEUED, error=error, traceback=tb, run_at=now + delay)
        emit("dead", r, error=error)
        return Outcome(r.id, r.token, Status.FAILED, error=error, traceback=tb, completed_at=now)

    def _dead(self, r: JobRecord, error: str) -> Outcome:
        self.hooks.emit("dead", r, error=error)
        return Outcome(r.id, r.token, Status.DEAD, error=error, completed_at=time.time())
