"""Jobs from Django: the project's queue (`PERFKIT["jobs"]`), its tasks, and enqueueing from any view.

    # myapp/tasks.py: `manage.py perfkit_worker` imports every installed app's `tasks` module
    from perfkit.django.jobs import task

    @task(queue="email", retries=3)
    def send_receipt(ctx, ticket_id: int) -> str:
        return Ticket.objects.get(pk=ticket_id).title

    def create_ticket(request):                    # a sync view (WSGI): no event loop of your own
        with transaction.atomic():
            ticket = Ticket.objects.create(...)
            send_receipt.enqueue_on_commit(ticket.pk)   # queued after COMMIT; nothing on rollback
        send_receipt.enqueue_sync(ticket.pk)            # queued now

    async def acreate(request):                    # an async view (ASGI, or Django's adaptation)
        await send_receipt.enqueue(ticket_id)

Every enqueue (sync or async, from any thread or event loop) runs on one background loop per process,
the project queue's sync facade (`get_queue().sync()`): Django runs async views on a new event loop per
request under WSGI and per test under its test client, and a queue's connections belong to the loop that
opened them. Async callers await it without blocking their own loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, TypeVar

from perfkit.errors import ConfigurationError, SerializationError
from perfkit.jobs import JobInfo, JobQueue, JobsConfig, PreparedJob, Priority, Task
from perfkit.jobs.hooks import Hooks
from perfkit.jobs.registry import TaskRegistry
from perfkit.jobs.retry import BackoffSpec
from perfkit.jobs.task import TaskOptions
from perfkit.redaction import redact

__all__ = [
    "DjangoTask",
    "ProjectJobs",
    "enqueue_on_commit",
    "enqueue_sync",
    "get_queue",
    "project",
    "task",
]

logger = logging.getLogger("perfkit.django.jobs")
T = TypeVar("T")
_NOT_SET = "is not set: add PERFKIT = {'jobs': 'redis://...'} (or sqlite:///..., postgresql://...)"


class _Bound:
    """The queue built from one `JobsConfig`, and its twin that only ever runs on the facade's loop."""

    def __init__(self, config: JobsConfig, registry: TaskRegistry, hooks: Hooks) -> None:
        self.config = config
        self.queue = JobQueue(config=config)
        self.queue.registry, self.queue.hooks = registry, hooks
        self.portal_queue = self.queue.sibling()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` (over `portal_queue`) on the background loop and wait: for sync callers."""
        return self.queue.sync().call(coro)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the background loop and await it from the caller's loop, which stays free."""
        loop = self.queue.sync().portal.loop
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def close(self) -> None:
        facade = self.queue.sync()
        if facade.portal.started:
            facade.call(self.portal_queue.close())
        facade.close()


class ProjectJobs:
    """The project's queue, as `PERFKIT["jobs"]` says now: the producer behind every `@task`.

    Its tasks and hooks outlive a change of the setting (tests override it); the queue is rebuilt.
    """

    def __init__(self) -> None:
        self.registry = TaskRegistry()
        self.hooks = Hooks()
        self._bound: _Bound | None = None
        self._lock = threading.Lock()
        self._fork_safe = False

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): the parent's background loop thread is not there, so
        forget its queue (never close it: the parent still uses those connections); build a new one."""
        self._bound = None
        self._lock = threading.Lock()

    def _current(self) -> _Bound | None:
        from perfkit.django.conf import get_settings

        config = get_settings().jobs
        bound = self._bound
        if bound is not None and bound.config == config:
            return bound
        with self._lock:
            old = self._bound
            if old is not None and old.config == config:
                return old
            self._bound = None if config is None else _Bound(config, self.registry, self.hooks)
            if not self._fork_safe:
                os.register_at_fork(after_in_child=self._after_fork)
                self._fork_safe = True
        if old is not None:
            old.close()
        return self._bound

    def _required(self) -> _Bound:
        bound = self._current()
        if bound is None:
            raise ConfigurationError("PERFKIT['jobs']", _NOT_SET)
        return bound

    def queue(self) -> JobQueue | None:
        """The project's JobQueue (one per process); None when `PERFKIT["jobs"]` is not set."""
        bound = self._current()
        return None if bound is None else bound.queue

    @property
    def default_queue(self) -> str:
        bound = self._current()
        return "default" if bound is None else bound.config.default_queue

    def task(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: Priority | str | int = Priority.MEDIUM,
        retries: int = 0,
        backoff: BackoffSpec = "exponential",
        timeout: float | str | None = None,
    ) -> Any:
        """Register `func(ctx, ...)` as a project task (the options of `JobQueue.task`); `@task` or
        `@task(queue=..., ...)`. Registering needs no queue; enqueueing does."""

        def register(f: Callable[..., Any]) -> DjangoTask:
            options = TaskOptions.check(
                queue or self.default_queue, priority=priority, retries=retries, backoff=backoff,
                timeout=timeout,
            )  # fmt: skip
            t = DjangoTask(self, f, name or f"{f.__module__}.{f.__qualname__}", options)
            self.registry.add(t)
            return t

        return register if func is None else register(func)

    # -- the producer side (what `Task.enqueue` and `Task.map` call) ---------------------------------
    async def enqueue(
        self,
        task: Task | str,
        *,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        queue: str | None = None,
    ) -> JobInfo:
        """`JobQueue.enqueue` on the project's queue, from any event loop."""
        bound = self._required()
        return await bound.acall(
            bound.portal_queue.enqueue(
                task,
                args=tuple(args),
                kwargs=kwargs,
                delay=delay,
                at=at,
                priority=priority,
                key=key,
                queue=queue,
            )
        )

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[JobInfo]:
        """`JobQueue.enqueue_many` on the project's queue, from any event loop."""
        bound = self._required()
        return await bound.acall(bound.portal_queue.enqueue_many(list(jobs)))

    def enqueue_sync(
        self,
        task: Task | str,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """`task.enqueue(...)` without await, for sync code: WSGI views, signals, commands, scripts."""
        bound = self._required()
        return bound.call(
            bound.portal_queue.enqueue(
                task, args=args, kwargs=kwargs, delay=delay, at=at, priority=priority, key=key
            )
        )

    async def run(self, call: Callable[[JobQueue], Awaitable[T]]) -> T:
        """`await call(queue)` on the background loop, from any event loop: e.g. a readiness check's
        `await project.run(lambda jobs: jobs.depth())`, which a queue bound to another loop would fail."""
        bound = self._required()
        return await bound.acall(_awaited(call(bound.portal_queue)))

    def run_sync(self, call: Callable[[JobQueue], Awaitable[T]]) -> T:
        """`run()` for sync code: waits for `call(queue)` on the background loop."""
        bound = self._required()
        return bound.call(_awaited(call(bound.portal_queue)))

    def close(self) -> None:
        """Close the queue's connections and stop its background loop (it starts again when used)."""
        with self._lock:
            old, self._bound = self._bound, None
        if old is not None:
            old.close()


async def _awaited(value: Awaitable[T]) -> T:
    return await value


class DjangoTask(Task):
    """A project task: `await t.enqueue(...)`, `t.enqueue_sync(...)`, `t.enqueue_on_commit(...)`."""

    def enqueue_sync(
        self,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """Queue one run now and return its JobInfo, from sync code (no event loop needed)."""
        return enqueue_sync(self, *args, delay=delay, at=at, priority=priority, key=key, **kwargs)

    def enqueue_on_commit(
        self,
        *args: Any,
        using: str | None = None,
        robust: bool = True,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue one run when the transaction on `using` commits; see `enqueue_on_commit`."""
        enqueue_on_commit(
            self, *args, using=using, robust=robust, delay=delay, at=at, priority=priority, key=key,
            **kwargs,
        )  # fmt: skip


project = ProjectJobs()
task = project.task


def get_queue() -> JobQueue | None:
    """The project's JobQueue (one per process, built from `PERFKIT["jobs"]`); None when not set.

    Its async methods belong to the first event loop that uses them; from Django code prefer the task
    methods here, or `get_queue().sync()` (the background loop every enqueue here runs on).
    """
    return project.queue()


def _resolve(task: Task | str) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return project.registry.named(task)
    raise ConfigurationError("task", f"{task!r} is not a task or a registered task name")


def enqueue_sync(
    task: Task | str,
    *args: Any,
    delay: float | str | None = None,
    at: datetime | float | None = None,
    priority: Priority | str | int | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> JobInfo:
    """Queue `task` (a project task, a plain `JobQueue`'s task, or a registered name) from sync code."""
    t = _resolve(task)
    options: dict[str, Any] = {"delay": delay, "at": at, "priority": priority, "key": key}
    if isinstance(t.jobs, JobQueue):
        return t.jobs.sync().enqueue(t, *args, **options, **kwargs)
    return project.enqueue_sync(t, *args, **options, **kwargs)


def _check_payload(t: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse arguments the queue cannot carry now, in the view, rather than after the commit."""
    queue = t.jobs if isinstance(t.jobs, JobQueue) else project._required().queue
    try:
        queue.serializer.dumps([list(args), kwargs])
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"task {t.name!r}: arguments cannot be serialized with {queue.serializer.name}: {exc}"
        ) from exc


def enqueue_on_commit(
    task: Task | str,
    *args: Any,
    using: str | None = None,
    robust: bool = True,
    delay: float | str | None = None,
    at: datetime | float | None = None,
    priority: Priority | str | int | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> None:
    """Queue `task` when the current transaction on database `using` commits: the job never runs before
    the data it reads is committed, and a rollback queues nothing. Outside a transaction (autocommit) it
    is queued at once, as Django runs `on_commit` callbacks.

    The arguments are checked now. With `robust` (the default) a queue that is down after the commit is
    logged (the task's name, never its arguments) and the response goes on; `robust=False` raises, as
    Django's own `on_commit` does. `using`, `robust`, `delay`, `at`, `priority` and `key` are options,
    not task arguments.
    """
    from django.db import transaction

    t = _resolve(task)
    _check_payload(t, args, kwargs)
    options: dict[str, Any] = {"delay": delay, "at": at, "priority": priority, "key": key}

    def send() -> None:
        try:
            enqueue_sync(t, *args, **options, **kwargs)
        except Exception as exc:
            if not robust:
                raise
            logger.error("perfkit: job %r was not queued after the commit: %s", t.name, redact(str(exc)))

    transaction.on_commit(send, using=using)
